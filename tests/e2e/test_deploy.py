"""`python -m training deploy` against a real local server."""

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contract import list_versions
from tests.e2e.server import REPO_ROOT, ServerProcess
from training.data import load_splits
from training.export import load_signature
from training.train import score

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(default_repo: Path, tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    with ServerProcess(default_repo, tmp_path / "server.log", poll_interval_s=1, admin_token="tok") as server:
        yield server, default_repo


def _deploy(server: ServerProcess, models: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Deploy to `server` (and to any other `--server` in `args`)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "deploy",
            "bn-128-64",
            "--quiet",
            "--models-dir",
            str(models),
            "--server",
            server.url,
            *args,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_gate_refuses_a_model_worse_than_the_served_one(served: tuple[ServerProcess, Path]) -> None:
    server, models = served
    result = _deploy(server, models, "--epochs", "1", "--min-accuracy", "0.5")
    assert result.returncode == 1
    assert "gate refused" in result.stderr and "below the served version 1" in result.stderr
    splits = load_splits("embedded", seed=0)  # the split deploy measures both versions on
    served_accuracy, _ = score(load_signature(models / "mnist" / "1")[1](splits.test.x), splits.test.y)
    assert f"vs served version 1 on the same digits: {served_accuracy:.4f}" in result.stdout
    assert list(list_versions(models / "mnist")) == [1]
    assert httpx.post(f"{server.url}/predict", json={"image": [0.0] * 784}).json()["version"] == 1


def test_the_gate_refuses_a_model_under_the_floor(served: tuple[ServerProcess, Path]) -> None:
    server, models = served
    result = _deploy(server, models, "--epochs", "1", "--min-accuracy", "0.999")
    assert result.returncode == 1 and "below the floor 0.9990" in result.stderr
    assert "export verified" not in result.stdout  # refused before the export's work
    assert list(list_versions(models / "mnist")) == [1]


def test_a_passing_model_goes_live_without_a_restart(served: tuple[ServerProcess, Path]) -> None:
    server, models = served
    result = _deploy(
        server, models, "--epochs", "2", "--min-accuracy", "0.5", "--tolerance", "0.5", "--admin-token", "tok"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for step in range(1, 8):
        assert f"[{step}/7]" in result.stdout
    assert "deployed mnist version 2 (was 1)" in result.stdout
    assert httpx.post(f"{server.url}/predict", json={"image": [0.0] * 784}).json()["version"] == 2


def test_an_unreachable_server_stops_before_training(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "training", "deploy", "--models-dir", str(tmp_path), "--server", "http://127.0.0.1:9"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and "cannot reach the server at http://127.0.0.1:9" in result.stderr
    assert not any(tmp_path.iterdir())


def test_one_unreachable_replica_stops_the_deploy_before_training(served: tuple[ServerProcess, Path]) -> None:
    server, models = served
    result = _deploy(server, models, "--server", "http://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach the server at http://127.0.0.1:9" in result.stderr
    assert list(list_versions(models / "mnist")) == [1]


def test_resolve_makes_one_replica_of_each_address() -> None:
    from training.deploy import replicas

    assert replicas(("http://127.0.0.1:8000/",), resolve=False) == ["http://127.0.0.1:8000"]
    assert replicas(("http://127.0.0.1:8000",), resolve=True) == ["http://127.0.0.1:8000"]
    assert "http://127.0.0.1:8000" in replicas(("http://localhost:8000",), resolve=True)


def test_a_canary_promoted_on_two_replicas_under_load_fails_nothing_and_stable_never_goes_back(
    served: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, models = served
    auth = {"authorization": "Bearer tok"}
    assert httpx.put(f"{server.url}/admin/models/mnist/labels/stable", json={"version": 1}, headers=auth).is_success
    answers: list[tuple[str, float, float, int, int | None]] = []  # replica, sent, received, status, version
    stop = threading.Event()
    # A second replica of the same repository that neither watches nor polls in the test's time: it sees the
    # new version and the label moves only when the deploy asks every replica to rescan.
    second = ServerProcess(models, tmp_path / "second.log", poll_interval_s=3600, admin_token="tok")

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                sent = time.monotonic()
                response = http.post("/predict", json={"image": [0.0] * 784, "label": "stable"})
                answers.append((url, sent, time.monotonic(), response.status_code, response.json().get("version")))

    with second:
        clients = [threading.Thread(target=client, args=(url,)) for url in [server.url, second.url] * 2]
        for thread in clients:
            thread.start()
        try:
            result = _deploy(
                server, models, "--server", second.url, "--epochs", "2", "--min-accuracy", "0.5",
                "--tolerance", "0.5", "--admin-token", "tok", "--promote",
            )  # fmt: skip
            finished = time.monotonic()
            while sum(sent > finished for _, sent, *_ in answers) < 4:  # requests to both after the deploy
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        labels_served = httpx.get(f"{second.url}/models").json()["labels_served"]["mnist"]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "version 2 AVAILABLE on all 2 replicas" in result.stdout
    assert "label stable answers with version 2 on all 2 replicas" in result.stdout
    assert "[8/9] smoke prediction through /predict, label canary: 7 from version 2 on all 2" in result.stdout
    assert "[9/9] smoke prediction through /predict, label stable: 7 from version 2 on all 2" in result.stdout
    assert labels_served == {"stable": 2, "canary": 2}
    assert {status for *_, status, _ in answers} == {200}
    assert {version for *_, version in answers} == {1, 2}
    assert all(version == 2 for _, sent, _, _, version in answers if sent > finished)
    for replica in (server.url, second.url):  # each replica moves once, and never back to 1
        seen = [answer for answer in answers if answer[0] == replica]
        first_new = min(received for _, _, received, _, version in seen if version == 2)
        assert all(version == 2 for _, sent, _, _, version in seen if sent > first_new)
    labels = httpx.get(f"{server.url}/models").json()["labels"]["mnist"]
    assert labels == {"stable": 2, "canary": 2}
