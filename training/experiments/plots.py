"""The figures of the report. Each `Draw` fills one matplotlib Axes from the measurements."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.experiments.measure import Measurements

Draw = Callable[[Measurements, Any], None]
BN_ARMS = (("bn", "with BN"), ("plain", "without BN"))
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def save(draw: Callable[[Any, Any], None], measurements: Any, path: Path, columns: int = 1) -> None:
    """One figure: `draw` fills one Axes, or a row of `columns` of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, columns, figsize=(6.4 if columns == 1 else 5.2 * columns, 4))
    draw(measurements, ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def learning_curves(m: Measurements, ax: Any) -> None:
    for arm, label in BN_ARMS:
        curves = np.array([r.val_curve for r in m.runs("curves", arm)]) * 100
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(0), label=label)
        ax.fill_between(epochs, curves.mean(0) - curves.std(0), curves.mean(0) + curves.std(0), alpha=0.2)
    ax.set(title="Learning curves, 256-128 MLP, Adam 0.001", xlabel="epoch", ylabel="validation accuracy (%)")
    ax.legend()


def sweep(experiment: str, title: str, xlabel: str) -> Draw:
    """Final test accuracy with and without BN, over the values the experiment swept."""

    def draw(m: Measurements, ax: Any) -> None:
        xs = m.values(experiment)
        for arm, label in BN_ARMS:
            values = [[a * 100 for a in m.accuracies(experiment, arm, x)] for x in xs]
            ax.errorbar(
                xs, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker="o", capsize=4, label=label
            )
        ax.set(xscale="log", title=title, xlabel=xlabel, ylabel="test accuracy (%)")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.legend()

    return draw


def bars(title: str, groups: Callable[[Measurements], dict[str, list[float]]], ylabel: str) -> Draw:
    """Mean and standard deviation over seeds, one bar per group."""

    def draw(m: Measurements, ax: Any) -> None:
        values = groups(m)
        means = [np.mean(v) * 100 for v in values.values()]
        stds = [np.std(v) * 100 for v in values.values()]
        ax.bar(list(values), means, yerr=stds, capsize=6, color=COLORS[: len(values)])
        low = min(mean - std for mean, std in zip(means, stds, strict=True))
        ax.set(title=title, ylabel=ylabel, ylim=(max(0, low - 5), 100))

    return draw


def momentum(m: Measurements, ax: Any) -> None:
    for value, curves in m.momentum.items():
        accuracy = np.array(curves) * 100
        epochs = np.arange(1, accuracy.shape[1] + 1)
        ax.errorbar(epochs, accuracy.mean(0), yerr=accuracy.std(0), marker="o", capsize=4, label=f"momentum {value}")
    ax.set(title="Inference-mode accuracy of an early export", xlabel="epochs trained before export")
    ax.set(ylabel="test accuracy (%)")
    ax.legend()
