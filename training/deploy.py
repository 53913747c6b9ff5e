"""Train, verify, gate, publish, and see the new version serve traffic.

Each step logs what it found; the first failure raises DeployError with a message, and the version
the server was serving before stays served: a refused model is never published, and a published one
that the server refuses never takes traffic.
"""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from training.export import load_signature
from training.pipeline import Log, Repository, Trained, TrainOptions, stage, train
from training.train import score

if TYPE_CHECKING:
    import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_MIN_ACCURACY = 0.96
DEFAULT_TOLERANCE = 0.005
DEFAULT_WAIT_S = 180.0
POLL_S = 0.5
SMOKE_DIGIT = 7  # the golden probes hold one held-out digit per class, in order


class DeployError(Exception):
    """The deploy stopped; the served version is unchanged."""


@dataclass(frozen=True)
class Gate:
    min_accuracy: float = DEFAULT_MIN_ACCURACY
    tolerance: float = DEFAULT_TOLERANCE  # how far below the served version's accuracy a new one may be


@dataclass(frozen=True)
class DeployOptions:
    server: str = DEFAULT_SERVER
    gate: Gate = Gate()
    wait_s: float = DEFAULT_WAIT_S
    admin_token: str | None = None  # to ask the server to rescan at once, instead of waiting for its poll


def deploy(training: TrainOptions, repository: Repository, options: DeployOptions, log: Log) -> int:
    """Run every step; return the version that now serves."""
    # NOTE: imported here: only deploy talks HTTP, and `python -m training --help` must not need it.
    import httpx

    started = time.monotonic()
    with httpx.Client(base_url=options.server.rstrip("/"), timeout=10) as http:
        served = _served_version(http, repository.name)
        log(f"[1/7] server {options.server} serves {repository.name} version {served or '(none)'}")
        trained = train(training, log)
        log(f"[2/7] trained {trained.network.name}: held-out accuracy {trained.test_accuracy:.4f}")
        with stage(trained, repository) as staged:
            log(f"[3/7] export verified: {', '.join(c.name for c in staged.checks)}")
            _gate(trained, served, repository, options.gate, log)
            version = staged.publish()
            probe = staged.metadata.probes.inputs[SMOKE_DIGIT]
        log(f"[5/7] published {repository.name} version {version} at {repository.model_dir / str(version)}")
        if options.admin_token:
            http.post("/admin/reload", headers={"authorization": f"Bearer {options.admin_token}"}).raise_for_status()
        waited = _wait_available(http, repository.name, version, options.wait_s)
        log(f"[6/7] server reports version {version} AVAILABLE after {waited:.1f}s")
        _smoke_test(http, repository.name, version, probe, log)
    log(
        f"deployed {repository.name} version {version} (was {served or 'none'}): accuracy "
        f"{trained.test_accuracy:.4f}, {time.monotonic() - started:.0f}s in all"
    )
    return version


def _gate(trained: Trained, served: int | None, repository: Repository, gate: Gate, log: Log) -> None:
    """Refuse a model under the floor, or worse than the served one on the same held-out digits."""
    accuracy = trained.test_accuracy
    floor_ok = accuracy >= gate.min_accuracy
    log(f"[4/7] gate: accuracy {accuracy:.4f} vs floor {gate.min_accuracy:.4f}: {'pass' if floor_ok else 'FAIL'}")
    if not floor_ok:
        raise DeployError(f"gate refused: accuracy {accuracy:.4f} is below the floor {gate.min_accuracy:.4f}")
    if served is None:
        return
    served_dir = repository.model_dir / str(served)
    if not served_dir.is_dir():
        raise DeployError(f"served version {served} is not in {served_dir.parent}; is --models-dir the server's?")
    _, serve = load_signature(served_dir)
    test = trained.splits.test
    served_accuracy, _ = score(serve(test.x), test.y)
    ok = accuracy >= served_accuracy - gate.tolerance
    log(
        f"      vs served version {served} on the same digits: {served_accuracy:.4f} "
        f"(tolerance {gate.tolerance:.4f}): {'pass' if ok else 'FAIL'}"
    )
    if not ok:
        raise DeployError(
            f"gate refused: accuracy {accuracy:.4f} is more than {gate.tolerance:.4f} below "
            f"the served version {served} ({served_accuracy:.4f})"
        )


def _served_version(http: "httpx.Client", name: str) -> int | None:
    import httpx

    try:
        response = http.get(f"/v1/models/{name}")
    except httpx.HTTPError as e:
        raise DeployError(f"cannot reach the server: {e}") from e
    if response.status_code == 404:
        return None
    response.raise_for_status()
    available = [int(s["version"]) for s in response.json()["model_version_status"] if s["state"] == "AVAILABLE"]
    return max(available, default=None)


def _wait_available(http: "httpx.Client", name: str, version: int, timeout_s: float) -> float:
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout_s:
        response = http.get(f"/v1/models/{name}/versions/{version}")
        if response.status_code == 200:
            last = response.json()["model_version_status"][0]
            if last["state"] == "AVAILABLE":
                return time.monotonic() - started
            if last["status"]["error_code"] != "OK":
                raise DeployError(
                    f"the server refused version {version}: {last['status']['error_message']}; "
                    "it keeps serving the previous version"
                )
        time.sleep(POLL_S)
    raise DeployError(f"version {version} not AVAILABLE after {timeout_s:g}s (last status: {last})")


def _smoke_test(http: "httpx.Client", name: str, version: int, probe: list[float], log: Log) -> None:
    answer = http.post("/predict", json={"image": probe, "model": name, "version": version})
    body = answer.json()
    if answer.status_code != 200 or body.get("version") != version:
        raise DeployError(f"smoke prediction failed: HTTP {answer.status_code} {body}")
    digit = int(np.argmax(body["predictions"][0]["probabilities"]))
    if digit != SMOKE_DIGIT:
        raise DeployError(f"smoke prediction: a held-out {SMOKE_DIGIT} came back as {digit}")
    log(f"[7/7] smoke prediction through /predict: {digit} from version {body['version']}")
