"""The project installs into fresh virtualenvs on the Pythons it supports, and each extra brings what its
console command needs: training on the oldest; serving, with every committed model loaded and passing
its self-check and golden probes, on the newest."""

import json
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port, wait_ready

pytestmark = pytest.mark.install
ROOT = Path(__file__).resolve().parents[2]
# The oldest gets the training extra, the newest the serving one; each fresh install costs the suite a minute
# and a half. Python 3.10 also runs the service's own tests (`make test-oldest`), so both extras meet both ends.
OLDEST, OTHERS = "3.10", ("3.13",)


def _python(version: str) -> str:
    found = subprocess.run([str(ROOT / "scripts" / "find-python.sh"), version], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip(f"no Python {version} on this machine")
    return found.stdout.strip()


def _run(*command: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run away from the checkout, so that the installed packages are used, not the source tree."""
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _install(version: str, extra: str, tmp_path: Path) -> Path:
    """A fresh virtualenv with `.[extra]` installed from a copy of what a source distribution holds."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("contract", "service", "training"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    assert _run(_python(version), "-m", "venv", venv, cwd=tmp_path).returncode == 0
    install = _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{source}[{extra}]", cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    return venv / "bin"


def test_the_training_extra_gives_a_working_mnist_train_on_the_oldest_python(tmp_path: Path) -> None:
    bin_ = _install(OLDEST, "training", tmp_path)
    assert _run(bin_ / "python", "-c", "import fastapi", cwd=tmp_path).returncode != 0  # no serving extra
    usage = _run(bin_ / "mnist-train", "--help", cwd=tmp_path)
    assert usage.returncode == 0 and "deploy" in usage.stdout, usage.stderr[-3000:]
    networks = _run(bin_ / "mnist-train", "networks", cwd=tmp_path)
    assert networks.returncode == 0, networks.stderr[-3000:]
    assert "bn-512-256-aug" in networks.stdout and "Dropout(0.25)" in networks.stdout
    deploy = _run(
        bin_ / "mnist-train", "deploy", "--server", "http://127.0.0.1:9", "--models-dir", tmp_path, cwd=tmp_path
    )
    assert deploy.returncode == 1 and "cannot reach the server" in deploy.stderr, deploy.stderr[-3000:]
    module = _run(bin_ / "python", "-m", "training", "networks", cwd=tmp_path)
    assert module.returncode == 0 and module.stdout == networks.stdout


@pytest.mark.parametrize("version", OTHERS)
def test_the_serving_extra_serves_every_committed_model(version: str, tmp_path: Path) -> None:
    bin_ = _install(version, "serving", tmp_path)
    port, grpc_port = free_port(), free_port()
    committed = sorted(int(p.name) for p in (ROOT / "models" / "mnist").iterdir() if p.name.isdigit())
    env = {
        "MNIST_MODEL_DIR": str(ROOT / "models"),
        "MNIST_GRPC_PORT": str(grpc_port),
        "MNIST_VERSIONS_TO_KEEP": str(len(committed)),  # every one, not only the newest two
        "PATH": str(bin_),
    }
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [bin_ / "mnist-serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_ready(url, 180, alive=lambda: server.poll() is None), (tmp_path / "server.log").read_text()[-3000:]
        seven = json.loads((ROOT / "docs" / "examples" / "seven.json").read_text())
        answer = httpx.post(f"{url}/predict", json=seven, timeout=30).json()
        listing = httpx.get(f"{url}/models", timeout=30).json()["models"]["mnist"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    assert answer["predictions"][0]["digit"] == 7
    assert sorted(v["version"] for v in listing) == committed
    for served in listing:
        assert served["state"] == "AVAILABLE" and "golden probes reproduced" in served["checks"][0], served
