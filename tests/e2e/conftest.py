"""Fixtures that end-to-end modules share."""

import subprocess
import venv
from pathlib import Path

import pytest

from tests.e2e.server import REPO_ROOT

CLIENT_VENV = REPO_ROOT / ".venv-clients"  # tritonclient pins protobuf<7; the server needs 7
TRITONCLIENT = "tritonclient[grpc]==2.73.*"


@pytest.fixture(scope="session")
def client_python() -> Path:
    """A virtualenv with tritonclient[grpc], built once and kept in .venv-clients."""
    python = CLIENT_VENV / "bin" / "python"
    ready = (
        python.exists()
        and subprocess.run([python, "-c", "import tritonclient.grpc"], capture_output=True).returncode == 0
    )
    if not ready:
        venv.create(CLIENT_VENV, with_pip=True, clear=True)
        install = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", TRITONCLIENT], capture_output=True, text=True, timeout=900
        )
        if install.returncode != 0:
            pytest.fail(f"could not install {TRITONCLIENT}: {install.stderr[-2000:]}")
    return python
