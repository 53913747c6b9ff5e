import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
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
    for section, figures in (
        ("## The BN paper's MNIST experiment", ("bn_paper_accuracy.png", "bn_paper_percentiles.png")),
        ("## Synchronized BN and the per-replica batch", ("bn_replica_batch.png",)),
        ("## Batch normalization and calibration (Guo et al. 2017)", ("bn_calibration.png",)),
    ):
        assert section in report
        for figure in figures:
            assert (quick_run / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    for statement in (
        "BN paper 4.1: the BN network reaches",
        "Synchronized BN matches one device",
        "BN networks are worse calibrated than their no-BN controls, before temperature scaling",
    ):
        assert statement in report


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


def test_the_bn_paper_verdicts_follow_the_measurements(quick_run: Path) -> None:
    from training.experiments import bn_paper

    measured = bn_paper.Replica.from_json(json.loads((quick_run / "experiments.json").read_text())["bn_paper"])
    steps, seeds = len(measured.steps), len(measured.grid.seeds)
    steady = [[[-1.0, 0.0, 1.0]] * steps] * seeds
    drifting = [[[-1.0 + t, t, 1.0 + 2 * t] for t in np.linspace(0, 3, steps)] for _ in range(seeds)]

    def judged(bn: float, plain: float, bn_runs: list, plain_runs: list) -> list[str]:
        r = copy.deepcopy(measured)
        r.accuracy = {"bn": [[bn] * steps] * seeds, "plain": [[plain] * steps] * seeds}
        r.percentiles = {"bn": bn_runs, "plain": plain_runs}
        return [v for _, v, _ in bn_paper.verdicts(r)]

    assert judged(0.98, 0.95, steady, drifting) == ["supported", "supported"]
    assert judged(0.95, 0.98, drifting, steady) == ["not supported", "not supported"]


def test_the_replica_batch_verdicts_follow_the_measurements() -> None:
    from training.experiments.replicas import ReplicaBatch, ReplicaGrid, verdicts

    grid = ReplicaGrid((4, 8), (0, 1, 2), 1, 10)

    def judged(sync: float, unsync: float) -> list[str]:
        accuracy = {f"{n}/{arm}": [value + 0.001 * s for s in range(3)] for n in grid.replicas
                    for arm, value in (("single", 0.97), ("sync", sync), ("unsync", unsync))}  # fmt: skip
        return [v for _, v, _ in verdicts(ReplicaBatch(grid, accuracy))]

    assert judged(sync=0.97, unsync=0.90) == ["supported", "supported"]
    assert judged(sync=0.90, unsync=0.97) == ["not supported", "not supported"]


def test_the_calibration_verdict_follows_the_measured_ece(quick_run: Path) -> None:
    from training.experiments.bn_calibration import BnCalibration, verdicts

    saved = json.loads((quick_run / "experiments.json").read_text())["bn_calibration"]
    worse = BnCalibration.from_json(copy.deepcopy(saved))
    better = BnCalibration.from_json(copy.deepcopy(saved))
    for key in worse.scores:
        if key.endswith("/ece_before"):
            bn = key.startswith("bn-")
            worse.scores[key] = [0.08 if bn else 0.02] * len(worse.scores[key])
            better.scores[key] = [0.02 if bn else 0.08] * len(better.scores[key])
    assert verdicts(worse)[0][1] == "supported"
    assert verdicts(better)[0][1] == "not supported"
