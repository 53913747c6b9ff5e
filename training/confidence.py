"""When a version may say it is sure, and when an image looks like a digit at all: two thresholds on the
calibrated top probability, each chosen on held-out data for a stated target.

- `confident`: the answers at or above the threshold are right at least TARGET_ACCURACY of the time on
  the validation digits (the lowest such threshold, so as many answers as possible qualify).
- `digit_like`: DIGIT_LIKE_SHARE of the validation digits reach it. A model trained with outlier
  exposure spreads its probabilities evenly over the classes for what is no digit, so a non-digit's
  top probability stays low; how many of a held-out set of non-digits fall below is recorded beside it.
"""

from dataclasses import dataclass

import numpy as np

TARGET_ACCURACY = 0.999
DIGIT_LIKE_SHARE = 0.995


@dataclass(frozen=True)
class Rule:
    threshold: float  # confident: the calibrated top probability reaches it, and the image is digit_like
    digit_threshold: float  # digit_like: the calibrated top probability reaches it

    def confident(self, probabilities: np.ndarray) -> np.ndarray:
        top = probabilities.max(axis=1)
        return (top >= self.threshold) & (top >= self.digit_threshold)

    def digit_like(self, probabilities: np.ndarray) -> np.ndarray:
        return np.asarray(probabilities.max(axis=1) >= self.digit_threshold)


def choose(probabilities: np.ndarray, labels: np.ndarray) -> Rule:
    """Both thresholds from calibrated validation probabilities and their labels."""
    top = probabilities.max(axis=1)
    return Rule(
        threshold=threshold_for(top, probabilities.argmax(axis=1) == labels, TARGET_ACCURACY),
        digit_threshold=float(np.quantile(top, 1 - DIGIT_LIKE_SHARE, method="lower")),
    )


def threshold_for(top: np.ndarray, right: np.ndarray, target: float) -> float:
    """The lowest top probability such that the answers at or above it are right at least `target` of the
    time; above every answer (nothing qualifies) if no such threshold exists."""
    order = np.argsort(-top, kind="stable")
    ranked = top[order]
    accuracy = np.cumsum(right[order]) / np.arange(1, len(top) + 1)
    # Only the last of equal probabilities can be a cut: the rule keeps all of them or none.
    cuts = np.flatnonzero((accuracy >= target) & np.append(ranked[1:] < ranked[:-1], True))
    if not cuts.size:
        return float(np.nextafter(np.float32(1.0), np.float32(2.0)))
    return float(ranked[int(cuts[-1])])


def figures(rule: Rule, probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """What the rule does to labelled digits: coverage, accuracy when confident, share that looks like a digit."""
    confident = rule.confident(probabilities)
    right = probabilities.argmax(axis=1) == labels
    return {
        "coverage": float(confident.mean()),
        "accuracy_when_confident": float(right[confident].mean()) if confident.any() else float("nan"),
        "accuracy": float(right.mean()),
        "digit_like": float(rule.digit_like(probabilities).mean()),
    }
