"""The measurements: cells of seeds trained through the real training code, kept as plain, typed data."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from training.config import hyperparameters_for
from training.data import Digits, Splits
from training.experiments import grid as g
from training.experiments.grid import Grid
from training.networks import Network
from training.train import TrainResult, run

Log = Callable[[str], None]


@dataclass(frozen=True)
class Cell:
    """One configuration, trained once per seed: an experiment, the arm compared, and the value swept."""

    experiment: str
    arm: str
    value: float | None = None


@dataclass(frozen=True)
class Run:
    val_curve: list[float]
    loss_curve: list[float]
    val_accuracy: float
    test_accuracy: float
    train_accuracy: float


@dataclass
class Measurements:
    grid: Grid
    split: dict[str, Any]
    cells: dict[Cell, list[Run]] = field(default_factory=dict)
    inference: dict[str, list[float]] = field(default_factory=dict)  # accuracy by the statistics BN used
    momentum: dict[str, list[list[float]]] = field(default_factory=dict)  # per momentum, per seed, per epoch
    wall_s: float = 0.0

    def runs(self, experiment: str, arm: str, value: float | None = None) -> list[Run]:
        return self.cells[Cell(experiment, arm, value)]

    def values(self, experiment: str) -> list[float]:
        return sorted({c.value for c in self.cells if c.experiment == experiment and c.value is not None})

    def accuracies(self, experiment: str, arm: str, value: float | None = None) -> list[float]:
        """Final accuracy on the test digits, per seed: what the verdicts are written in."""
        return [r.test_accuracy for r in self.runs(experiment, arm, value)]

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": asdict(self.grid),
            "split": self.split,
            "cells": [{**asdict(cell), "runs": [asdict(r) for r in runs]} for cell, runs in self.cells.items()],
            "inference": self.inference,
            "momentum": self.momentum,
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Measurements":
        grid = data["grid"]
        return cls(
            grid=Grid(**{**grid, **{k: tuple(v) for k, v in grid.items() if isinstance(v, list)}}),
            split=data["split"],
            cells={Cell(c["experiment"], c["arm"], c["value"]): [Run(**r) for r in c["runs"]] for c in data["cells"]},
            inference=data["inference"],
            momentum=data["momentum"],
            wall_s=data["wall_s"],
        )


def measure(grid: Grid, splits: Splits, log: Log) -> Measurements:
    """Train every cell of the grid."""
    found = Measurements(grid, splits.info.model_dump())

    def cell(experiment: str, arm: str, network: Network, value: float | None = None, **hp: Any) -> None:
        runs = [_summary(_train(network, splits, seed=seed, **hp), splits) for seed in grid.seeds]
        found.cells[Cell(experiment, arm, value)] = runs
        swept = "" if value is None else f" {value:g}"
        log(f"  {experiment} {arm}{swept}: test {np.mean([r.test_accuracy for r in runs]):.4f}")

    for arm, net in g.WITH_AND_WITHOUT_BN.items():
        cell("curves", arm, net, epochs=grid.epochs, learning_rate=0.001)
    for lr in grid.learning_rates:
        for arm, net in g.WITH_AND_WITHOUT_BN.items():
            cell("learning_rates", arm, net, lr, epochs=grid.epochs, learning_rate=lr)
    for b in grid.batch_sizes:
        for arm, net in g.WITH_AND_WITHOUT_BN.items():
            cell("batch_sizes", arm, net, b, epochs=grid.small_batch_epochs, batch_size=b, learning_rate=0.001)
    for lr in g.PLACEMENT_RATES:
        for arm, net in g.PLACEMENTS.items():
            cell("placement", arm, net, lr, epochs=grid.epochs, learning_rate=lr)
    for arm, net in g.DROPOUT_ORDERS.items():
        cell("dropout", arm, net, epochs=grid.epochs, dropout=g.DROPOUT_RATE, learning_rate=0.001)
    found.inference = _inference_modes(grid, splits)
    found.momentum = _momentum(grid, splits)
    return found


def _train(network: Network, splits: Splits, **hp: Any) -> TrainResult:
    return run(network, hyperparameters_for(network, **hp), splits)


def _summary(result: TrainResult, splits: Splits) -> Run:
    train_probabilities = np.asarray(result.model.predict(splits.train.x, batch_size=512, verbose=0))
    return Run(
        val_curve=result.history["val_accuracy"],
        loss_curve=result.history["loss"],
        val_accuracy=result.metrics["validation_accuracy"],
        test_accuracy=result.metrics["test_accuracy"],
        train_accuracy=float((train_probabilities.argmax(axis=1) == splits.train.y).mean()),
    )


def _inference_modes(grid: Grid, splits: Splits) -> dict[str, list[float]]:
    """Accuracy with moving statistics, with the statistics of one digit, and of the whole test batch."""
    import keras

    out: dict[str, list[float]] = {"inference": [], "training_batch_of_one": [], "training_full_batch": []}
    # Evenly spaced through the test set, which is sorted by index and so by class.
    rows = np.linspace(0, len(splits.test) - 1, grid.one_by_one).astype(int)
    x, y = splits.test.x[rows], splits.test.y[rows]
    for seed in grid.seeds:
        result = _train(g.BN_NET, splits, seed=seed, epochs=grid.epochs)
        # A clone takes the training-mode calls, so the trained statistics never move.
        clone = keras.models.clone_model(result.model)
        clone.set_weights(result.model.get_weights())
        inference = np.asarray(result.model(x, training=False)).argmax(axis=1)
        one_by_one = np.array([np.asarray(clone(x[i : i + 1], training=True))[0].argmax() for i in range(len(x))])
        full = np.asarray(clone(x, training=True)).argmax(axis=1)
        out["inference"].append(float((inference == y).mean()))
        out["training_batch_of_one"].append(float((one_by_one == y).mean()))
        out["training_full_batch"].append(float((full == y).mean()))
    return out


def _momentum(grid: Grid, splits: Splits) -> dict[str, list[list[float]]]:
    """Inference-mode test accuracy after each epoch, for each BN momentum: an export taken early."""
    import keras

    class EveryEpoch(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self, digits: Digits) -> None:
            super().__init__()
            self.digits = digits
            self.accuracies: list[float] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            predicted = np.asarray(self.model.predict(self.digits.x, batch_size=512, verbose=0)).argmax(axis=1)
            self.accuracies.append(float((predicted == self.digits.y).mean()))

    out: dict[str, list[list[float]]] = {}
    for momentum in g.MOMENTUMS:
        curves = []
        for seed in grid.seeds:
            tracker = EveryEpoch(splits.test)
            hp = hyperparameters_for(g.BN_NET, seed=seed, epochs=max(3, grid.epochs // 4), bn_momentum=momentum)
            run(g.BN_NET, hp, splits, callbacks=[tracker])
            curves.append(tracker.accuracies)
        out[f"{momentum:g}"] = curves
    return out
