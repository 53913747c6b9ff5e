"""When a version may say it is sure, and when an image looks like a digit at all: a threshold on the
detector's score (`training.detector`) and one on the calibrated top probability, each chosen on the
validation digits for a stated target.

- `digit_like`: DIGIT_LIKE_SHARE of the validation digits reach the detector's threshold; how many of a
  set of non-digits fall below it is recorded beside it.
- `confident`: digit_like, and a top probability at or above the threshold, which is the lowest at
  which the digit_like validation answers are right at least TARGET_ACCURACY of the time (so that as
  many answers as possible qualify).
"""

from dataclasses import dataclass

import numpy as np

TARGET_ACCURACY = 0.999
DIGIT_LIKE_SHARE = 0.995


@dataclass(frozen=True)
class Rule:
    threshold: float  # confident: the calibrated top probability reaches it, and the image is digit_like
    digit_threshold: float  # digit_like: the detector's score reaches it

    def confident(self, probabilities: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return np.asarray((probabilities.max(axis=1) >= self.threshold) & self.digit_like(scores))

    def digit_like(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores >= self.digit_threshold)


def choose(probabilities: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> Rule:
    """Both thresholds from the validation digits: calibrated probabilities, detector scores and labels."""
    digit_threshold = float(np.quantile(scores, 1 - DIGIT_LIKE_SHARE, method="lower"))
    like = scores >= digit_threshold
    right = probabilities.argmax(axis=1) == labels
    top = probabilities.max(axis=1)
    return Rule(threshold=threshold_for(top[like], right[like], TARGET_ACCURACY), digit_threshold=digit_threshold)


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


def figures(rule: Rule, probabilities: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """What the rule does to labelled digits: coverage, accuracy when confident, share that looks like a digit."""
    confident = rule.confident(probabilities, scores)
    right = probabilities.argmax(axis=1) == labels
    return {
        "coverage": float(confident.mean()),
        "accuracy_when_confident": float(right[confident].mean()) if confident.any() else float("nan"),
        "accuracy": float(right.mean()),
        "digit_like": float(rule.digit_like(scores).mean()),
    }
