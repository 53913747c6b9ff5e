"""Measure (or reload) the experiments, then write the plots, the report and the raw data."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from training.data import Source, Splits, load_source, split
from training.experiments import bn_calibration, bn_paper, plots, replicas
from training.experiments.claims import FINDINGS, Verdict, verdicts
from training.experiments.grid import GRIDS, Grid
from training.experiments.measure import Measurements, measure
from training.experiments.report import Sections, report

Log = Callable[[str], None]
DATA_FILE = "experiments.json"
REPORT_FILE = "experiments.md"
# The measurements of an earlier run on other data, if kept beside DATA_FILE: the report shows its verdicts.
EARLIER_FILE = "experiments-embedded.json"
PAPER_FIGURES = ("bn_paper_accuracy.png", "bn_paper_percentiles.png")
REPLICA_FIGURE = "bn_replica_batch.png"
CALIBRATION_FIGURE = "bn_calibration.png"


@dataclass(frozen=True)
class ExperimentOptions:
    data: str = "auto"  # as `--data` of `train`: training.data.load_source
    out: Path = Path("docs")
    quick: bool = False  # 1 seed, 3 epochs, 600 digits, a short BN paper replica: for tests
    report_only: bool = False  # train nothing: redo verdicts, plots and report from OUT/experiments.json
    replicas_only: bool = False  # measure only the replica-batch section into OUT/experiments.json
    calibration_only: bool = False  # measure only the BN-calibration section into OUT/experiments.json


def run_experiments(options: ExperimentOptions, log: Log) -> list[Verdict]:
    data = options.out / DATA_FILE
    size = "quick" if options.quick else "full"
    if options.report_only or options.replicas_only or options.calibration_only:
        saved = json.loads(data.read_text())
        found, replica = Measurements.from_json(saved), bn_paper.Replica.from_json(saved["bn_paper"])
        spread = replicas.ReplicaBatch.from_json(saved["replica_batch"]) if "replica_batch" in saved else None
        calibrated = (
            bn_calibration.BnCalibration.from_json(saved["bn_calibration"]) if "bn_calibration" in saved else None
        )
        if options.replicas_only:
            spread = replicas.measure(replicas.REPLICA_GRIDS[size], options.data, log)
        if options.calibration_only:
            calibrated = bn_calibration.measure(bn_calibration.CALIBRATION_GRIDS[size], load_source(options.data), log)
    else:
        grid, source = GRIDS[size], load_source(options.data)
        started = time.monotonic()
        splits = _splits(grid, source)
        found = measure(grid, splits, log)
        found.wall_s = time.monotonic() - started
        test = source.test if source.test is not None else splits.test
        replica = bn_paper.measure(bn_paper.PAPER_GRIDS[size], source.train, test, source.name, log)
        spread = replicas.measure(replicas.REPLICA_GRIDS[size], options.data, log)
        calibrated = bn_calibration.measure(bn_calibration.CALIBRATION_GRIDS[size], source, log)
    sections = Sections(replica, PAPER_FIGURES, spread, calibrated)
    if not options.report_only:
        _save(data, found, sections)
    judged = _judged(found, sections)
    _draw(options.out, found, sections)
    command = "python -m training experiments" + (" --quick" if found.grid.name == "quick" else "")
    text = report(found, judged, sections, earlier=_earlier(options.out), command=command)
    (options.out / REPORT_FILE).write_text(text)
    for v in judged:
        log(f"{v.claim}: {v.verdict}")
    log(f"wrote {options.out / REPORT_FILE} (measurements took {(found.wall_s + replica.wall_s) / 60:.0f} min)")
    return judged


def _save(data: Path, found: Measurements, sections: Sections) -> None:
    data.parent.mkdir(parents=True, exist_ok=True)
    saved = {**found.to_json(), "bn_paper": sections.replica.to_json()}
    if sections.spread is not None:
        saved["replica_batch"] = sections.spread.to_json()
    if sections.calibrated is not None:
        saved["bn_calibration"] = sections.calibrated.to_json()
    data.write_text(json.dumps(saved, indent=1) + "\n")


def _judged(found: Measurements, sections: Sections) -> list[Verdict]:
    judged = verdicts(found) + [Verdict(*v) for v in bn_paper.verdicts(sections.replica)]
    if sections.spread is not None:
        judged += [Verdict(*v) for v in replicas.verdicts(sections.spread)]
    if sections.calibrated is not None:
        judged += [Verdict(*v) for v in bn_calibration.verdicts(sections.calibrated)]
    return judged


def _draw(out: Path, found: Measurements, sections: Sections) -> None:
    if sections.spread is not None:
        plots.save(replicas.draw, sections.spread, out / REPLICA_FIGURE)
    if sections.calibrated is not None:
        plots.save(bn_calibration.draw, sections.calibrated, out / CALIBRATION_FIGURE)
    for finding in FINDINGS:
        plots.save(finding.draw, found, out / finding.figure)
    plots.save(bn_paper.draw_accuracy, sections.replica, out / PAPER_FIGURES[0])
    plots.save(bn_paper.draw_percentiles, sections.replica, out / PAPER_FIGURES[1], columns=2)


def _splits(grid: Grid, source: Source) -> Splits:
    """At most `grid.per_class` training digits of each class, the first in file order; then the split."""
    digits = source.train
    if grid.per_class is not None:
        digits = digits.first_of_each_class(grid.per_class)
    return split(digits, seed=0, source=source.name, test=source.test)


def _earlier(out: Path) -> dict[str, str]:
    """Claim -> verdict of the earlier run kept in OUT/EARLIER_FILE, if there is one."""
    path = out / EARLIER_FILE
    if not path.is_file():
        return {}
    return {v.claim: v.verdict for v in verdicts(Measurements.from_json(json.loads(path.read_text())))}
