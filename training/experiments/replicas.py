"""Synchronized BN and the per-replica batch: the article's "batch size of at least 32" across replicas.

Data parallelism splits every batch: with a global batch of 32 on 4 replicas each replica normalizes over
8 rows, on 8 replicas over 4, unless BN is synchronized. Each configuration trains `bn-256-128` under
MirroredStrategy over logical CPU devices, with BN synchronized and not, against one device at the same
global batch; every run is its own process (devices must be set before TensorFlow starts), through
`training.distributed`. The hypothesis: synchronized BN matches one device; unsynchronized BN falls
behind as the per-replica batch shrinks.
"""

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from training.experiments.rules import SUPPORTED, better, fmt, verdict

Log = Callable[[str], None]
GLOBAL_BATCH = 32
NETWORK = "bn-256-128"
ARMS = (("single", "one device"), ("sync", "synchronized BN"), ("unsync", "unsynchronized BN"))


@dataclass(frozen=True)
class ReplicaGrid:
    replicas: tuple[int, ...]  # each at GLOBAL_BATCH // replicas rows per replica
    seeds: tuple[int, ...]
    epochs: int
    per_class: int


REPLICA_GRIDS = {
    "full": ReplicaGrid((4, 8), (0, 1, 2), 5, 1_500),
    "quick": ReplicaGrid((4,), (0,), 1, 60),
}


@dataclass
class ReplicaBatch:
    grid: ReplicaGrid
    # "<replicas>/<arm>" -> test accuracy per seed
    accuracy: dict[str, list[float]] = field(default_factory=dict)

    def runs(self, replicas: int, arm: str) -> list[float]:
        return self.accuracy[f"{replicas}/{arm}"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ReplicaBatch":
        grid = data["grid"]
        shape = ReplicaGrid(tuple(grid["replicas"]), tuple(grid["seeds"]), grid["epochs"], grid["per_class"])
        return cls(shape, data["accuracy"])


def measure(grid: ReplicaGrid, data: str, log: Log) -> ReplicaBatch:
    found = ReplicaBatch(grid)
    for replicas in grid.replicas:
        for arm, _ in ARMS:
            found.accuracy[f"{replicas}/{arm}"] = [_run(replicas, arm, seed, grid, data) for seed in grid.seeds]
            log(f"  replica batch {replicas}x{GLOBAL_BATCH // replicas} {arm}: {fmt(found.runs(replicas, arm))}%")
    return found


def _run(replicas: int, arm: str, seed: int, grid: ReplicaGrid, data: str) -> float:
    spec = {"replicas": replicas, "arm": arm, "seed": seed, "epochs": grid.epochs, "per_class": grid.per_class}
    command = [sys.executable, "-m", "training.experiments.replicas", json.dumps(spec), data]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"replica-batch run {spec} failed: {done.stderr[-2000:]}")
    accuracy: float = json.loads(done.stdout.strip().splitlines()[-1])["test_accuracy"]
    return accuracy


def _train_one(spec: dict[str, Any], data: str) -> float:
    """In its own process: one run, on `per_class` training digits of each class; the test accuracy."""
    from training.config import Distribution, hyperparameters_for
    from training.data import load_source, split
    from training.distributed import fit, make_strategy
    from training.networks import NETWORKS

    single = spec["arm"] == "single"
    distribution = Distribution("none" if single else "mirrored", spec["replicas"], spec["arm"] == "sync")
    strategy = make_strategy(distribution)
    source = load_source(data)
    digits = source.train.first_of_each_class(spec["per_class"])
    splits = split(digits, seed=0, source=source.name, test=source.test)
    per_replica = GLOBAL_BATCH if single else GLOBAL_BATCH // spec["replicas"]
    hp = hyperparameters_for(NETWORKS[NETWORK], seed=spec["seed"], epochs=spec["epochs"], batch_size=per_replica)
    result = fit(NETWORKS[NETWORK], hp, splits, strategy, sync_bn=distribution.sync_bn)
    return result.metrics["test_accuracy"]


def verdicts(r: ReplicaBatch) -> list[tuple[str, str, str]]:
    """(claim, verdict, evidence) for the hypothesis' two halves, by the rule in `rules`."""
    smallest = min(GLOBAL_BATCH // n for n in r.grid.replicas)
    matches = [better(r.runs(n, "sync"), r.runs(n, "single")) for n in r.grid.replicas]
    # Scores for "unsynchronized is worse than synchronized", per configuration.
    degrades = [better(r.runs(n, "sync"), r.runs(n, "unsync")) for n in r.grid.replicas]
    evidence = "; ".join(
        f"{GLOBAL_BATCH // n} rows x {n} replicas: one device {fmt(r.runs(n, 'single'))}%, "
        f"synchronized {fmt(r.runs(n, 'sync'))}%, unsynchronized {fmt(r.runs(n, 'unsync'))}%"
        for n in r.grid.replicas
    )
    same = SUPPORTED if all(m == 0 for m in matches) else "not supported"
    return [
        ("Synchronized BN matches one device at the same global batch", same, evidence),
        (
            f"Unsynchronized BN falls behind as the per-replica batch shrinks (to {smallest} rows)",
            verdict(degrades),
            evidence,
        ),
    ]


def draw(r: ReplicaBatch, ax: Any) -> None:
    width = 0.25
    xs = np.arange(len(r.grid.replicas))
    for i, (arm, label) in enumerate(ARMS):
        values = [np.array(r.runs(n, arm)) * 100 for n in r.grid.replicas]
        ax.bar(xs + (i - 1) * width, [v.mean() for v in values], width, yerr=[v.std() for v in values], label=label)
    ax.set_xticks(xs, [f"{GLOBAL_BATCH // n} rows x {n} replicas" for n in r.grid.replicas])
    low = min(min(r.runs(n, arm)) for n in r.grid.replicas for arm, _ in ARMS) * 100
    ax.set(title=f"{NETWORK}, global batch {GLOBAL_BATCH}", ylabel="test accuracy (%)", ylim=(max(0, low - 3), 100))
    ax.legend()


if __name__ == "__main__":
    sys.stdout.write(json.dumps({"test_accuracy": _train_one(json.loads(sys.argv[1]), sys.argv[2])}) + "\n")
