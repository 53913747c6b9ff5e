"""The peers' virtualenvs: each peer in its own, built once by the bench and reused while its pins hold.

A peer brings its own web stack (and often its own pins of numpy, pydantic or uvicorn), so it cannot
share this project's environment. Each venv gets the peer's pinned release and the same tensorflow-cpu.
"""

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENSORFLOW = "tensorflow-cpu==2.21.0"
# Every peer supports it (KServe and Ray Serve do not all support 3.13 yet).
PEER_PYTHONS = ("3.11", "3.12")


@dataclass(frozen=True)
class Venv:
    name: str
    requirements: tuple[str, ...]

    @property
    def path(self) -> Path:
        return ROOT / "bench" / f".venv-{self.name}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def _stamp(self) -> Path:
        digest = hashlib.sha256("\n".join((*self.requirements, TENSORFLOW)).encode()).hexdigest()[:12]
        return self.path / f".installed-{digest}"


class VenvFailed(Exception):
    """The venv could not be built; the message says why (pip's last lines)."""


def ensure(venv: Venv) -> Path:
    """The venv's python, after building the venv unless this exact set of pins is already installed."""
    if venv._stamp.exists():
        return venv.python
    python = subprocess.run(
        [str(ROOT / "scripts" / "find-python.sh"), *PEER_PYTHONS], capture_output=True, text=True
    ).stdout.strip()
    if not python:
        raise VenvFailed(f"no Python {' or '.join(PEER_PYTHONS)} to build {venv.path.name} with")
    print(f"building {venv.path.name}: {' '.join(venv.requirements)} (once; about two minutes)", flush=True)
    steps = [
        [python, "-m", "venv", "--clear", str(venv.path)],
        [str(venv.python), "-m", "pip", "install", "--quiet", *venv.requirements, TENSORFLOW],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise VenvFailed(f"`{' '.join(step[2:5])} ...` failed: " + " / ".join(tail))
    venv._stamp.touch()
    return venv.python
