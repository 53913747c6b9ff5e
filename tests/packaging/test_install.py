"""The project installs into a fresh virtualenv, and each extra brings what its commands need."""

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.install
ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run away from the checkout, so that `-m` finds the installed packages, not the source tree."""
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _source(tmp_path: Path) -> Path:
    """What a source distribution holds: the build leaves its files in the copy, not in the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("contract", "service", "training"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    return source


def test_the_training_extra_alone_gives_a_working_training_cli(tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    install = _run(python, "-m", "pip", "install", "--quiet", f"{_source(tmp_path)}[training]", cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    assert _run(python, "-c", "import fastapi", cwd=tmp_path).returncode != 0  # the serving extra is not there
    usage = _run(python, "-m", "training", "--help", cwd=tmp_path)
    assert usage.returncode == 0 and "deploy" in usage.stdout, usage.stderr[-3000:]
    networks = _run(python, "-m", "training", "networks", cwd=tmp_path)
    assert networks.returncode == 0, networks.stderr[-3000:]
    assert "bn-512-256-aug" in networks.stdout and "Dropout(0.25)" in networks.stdout
    deploy = _run(
        python, "-m", "training", "deploy", "--server", "http://127.0.0.1:9", "--models-dir", tmp_path, cwd=tmp_path
    )
    assert deploy.returncode == 1 and "cannot reach the server" in deploy.stderr, deploy.stderr[-3000:]
