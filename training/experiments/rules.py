"""The verdict rule, and the statistics the verdicts are written in.

a difference counts when the means differ by more than their pooled standard deviation (and at
least 0.5 points, or half an epoch). A claim is *supported* when the difference it predicts shows
in at least one condition and the opposite in none, *mixed* when both show, and *not supported*
when the predicted difference shows nowhere (no measurable effect, or the opposite).
"""

import itertools

import numpy as np

from training.experiments.measure import Run

SUPPORTED, MIXED, NOT_SUPPORTED = "supported", "mixed", "not supported"


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def fmt(values: list[float], scale: float = 100) -> str:
    mean, std = mean_std(values)
    return f"{mean * scale:.1f} ± {std * scale:.1f}"


def better(a: list[float], b: list[float], floor: float = 0.005) -> int:
    """+1 if a's mean is above b's by more than their pooled std (and `floor`), -1 if below, else 0."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    margin = max(float(np.sqrt((sa**2 + sb**2) / 2)), floor)
    return 1 if ma - mb > margin else -1 if mb - ma > margin else 0


def verdict(scores: list[int]) -> str:
    """Supported: better somewhere, worse nowhere. Mixed: better somewhere, worse elsewhere.
    Not supported: better nowhere (no measurable difference, or worse)."""
    if 1 in scores:
        return MIXED if -1 in scores else SUPPORTED
    return NOT_SUPPORTED


def epochs_to(runs: list[Run], target: float) -> list[float]:
    """First epoch (1-based) whose validation accuracy reaches target; never: epochs + 1."""
    return [float(next((i + 1 for i, a in enumerate(r.val_curve) if a >= target), len(r.val_curve) + 1)) for r in runs]


def diverged(run: Run) -> bool:
    return not np.isfinite(run.loss_curve).all() or run.val_accuracy < 0.5


def loss_spikes(run: Run) -> int:
    """Epochs whose training loss rose by more than half over the epoch before."""
    return sum(1 for a, b in itertools.pairwise(run.loss_curve) if b > 1.5 * a)
