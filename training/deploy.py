"""Train, gate, verify, publish, and see the new version serve traffic on every replica; optionally as a
canary, then promoted.

Each step logs what it found; the first failure raises DeployError with a message, and what the replicas
were serving before stays served: a refused model is never published, a published one that a replica
refuses never takes traffic, and a label moves only once every replica serves its new version; it is
then smoke-tested through the label on every replica. Replicas share one repository: the label is set
through one of them (it writes labels.json) and the others are asked to rescan, then waited for.
"""

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

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
    """The deploy stopped; what the replicas serve is unchanged."""


class _Steps:
    def __init__(self, total: int, log: Log) -> None:
        self._total, self._done, self._log = total, 0, log

    def __call__(self, message: str) -> None:
        self._done += 1
        self._log(f"[{self._done}/{self._total}] {message}")


def replicas(servers: tuple[str, ...], resolve: bool) -> list[str]:
    """The replicas' URLs: the servers given, or with `resolve`, one per address each host name resolves
    to (a Kubernetes headless Service resolves to every ready pod)."""
    if not resolve:
        return [url.rstrip("/") for url in servers]
    urls: list[str] = []
    for url in servers:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise DeployError(f"cannot resolve {parts.hostname} ({url}): {e.strerror}") from e
        for address in sorted({str(info[4][0]) for info in found}):
            host = f"[{address}]" if ":" in address else address
            urls.append(urlunsplit((parts.scheme, f"{host}:{port}", parts.path.rstrip("/"), "", "")))
    return urls


def deploy(training: TrainOptions, repository: Repository, options: DeployOptions, log: Log) -> int:
    """Run every step; return the version that now serves on every replica."""
    if (options.canary or options.promote) and not options.admin_token:
        raise DeployError("labels are set through the admin API: --canary and --promote need --admin-token")
    started, step = time.monotonic(), _Steps(options.steps(), log)
    urls = replicas(options.servers, options.resolve)
    if not urls:
        raise DeployError("no replica to deploy to: the servers given resolve to no address")
    with _fleet(urls) as fleet:
        served = _baseline(fleet, repository.name)
        step(f"serving {repository.name} version {served or '(none)'}: {', '.join(fleet)}")
        trained = train(training, log)
        step(f"trained {trained.network.name}: held-out accuracy {trained.test_accuracy:.4f}")
        # NOTE: gated before the export: the gate reads the trained model's held-out accuracy, and a refused
        # model is then refused without the export's conversions and checks (about 20 s on 2 cores).
        _gate(trained, served, repository, options.gate, step, log)
        with stage(trained, repository) as staged:
            step(f"export verified: {', '.join(c.name for c in staged.checks)}")
            version = staged.publish()
            probe = staged.metadata.probes.inputs[SMOKE_DIGIT]
        step(f"published {repository.name} version {version} at {repository.model_dir / str(version)}")
        _rescan(fleet, options.admin_token)
        since = time.monotonic()
        waited = {
            url: _wait_available(http, repository.name, version, since, options.wait_s) for url, http in fleet.items()
        }
        step(f"version {version} AVAILABLE on {_count(fleet)} {_spread(waited)}")
        _smoke_test(fleet, repository.name, version, probe, step, {"version": version})
        for label in [CANARY] * (options.canary or options.promote) + [STABLE] * options.promote:
            first = next(iter(fleet.values()))
            _admin(first, options.admin_token, "PUT", f"/admin/models/{repository.name}/labels/{label}", version)
            _rescan(fleet, options.admin_token)
            since = time.monotonic()
            moved = {
                url: _wait_label(http, repository.name, (label, version), since, options.wait_s)
                for url, http in fleet.items()
            }
            log(f"      label {label} answers with version {version} on {_count(fleet)} {_spread(moved)}")
            _smoke_test(fleet, repository.name, version, probe, step, {"label": label})
    log(
        f"deployed {repository.name} version {version} (was {served or 'none'}) to {_count(fleet)}: accuracy "
        f"{trained.test_accuracy:.4f}, {time.monotonic() - started:.0f}s in all"
    )
    return version


@contextmanager
def _fleet(urls: list[str]) -> Iterator[dict[str, "httpx.Client"]]:
    # NOTE: imported here: only deploy talks HTTP, and `mnist-train --help` must not need it.
    import httpx

    with ExitStack() as stack:
        yield {url: stack.enter_context(httpx.Client(base_url=url, timeout=10)) for url in urls}


def _count(fleet: dict[str, Any]) -> str:
    return "the server" if len(fleet) == 1 else f"all {len(fleet)} replicas"


def _spread(seconds: dict[str, float]) -> str:
    """When each replica got there: the skew between them is what a client addressing them all saw."""
    if len(seconds) == 1:
        return f"after {next(iter(seconds.values())):.1f}s"
    return f"after {min(seconds.values()):.1f}s to {max(seconds.values()):.1f}s (skew {_skew(seconds):.1f}s)"


def _skew(seconds: dict[str, float]) -> float:
    return max(seconds.values()) - min(seconds.values())


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


def _baseline(fleet: dict[str, "httpx.Client"], name: str) -> int | None:
    """The version the new one must not be worse than: the one labelled stable, else the newest serving; the
    replicas must agree on it (they do once the last rollout finished)."""
    found = {url: _served(http, name) for url, http in fleet.items()}
    if len(set(found.values())) > 1:
        each = ", ".join(f"{url}: {version or 'none'}" for url, version in found.items())
        raise DeployError(f"the replicas serve different versions ({each}); wait for them to agree, then deploy")
    return next(iter(found.values()))


def _served(http: "httpx.Client", name: str) -> int | None:
    response = _request(http, "GET", f"/v1/models/{name}")
    if response.status_code == 404:
        return None
    if not response.is_success:
        raise DeployError(f"the server at {http.base_url} answered HTTP {response.status_code} {response.text[:300]}")
    stable = _request(http, "GET", f"/v1/models/{name}/labels/{STABLE}")
    if stable.status_code == 200:
        return int(stable.json()["model_version_status"][0]["version"])
    available = [int(s["version"]) for s in response.json()["model_version_status"] if s["state"] == "AVAILABLE"]
    return max(available, default=None)


def _admin(http: "httpx.Client", token: str | None, method: str, path: str, version: int | None = None) -> None:
    body = None if version is None else {"version": version}
    response = _request(http, method, path, json=body, headers={"authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise DeployError(f"{method} {http.base_url}{path}: HTTP {response.status_code} {response.text[:300]}")


def _rescan(fleet: dict[str, "httpx.Client"], token: str | None) -> None:
    """Ask every replica to rescan now; without a token, each sees the change when it watches or polls."""
    if token:
        for http in fleet.values():
            _admin(http, token, "POST", "/admin/reload")


def _wait_label(http: "httpx.Client", name: str, moved: tuple[str, int], since: float, timeout_s: float) -> float:
    """Seconds from `since` until the replica's label answers with its version (`labels_served`, GET /models)."""
    label, version = moved
    while time.monotonic() - since < timeout_s:
        served = _request(http, "GET", "/models").json().get("labels_served", {}).get(name, {})
        if served.get(label) == version:
            return time.monotonic() - since
        time.sleep(POLL_S)
    raise DeployError(f"{http.base_url}: label {label} does not answer with version {version} after {timeout_s:g}s")


def _request(http: "httpx.Client", method: str, path: str, **kwargs: Any) -> "httpx.Response":
    """The replica's answer; DeployError, naming it, when it cannot be reached."""
    import httpx

    try:
        return http.request(method, path, **kwargs)
    except httpx.HTTPError as e:
        raise DeployError(f"cannot reach the server at {http.base_url}: {e}") from e


def _wait_available(http: "httpx.Client", name: str, version: int, since: float, timeout_s: float) -> float:
    """Seconds from `since` until the replica reports `version` AVAILABLE."""
    last: Any = None
    while time.monotonic() - since < timeout_s:
        response = _request(http, "GET", f"/v1/models/{name}/versions/{version}")
        if response.status_code == 200:
            last = response.json()["model_version_status"][0]
            if last["state"] == "AVAILABLE":
                return time.monotonic() - since
            if last["status"]["error_code"] != "OK":
                raise DeployError(
                    f"the server at {http.base_url} refused version {version}: {last['status']['error_message']}; "
                    "every replica keeps serving the previous version"
                )
        time.sleep(POLL_S)
    raise DeployError(f"{http.base_url}: version {version} not AVAILABLE after {timeout_s:g}s (last status: {last})")


def _smoke_test(
    fleet: dict[str, "httpx.Client"], name: str, version: int, probe: list[float], step: _Steps, route: dict[str, Any]
) -> None:
    """A held-out digit through /predict on every replica, by version or by label: the right digit, from the
    new version."""
    for url, http in fleet.items():
        answer = _request(http, "POST", "/predict", json={"image": probe, "model": name, **route})
        json_body = answer.headers.get("content-type", "").startswith("application/json")
        body: dict[str, Any] = answer.json() if json_body else {"error": answer.text[:300]}
        if answer.status_code != 200 or body.get("version") != version:
            raise DeployError(f"smoke prediction through {route} on {url} failed: HTTP {answer.status_code} {body}")
        digit = int(np.argmax(body["predictions"][0]["probabilities"]))
        if digit != SMOKE_DIGIT:
            raise DeployError(f"smoke prediction on {url}: a held-out {SMOKE_DIGIT} came back as {digit}")
    via = f"label {route['label']}" if "label" in route else f"version {version}"
    step(f"smoke prediction through /predict, {via}: {SMOKE_DIGIT} from version {version} on {_count(fleet)}")
