"""Reliability tests record figures; `--reliability-report PATH` renders them as Markdown.

CI runs them at a size that fits (`RELIABILITY_SCALE=ci`, the default); `make reliability` runs
them at full size (60 s soak and longer faults) and writes RELIABILITY.md.
"""

import os
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIGURES: list[tuple[str, str, dict[str, Any]]] = []


@dataclass(frozen=True)
class Scale:
    name: str
    soak_s: float
    overload_s: float


SCALES = {"ci": Scale("ci", soak_s=15, overload_s=6), "full": Scale("full", soak_s=60, overload_s=20)}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-report", type=Path, help="write the recorded figures to this Markdown file")


@pytest.fixture(scope="session")
def scale() -> Scale:
    return SCALES[os.environ.get("RELIABILITY_SCALE", "ci")]


@pytest.fixture(scope="session", autouse=True)
def _needs_hey() -> None:
    if shutil.which("hey") is None:
        pytest.skip("the reliability tests need `hey` (Debian: apt-get install hey)")


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Any]:
    def add(claim: str, **figures: Any) -> None:
        FIGURES.append((request.node.name, claim, figures))

    yield add


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--reliability-report", default=None)
    if not path or not FIGURES:
        return
    scale = os.environ.get("RELIABILITY_SCALE", "ci")
    lines = [
        "# Reliability",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, at scale `{scale}`, with `hey` on the same machine.",
        "",
        f"Command: `RELIABILITY_SCALE={scale} .venv/bin/python -m pytest tests/reliability "
        f"--reliability-report RELIABILITY.md` (`make reliability`). "
        "Each row is one test; the test fails if the claim does not hold.",
        "",
        "| test | claim | figures |",
        "|---|---|---|",
    ]
    for name, claim, figures in FIGURES:
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
        lines.append(f"| `{name}` | {claim} | {shown} |")
    Path(path).write_text("\n".join(lines) + "\n")
