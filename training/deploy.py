"""Train, verify, gate, publish, and see the new version serve traffic; optionally as a canary, then promoted.

Each step logs what it found; the first failure raises DeployError with a message, and what the server
was serving before stays served: a refused model is never published, a published one that the server
refuses never takes traffic, and `stable` moves only once the canary answered through its label.
"""

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from training.config import DeployOptions, Gate, Repository, TrainOptions
from training.export import load_signature
from training.pipeline import Log, Trained, stage, train
from training.train import score

if TYPE_CHECKING:
    import httpx

CANARY, STABLE = "canary", "stable"
POLL_S = 0.5
SMOKE_DIGIT = 7  # the golden probes hold one held-out digit per class, in order


class DeployError(Exception):
    """The deploy stopped; what the server serves is unchanged."""


class _Steps:
    def __init__(self, total: int, log: Log) -> None:
        self._total, self._done, self._log = total, 0, log

    def __call__(self, message: str) -> None:
        self._done += 1
        self._log(f"[{self._done}/{self._total}] {message}")


def deploy(training: TrainOptions, repository: Repository, options: DeployOptions, log: Log) -> int:
    """Run every step; return the version that now serves."""
    # NOTE: imported here: only deploy talks HTTP, and `mnist-train --help` must not need it.
    import httpx

    if (options.canary or options.promote) and not options.admin_token:
        raise DeployError("labels are set through the admin API: --canary and --promote need --admin-token")
    started, step = time.monotonic(), _Steps(options.steps(), log)
    with httpx.Client(base_url=options.server.rstrip("/"), timeout=10) as http:
        served = _baseline(http, repository.name)
        step(f"server {options.server} serves {repository.name} version {served or '(none)'}")
        trained = train(training, log)
        step(f"trained {trained.network.name}: held-out accuracy {trained.test_accuracy:.4f}")
        with stage(trained, repository) as staged:
            step(f"export verified: {', '.join(c.name for c in staged.checks)}")
            _gate(trained, served, repository, options.gate, step, log)
            version = staged.publish()
            probe = staged.metadata.probes.inputs[SMOKE_DIGIT]
        step(f"published {repository.name} version {version} at {repository.model_dir / str(version)}")
        if options.admin_token:
            _admin(http, options.admin_token, "POST", "/admin/reload")
        waited = _wait_available(http, repository.name, version, options.wait_s)
        step(f"server reports version {version} AVAILABLE after {waited:.1f}s")
        _smoke_test(http, repository.name, version, probe, step, {"version": version})
        for label in [CANARY] * (options.canary or options.promote) + [STABLE] * options.promote:
            _admin(http, options.admin_token, "PUT", f"/admin/models/{repository.name}/labels/{label}", version)
            _smoke_test(http, repository.name, version, probe, step, {"label": label})
    log(
        f"deployed {repository.name} version {version} (was {served or 'none'}): accuracy "
        f"{trained.test_accuracy:.4f}, {time.monotonic() - started:.0f}s in all"
    )
    return version


def _gate(trained: Trained, served: int | None, repository: Repository, gate: Gate, step: _Steps, log: Log) -> None:
    """Refuse a model under the floor, or worse than the served one on the same held-out digits."""
    accuracy = trained.test_accuracy
    floor_ok = accuracy >= gate.min_accuracy
    step(f"gate: accuracy {accuracy:.4f} vs floor {gate.min_accuracy:.4f}: {'pass' if floor_ok else 'FAIL'}")
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


def _baseline(http: "httpx.Client", name: str) -> int | None:
    """The version the new one must not be worse than: the one labelled stable, else the newest serving."""
    import httpx

    try:
        response = http.get(f"/v1/models/{name}")
    except httpx.HTTPError as e:
        raise DeployError(f"cannot reach the server: {e}") from e
    if response.status_code == 404:
        return None
    response.raise_for_status()
    stable = http.get(f"/v1/models/{name}/labels/{STABLE}")
    if stable.status_code == 200:
        return int(stable.json()["model_version_status"][0]["version"])
    available = [int(s["version"]) for s in response.json()["model_version_status"] if s["state"] == "AVAILABLE"]
    return max(available, default=None)


def _admin(http: "httpx.Client", token: str | None, method: str, path: str, version: int | None = None) -> None:
    body = None if version is None else {"version": version}
    response = http.request(method, path, json=body, headers={"authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise DeployError(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")


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


def _smoke_test(
    http: "httpx.Client", name: str, version: int, probe: list[float], step: _Steps, route: dict[str, Any]
) -> None:
    """A held-out digit through /predict, by version or by label: the right digit, from the new version."""
    answer = http.post("/predict", json={"image": probe, "model": name, **route})
    body = answer.json()
    if answer.status_code != 200 or body.get("version") != version:
        raise DeployError(f"smoke prediction through {route} failed: HTTP {answer.status_code} {body}")
    digit = int(np.argmax(body["predictions"][0]["probabilities"]))
    if digit != SMOKE_DIGIT:
        raise DeployError(f"smoke prediction: a held-out {SMOKE_DIGIT} came back as {digit}")
    via = f"label {route['label']}" if "label" in route else f"version {version}"
    step(f"smoke prediction through /predict, {via}: {digit} from version {body['version']}")
