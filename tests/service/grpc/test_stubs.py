import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_stubs_are_what_the_vendored_protos_generate() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate-grpc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr[-2000:]
