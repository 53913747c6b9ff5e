"""Ioffe & Szegedy (2015), section 4.1 and Figure 1: the BN paper's own MNIST experiment, replicated.

The paper's network: 28x28 input, three fully connected hidden layers of 100 sigmoid units, a 10-way
softmax with cross-entropy, small random Gaussian initial weights, mini-batches of 60, 50,000 steps.
The BN network normalizes each sigmoid's input, z = g(BN(Wu)), with no bias (BN's beta replaces it);
the baseline is the same network without BN. The paper names no optimizer or learning rate; the same
plain SGD trains both here (its rate is stated below).

Measured at regular steps, in inference mode: accuracy on the test digits (Figure 1a), and the 15th,
50th and 85th percentiles, over the test digits, of the input to one sigmoid of the last hidden layer
(its first unit, fixed in advance; Figure 1b and 1c).
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from training.data import Digits
from training.experiments.rules import SUPPORTED, better, fmt, mean_std, verdict

Log = Callable[[str], None]
HIDDEN = (100, 100, 100)
BATCH = 60
INIT_STDDEV = 0.01  # "small random Gaussian values"
LEARNING_RATE = 0.5  # plain SGD, the same for both networks
UNIT = 0
PERCENTILES = (15, 50, 85)
LATE = 0.2  # drift is measured over the last 80% of training: from this fraction of the steps on
ARMS = (("bn", "with BN"), ("plain", "baseline, no BN"))


@dataclass(frozen=True)
class PaperGrid:
    steps: int
    eval_every: int
    seeds: tuple[int, ...]


PAPER_GRIDS = {"full": PaperGrid(50_000, 500, (0, 1, 2)), "quick": PaperGrid(1_200, 200, (0,))}


@dataclass
class Replica:
    grid: PaperGrid
    source: str
    train_size: int
    test_size: int
    steps: list[int] = field(default_factory=list)
    # per arm, per seed: accuracy at each evaluated step, and the (p15, p50, p85) of the sigmoid input
    accuracy: dict[str, list[list[float]]] = field(default_factory=dict)
    percentiles: dict[str, list[list[list[float]]]] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Replica":
        grid = data["grid"]
        return cls(**{**data, "grid": PaperGrid(grid["steps"], grid["eval_every"], tuple(grid["seeds"]))})

    def final_accuracies(self, arm: str) -> list[float]:
        return [curve[-1] for curve in self.accuracy[arm]]

    def drift(self, arm: str) -> tuple[list[float], list[float]]:
        """Per seed, over the last 80% of training, relative to the mean 15-85 spread there: the range
        of the median, and the range of the 15-85 spread."""
        start = int(len(self.steps) * LATE)
        medians, spreads = [], []
        for run in self.percentiles[arm]:
            late = np.array(run[start:])
            spread = late[:, 2] - late[:, 0]
            scale = float(spread.mean())
            medians.append(float(np.ptp(late[:, 1])) / scale)
            spreads.append(float(np.ptp(spread)) / scale)
        return medians, spreads


def measure(grid: PaperGrid, train: Digits, test: Digits, source: str, log: Log) -> Replica:
    import time

    started = time.monotonic()
    replica = Replica(grid, source, len(train), len(test))
    replica.steps = list(range(grid.eval_every, grid.steps + 1, grid.eval_every))
    for arm, _ in ARMS:
        replica.accuracy[arm], replica.percentiles[arm] = [], []
        for seed in grid.seeds:
            accuracy, percentiles = _train(arm == "bn", seed, grid, train, test)
            replica.accuracy[arm].append(accuracy)
            replica.percentiles[arm].append(percentiles)
            log(f"  BN paper replica {arm} seed {seed}: test accuracy {accuracy[-1]:.4f} after {grid.steps} steps")
    replica.wall_s = time.monotonic() - started
    return replica


def _train(bn: bool, seed: int, grid: PaperGrid, train: Digits, test: Digits) -> tuple[list[float], list[list[float]]]:
    import keras
    import tensorflow as tf

    from training.train import make_deterministic

    make_deterministic(seed)
    model = _build(bn)
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy()

    def train_step(x: tf.Tensor, y: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            probabilities, _ = model(x, training=True)
            loss = cross_entropy(y, probabilities)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))

    step = tf.function(train_step)

    rng = np.random.default_rng(seed)
    order = np.empty(0, dtype=np.int64)
    accuracy: list[float] = []
    percentiles: list[list[float]] = []
    for done in range(1, grid.steps + 1):
        if len(order) < BATCH:
            order = np.concatenate([order, rng.permutation(len(train))])
        rows, order = order[:BATCH], order[BATCH:]
        step(train.x[rows], train.y[rows])
        if done % grid.eval_every == 0:
            probabilities, inputs = (np.asarray(t) for t in model(test.x, training=False))
            accuracy.append(float((probabilities.argmax(axis=1) == test.y).mean()))
            percentiles.append([float(p) for p in np.percentile(inputs[:, UNIT], PERCENTILES)])
    return accuracy, percentiles


def _build(bn: bool) -> Any:
    """The paper's network; its outputs are the probabilities and the last hidden layer's sigmoid inputs."""
    import keras

    from contract import IMAGE_PIXELS, NUM_CLASSES

    def init() -> keras.initializers.Initializer:
        return keras.initializers.RandomNormal(stddev=INIT_STDDEV)

    inputs = keras.Input((IMAGE_PIXELS,))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    for width in HIDDEN:
        z = keras.layers.Dense(width, use_bias=not bn, kernel_initializer=init())(x)
        if bn:
            z = keras.layers.BatchNormalization()(z)
        x = keras.layers.Activation("sigmoid")(z)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", kernel_initializer=init())(x)
    return keras.Model(inputs, [outputs, z])


def verdicts(r: Replica) -> list[tuple[str, str, str]]:
    """The paper's two statements, each as (claim, verdict, evidence), by the rule in `rules`."""
    bn, plain = r.final_accuracies("bn"), r.final_accuracies("plain")
    accuracy = (
        "BN paper 4.1: the BN network reaches the higher test accuracy",
        verdict([better(bn, plain)]),
        f"test accuracy after {r.grid.steps:,} steps: BN {fmt(bn, 100)}%, baseline {fmt(plain, 100)}%",
    )
    (bn_median, bn_spread), (plain_median, plain_spread) = r.drift("bn"), r.drift("plain")
    drifts = [better(plain_median, bn_median, floor=0.0), better(plain_spread, bn_spread, floor=0.0)]
    stable = (
        "BN paper 4.1: the baseline's sigmoid input drifts in mean and variance, BN's stays stable",
        SUPPORTED if drifts == [1, 1] else verdict(drifts),
        f"over the last {1 - LATE:.0%} of training, relative to the mean 15-85 spread: range of the median "
        f"BN {_fmt(bn_median)}, baseline {_fmt(plain_median)}; range of the spread BN {_fmt(bn_spread)}, "
        f"baseline {_fmt(plain_spread)}",
    )
    return [accuracy, stable]


def _fmt(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {std:.2f}"


def draw_accuracy(r: Replica, ax: Any) -> None:
    steps = np.array(r.steps)
    for arm, label in ARMS:
        curves = np.array(r.accuracy[arm]) * 100
        ax.plot(steps, curves.mean(0), label=label)
        ax.fill_between(steps, curves.min(0), curves.max(0), alpha=0.2)
    ax.set(title="(a) Test accuracy, 3x100 sigmoid MLP, batch 60", xlabel="training steps")
    ax.set(ylabel="test accuracy (%)", ylim=(max(0.0, float(np.min(r.accuracy["plain"]) * 100) - 1), 100))
    ax.legend()


def draw_percentiles(r: Replica, axes: Any) -> None:
    steps = np.array(r.steps)
    for ax, (arm, label) in zip(axes, ARMS[::-1], strict=True):  # the paper: (b) baseline, (c) BN
        run = np.array(r.percentiles[arm][0])
        for i, p in enumerate(PERCENTILES):
            ax.plot(steps, run[:, i], color="tab:blue" if p == 50 else "tab:gray", label=f"{p}th percentile")
        ax.set(title=f"({'b' if arm == 'plain' else 'c'}) sigmoid input, {label}", xlabel="training steps")
    axes[0].set(ylabel=f"input to sigmoid {UNIT} of the last hidden layer")
    axes[0].legend()
