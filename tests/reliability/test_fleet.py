"""A fleet: three replicas of one repository behind HAProxy (scripts/fleet.py), under load through the
balancer while a replica is killed, every replica is restarted in turn, and a canary is promoted."""

import contextlib
import importlib.util
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.e2e.server import REPO_ROOT
from tests.helpers import DEFAULT_VERSION, HANG_S, wait_for
from tests.reliability.load import HEY_MAX_S, Load, hey_command, parse_summary, server_answers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
Record = Callable[..., None]
CONCURRENCY = 32
LOAD_BEGUN = 100  # answers the replicas have counted before the load counts as running
WAIT_S = HANG_S
TOKEN = "tok"


def _fleet_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet", REPO_ROOT / "scripts" / "fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fleet"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        pytest.skip("the fleet tests need HAProxy (Debian: apt-get install haproxy; scripts/system-deps.sh)")
    root = tmp_path_factory.mktemp("fleet")
    shutil.copytree(DEFAULT_VERSION, root / "models" / "mnist" / "1")
    settings = {"MNIST_ADMIN_TOKEN": TOKEN, "MNIST_POLL_INTERVAL_S": "5", "MNIST_ACCESS_LOG": "false"}
    with _fleet_module().Fleet(root / "models", replicas=3, settings=settings, workdir=root) as running:
        yield running


def _answered(fleet: Any) -> int:
    """POST /predict answers counted by the replicas that are up."""
    total = 0
    for replica in fleet.members:
        with contextlib.suppress(httpx.HTTPError):  # a replica that is down counts nothing
            total += sum(server_answers(replica.url).values())
    return total


def _through_the_balancer(fleet: Any, action: Callable[[], None], *, after_s: float = 1.0) -> Load:
    """hey's load on the balancer from before `action()` starts until `after_s` after it returned."""
    before = _answered(fleet)
    load = subprocess.Popen(hey_command(fleet.url, CONCURRENCY, HEY_MAX_S), stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _answered(fleet) >= before + LOAD_BEGUN, "the load to begin")
        action()
        time.sleep(after_s)
    finally:
        load.send_signal(signal.SIGINT)  # hey stops sending, finishes what it sent, and reports
    return parse_summary(load.communicate(timeout=120)[0])


def _all_up(fleet: Any) -> None:
    for replica in fleet.members:
        fleet.wait_state(replica.name, "UP", WAIT_S)


def test_kill_9_of_a_replica_loses_no_request_and_it_rejoins(fleet: Any, record: Record) -> None:
    victim = fleet.members[0]

    def kill_and_restart() -> None:
        victim.signal(signal.SIGKILL)
        fleet.wait_state(victim.name, "DOWN", WAIT_S)
        victim.start()
        victim.wait_ready()
        fleet.wait_state(victim.name, "UP", WAIT_S)

    load = _through_the_balancer(fleet, kill_and_restart)
    _no_client_error(
        load, record, "kill -9 of one of 3 replicas behind HAProxy under load: no client sees an error, and it rejoins"
    )


def test_a_rolling_restart_loses_no_request(fleet: Any, record: Record) -> None:
    _all_up(fleet)

    def restart_each() -> None:
        for replica in fleet.members:
            replica.signal(signal.SIGTERM)  # it drains what it accepted, then exits
            replica.start()
            replica.wait_ready()
            fleet.wait_state(replica.name, "UP", WAIT_S)

    load = _through_the_balancer(fleet, restart_each)
    _no_client_error(
        load,
        record,
        "SIGTERM and restart of each of 3 replicas in turn behind HAProxy under load: no client sees an error",
    )


def _no_client_error(load: Load, record: Record, claim: str) -> None:
    """Record the load's figures under `claim`, then hold it: every answer a 200, no connection error."""
    non_200 = load.answered - load.statuses.get(200, 0)
    record(claim, answered=load.answered, non_200=non_200, errors=sum(load.errors.values()))
    assert load.statuses.keys() == {200} and not load.errors, (load.statuses, load.errors)


def test_a_canary_promoted_across_every_replica_fails_nothing(fleet: Any, record: Record) -> None:
    _all_up(fleet)
    urls = [replica.url for replica in fleet.members]
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.put(f"{urls[0]}/admin/models/mnist/labels/stable", json={"version": 1}, headers=auth).is_success
    for url in urls:
        wait_for(lambda url=url: _labels_served(url) == {"stable": 1}, f"{url} to serve stable")
    answers: list[tuple[float, int, int | None]] = []  # sent, status, version
    stop = threading.Event()

    def by_label() -> None:
        with httpx.Client(base_url=fleet.url, timeout=30) as http:
            while not stop.is_set():
                sent = time.monotonic()
                response = http.post("/predict", json={"image": [0.0] * 784, "label": "stable"})
                answers.append((sent, response.status_code, response.json().get("version")))

    clients = [threading.Thread(target=by_label) for _ in range(4)]
    result: subprocess.CompletedProcess[str] | None = None
    finished = 0.0

    def deploy() -> None:
        nonlocal result, finished
        for thread in clients:
            thread.start()
        servers = [arg for url in urls for arg in ("--server", url)]
        command = [
            sys.executable, "-m", "training", "deploy", "bn-128-64", "--quiet", "--epochs", "1",
            "--models-dir", str(fleet.model_dir), *servers, "--min-accuracy", "0.5", "--tolerance", "0.5",
            "--admin-token", TOKEN, "--promote",
        ]  # fmt: skip
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        finished = time.monotonic()
        wait_for(lambda: sum(sent > finished for sent, *_ in answers) >= 8, "answers after the promotion")

    try:
        load = _through_the_balancer(fleet, deploy)
    finally:
        stop.set()
        for thread in clients:
            if thread.is_alive():
                thread.join()
    assert result is not None and result.returncode == 0, result and result.stdout[-2000:] + result.stderr[-2000:]
    after = [version for sent, _, version in answers if sent > finished]
    record(
        "canary published and promoted to `stable` on 3 replicas behind HAProxy under load: no error, and "
        "`stable` never answers with the old version once the promotion returned",
        answered=load.answered + len(answers),
        errors=sum(load.errors.values()) + sum(status != 200 for _, status, _ in answers),
        label_answers_after=len(after),
    )
    assert load.statuses.keys() == {200} and not load.errors, (load.statuses, load.errors)
    assert {status for _, status, _ in answers} == {200}
    assert {version for *_, version in answers} <= {1, 2} and set(after) == {2}
    assert "label stable answers with version 2 on all 3 replicas" in result.stdout
    for url in urls:
        assert _labels_served(url) == {"stable": 2, "canary": 2}


def _labels_served(url: str) -> dict[str, int]:
    served: dict[str, int] = httpx.get(f"{url}/models", timeout=10).json()["labels_served"].get("mnist", {})
    return served
