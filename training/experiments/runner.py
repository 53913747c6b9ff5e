"""Measure (or reload) the experiments, then write the plots, the report and the raw data."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from training.data import Source, Splits, load_source, split
from training.experiments import bn_paper, plots, replicas
from training.experiments.claims import FINDINGS, Verdict, verdicts
from training.experiments.grid import GRIDS, Grid
from training.experiments.measure import Measurements, measure
from training.experiments.report import report

Log = Callable[[str], None]
DATA_FILE = "experiments.json"
REPORT_FILE = "experiments.md"
# The measurements of an earlier run on other data, if kept beside DATA_FILE: the report shows its verdicts.
EARLIER_FILE = "experiments-embedded.json"
PAPER_FIGURES = ("bn_paper_accuracy.png", "bn_paper_percentiles.png")
REPLICA_FIGURE = "bn_replica_batch.png"


@dataclass(frozen=True)
class ExperimentOptions:
    data: str = "auto"  # as `--data` of `train`: training.data.load_source
    out: Path = Path("docs")
    quick: bool = False  # 2 seeds, 3 epochs, 600 digits, a short BN paper replica: for tests
    report_only: bool = False  # train nothing: redo verdicts, plots and report from OUT/experiments.json
    replicas_only: bool = False  # measure only the replica-batch section into OUT/experiments.json


def run_experiments(options: ExperimentOptions, log: Log) -> list[Verdict]:
    data = options.out / DATA_FILE
    size = "quick" if options.quick else "full"
    if options.report_only or options.replicas_only:
        saved = json.loads(data.read_text())
        found, replica = Measurements.from_json(saved), bn_paper.Replica.from_json(saved["bn_paper"])
        spread = replicas.ReplicaBatch.from_json(saved["replica_batch"]) if "replica_batch" in saved else None
        if options.replicas_only:
            spread = replicas.measure(replicas.REPLICA_GRIDS[size], options.data, log)
    else:
        grid, source = GRIDS[size], load_source(options.data)
        started = time.monotonic()
        splits = _splits(grid, source)
        found = measure(grid, splits, log)
        found.wall_s = time.monotonic() - started
        test = source.test if source.test is not None else splits.test
        replica = bn_paper.measure(bn_paper.PAPER_GRIDS[size], source.train, test, source.name, log)
        spread = replicas.measure(replicas.REPLICA_GRIDS[size], options.data, log)
    if not options.report_only:
        options.out.mkdir(parents=True, exist_ok=True)
        saved = {**found.to_json(), "bn_paper": replica.to_json()}
        if spread is not None:
            saved["replica_batch"] = spread.to_json()
        data.write_text(json.dumps(saved, indent=1) + "\n")
    judged = verdicts(found) + [Verdict(*v) for v in bn_paper.verdicts(replica)]
    if spread is not None:
        judged += [Verdict(*v) for v in replicas.verdicts(spread)]
        plots.save(replicas.draw, spread, options.out / REPLICA_FIGURE)
    for finding in FINDINGS:
        plots.save(finding.draw, found, options.out / finding.figure)
    plots.save(bn_paper.draw_accuracy, replica, options.out / PAPER_FIGURES[0])
    plots.save(bn_paper.draw_percentiles, replica, options.out / PAPER_FIGURES[1], columns=2)
    command = "python -m training experiments" + (" --quick" if found.grid.name == "quick" else "")
    text = report(found, judged, replica, PAPER_FIGURES, spread, earlier=_earlier(options.out), command=command)
    (options.out / REPORT_FILE).write_text(text)
    for v in judged:
        log(f"{v.claim}: {v.verdict}")
    log(f"wrote {options.out / REPORT_FILE} (measurements took {(found.wall_s + replica.wall_s) / 60:.0f} min)")
    return judged


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
