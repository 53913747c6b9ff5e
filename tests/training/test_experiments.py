import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

from training.cli import main
from training.experiments.claims import FINDINGS, verdicts
from training.experiments.measure import Cell, Measurements


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("experiments")
    assert main(["experiments", "--quick", "--out", str(out)]) == 0
    return out


def _measurements(out: Path) -> Measurements:
    return Measurements.from_json(json.loads((out / "experiments.json").read_text()))


def test_quick_mode_writes_the_report_and_every_plot(quick_run: Path) -> None:
    report = (quick_run / "experiments.md").read_text()
    for claim in range(1, 8):
        assert f"| {claim}. " in report
    for finding in FINDINGS:
        assert (quick_run / finding.figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", finding.figure
        assert f"]({finding.figure})" in report
    assert "python -m training experiments --quick" in report


def test_the_report_can_be_redone_from_the_raw_data_alone(quick_run: Path) -> None:
    first = (quick_run / "experiments.md").read_text()
    (quick_run / "experiments.md").unlink()
    assert main(["experiments", "--report-only", "--out", str(quick_run)]) == 0
    assert (quick_run / "experiments.md").read_text() == first


def _with_curves(m: Measurements, arm: str, accuracy: float) -> None:
    cell = Cell("curves", arm)
    m.cells[cell] = [replace(r, val_curve=[accuracy] * len(r.val_curve)) for r in m.cells[cell]]


def test_verdicts_follow_the_measurements(quick_run: Path) -> None:
    measured = _measurements(quick_run)
    found = {v.claim[:2]: v.verdict for v in verdicts(measured)}
    assert set(found.values()) <= {"supported", "not supported", "mixed"}
    assert found["7."] == "supported"  # one digit's own statistics cannot classify anything

    faster = copy.deepcopy(measured)
    _with_curves(faster, "bn", 0.96)
    _with_curves(faster, "plain", 0.5)
    slower = copy.deepcopy(measured)
    _with_curves(slower, "bn", 0.5)
    _with_curves(slower, "plain", 0.96)
    assert next(v for v in verdicts(faster) if v.claim.startswith("1.")).verdict == "supported"
    assert next(v for v in verdicts(slower) if v.claim.startswith("1.")).verdict == "not supported"

    same = copy.deepcopy(measured)
    same.inference["training_batch_of_one"] = same.inference["inference"]
    assert next(v for v in verdicts(same) if v.claim.startswith("7.")).verdict == "not supported"
