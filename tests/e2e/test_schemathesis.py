"""Schemathesis generates requests from the live OpenAPI document of a real server, and runs every check
on the answers: the schema describes what the server takes and gives, exactly."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e
CONFIG = Path(__file__).with_name("schemathesis.toml")  # every check; its one exception is explained there


def test_generated_requests_get_no_server_error_and_conforming_responses(default_repo: Path, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.skip("schemathesis is not installed")
    with ServerProcess(default_repo, tmp_path / "server.log", poll_interval_s=0, access_log="false") as server:
        result = subprocess.run(
            [
                str(schemathesis),
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--workers",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
                "--request-timeout",
                "20",
                "--suppress-health-check",
                "all",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "No issues found" in output or "passed" in output.lower(), output[-3000:]
