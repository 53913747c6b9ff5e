"""Does batch normalization make a network worse calibrated, as Guo et al. (2017, "On Calibration of Modern
Neural Networks") report?

Each of the article's three networks and its no-BN control is trained with the article's own recipe
(Adam at its learning rate, batches of 32, no dropout, no augmentation) once per seed, and measured on
the official test digits: expected calibration error (15 bins) and negative log-likelihood, before
temperature scaling and after it (the temperature fitted on the validation digits' NLL, as the
exporter does). The claim holds where the BN network's ECE before scaling is above its control's.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from training import calibration
from training.data import Source, Splits, split
from training.experiments.rules import better, fmt, verdict

Log = Callable[[str], None]
SCORES = ("ece_before", "ece_after", "nll_before", "nll_after", "accuracy")
STAGES = (("before", "before temperature scaling"), ("after", "after temperature scaling"))


@dataclass(frozen=True)
class CalibrationGrid:
    seeds: tuple[int, ...]
    epochs: int
    per_class: int


CALIBRATION_GRIDS = {
    "full": CalibrationGrid((0, 1, 2), 10, 1_500),
    "quick": CalibrationGrid((0,), 1, 60),
}


@dataclass
class BnCalibration:
    grid: CalibrationGrid
    source: str = ""
    test_size: int = 0
    # "<network>/<score>" -> one value per seed
    scores: dict[str, list[float]] = field(default_factory=dict)

    def runs(self, network: str, score: str) -> list[float]:
        return self.scores[f"{network}/{score}"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BnCalibration":
        grid = data["grid"]
        shape = CalibrationGrid(tuple(grid["seeds"]), grid["epochs"], grid["per_class"])
        return cls(shape, data["source"], data["test_size"], data["scores"])


def measure(grid: CalibrationGrid, source: Source, log: Log) -> BnCalibration:
    from training.recipes import PAIRS

    splits = split(source.train.first_of_each_class(grid.per_class), seed=0, source=source.name, test=source.test)
    found = BnCalibration(grid, source.name, len(splits.test))
    for name in (network for pair in PAIRS for network in pair):
        runs = [_run(name, seed, grid.epochs, splits) for seed in grid.seeds]
        for score in SCORES:
            found.scores[f"{name}/{score}"] = [run[score] for run in runs]
        log(
            f"  calibration {name}: ECE {fmt(found.runs(name, 'ece_before'))}% -> {fmt(found.runs(name, 'ece_after'))}%"
        )
    return found


def _run(name: str, seed: int, epochs: int, splits: Splits) -> dict[str, float]:
    from training.config import hyperparameters_for
    from training.head import logits
    from training.networks import NETWORKS
    from training.recipes import RECIPE_BATCH
    from training.train import run

    network = NETWORKS[name]
    trained = run(network, hyperparameters_for(network, seed=seed, epochs=epochs, batch_size=RECIPE_BATCH), splits)
    temperature = calibration.fit("temperature", logits(trained.model, splits.validation.x), splits.validation.y)
    z = logits(trained.model, splits.test.x)
    before = calibration.scores(calibration.softmax(z), splits.test.y)
    after = calibration.scores(temperature.apply(z), splits.test.y)
    return {
        "ece_before": before.ece,
        "ece_after": after.ece,
        "nll_before": before.nll,
        "nll_after": after.nll,
        "accuracy": before.accuracy,
    }


def verdicts(r: BnCalibration) -> list[tuple[str, str, str]]:
    """(claim, verdict, evidence): BN's ECE against its control's, before and after temperature scaling."""
    from training.recipes import PAIRS

    rows = []
    for stage, words in STAGES:
        # +1 where BN's ECE is above its control's: worse calibrated, as the claim has it.
        scores = [better(r.runs(bn, f"ece_{stage}"), r.runs(plain, f"ece_{stage}")) for bn, plain in PAIRS]
        evidence = "; ".join(
            f"{bn} {fmt(r.runs(bn, f'ece_{stage}'))}% vs {plain} {fmt(r.runs(plain, f'ece_{stage}'))}%"
            for bn, plain in PAIRS
        )
        rows.append(
            (f"BN networks are worse calibrated than their no-BN controls, {words} (ECE)", verdict(scores), evidence)
        )
    return rows


def draw(r: BnCalibration, ax: Any) -> None:
    from training.recipes import PAIRS

    width = 0.2
    xs = np.arange(len(PAIRS))
    bars = [(bn_or_plain, stage) for stage, _ in STAGES for bn_or_plain in (0, 1)]
    for i, (which, stage) in enumerate(bars):
        values = [np.array(r.runs(pair[which], f"ece_{stage}")) * 100 for pair in PAIRS]
        label = f"{'BN' if which == 0 else 'no BN'}, {stage} temperature scaling"
        ax.bar(xs + (i - 1.5) * width, [v.mean() for v in values], width, yerr=[v.std() for v in values], label=label)
    ax.set_xticks(xs, [pair[0].removeprefix("bn-") for pair in PAIRS])
    ax.set(title="Expected calibration error on the official test digits", xlabel="network", ylabel="ECE (%)")
    ax.legend()


def table(r: BnCalibration) -> list[str]:
    from training.recipes import PAIRS

    rows = [
        "| network | test accuracy | ECE before | ECE after | NLL before | NLL after |",
        "|---|---|---|---|---|---|",
    ]
    for name in (network for pair in PAIRS for network in pair):
        nll = [_three_places(r.runs(name, f"nll_{stage}")) for stage, _ in STAGES]
        rows.append(
            f"| `{name}` | {fmt(r.runs(name, 'accuracy'))}% | {fmt(r.runs(name, 'ece_before'))}% | "
            f"{fmt(r.runs(name, 'ece_after'))}% | {nll[0]} | {nll[1]} |"
        )
    return rows


def _three_places(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"
