"""What a published version computes beside its network: calibrated probabilities (`training.calibration`),
the digit detector (`training.detector`), the confidence rule (`training.confidence`), and how its
explanations are taken; and what each measured, for the version's metadata. All but the detector are
fitted on the validation digits; the detector on training digits and made non-digits.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from contract import (
    ATTRIBUTIONS_NAME,
    BASELINE_PROBABILITY_NAME,
    CONFIDENT_NAME,
    DIGIT_LIKE_NAME,
    EXPLAINED_DIGIT_NAME,
    EXPLAINED_PROBABILITY_NAME,
    IMAGE_PIXELS,
    OUTPUT_NAME,
)
from training import calibration, confidence, detector, glyphs
from training.calibration import Calibration
from training.data import Splits
from training.detector import Detector
from training.model import split_head

EXPLAIN_STEPS = (64, 128, 256, 512, 1024, 2048)  # points on the path from the blank image that a version may use
EXPLAIN_CHECK_DIGITS = 200  # validation digits whose explanations choose the steps
EXPLAIN_PATH_ROWS = 32_768  # points of the paths computed at once while choosing the steps
FEATURE_ROWS = 4_096  # images whose hidden features are computed at once
COMPLETENESS_TOLERANCE = 0.01  # of the change in probability the attributions must add up to
COMPLETENESS_MARGIN = 0.8  # of that tolerance, for the digits that choose the steps
VALIDATION_NON_DIGITS = 3_000
VALIDATION_NON_DIGITS_SEED = 90_001  # not a seed training draws its non-digits from (those follow hp.seed)
MAX_VALIDATION_ECE = 0.015
MIN_DIGITS_TO_JUDGE_ECE = 1_000  # fewer validation digits than this, and 15 bins' ECE is mostly noise


@dataclass(frozen=True)
class ServingHead:
    calibration: Calibration
    detector: Detector
    rule: confidence.Rule
    explain_steps: int


@dataclass(frozen=True)
class HeadReport:
    """The metadata.json sections of a version's head."""

    calibration: dict[str, Any]
    confidence: dict[str, Any]
    explanation: dict[str, Any]
    validation_ece: float
    validation_digits: int


def calibrated_probabilities(model: keras.Model, calibration: Calibration) -> Callable[..., tf.Tensor]:
    """The model's probabilities, calibrated: softmax(logits @ weight + bias) in place of its own softmax."""
    body, dense = split_head(model)
    calibrate = _calibrated_softmax(dense, calibration)

    def calibrated(x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return calibrate(body(x, training=training))

    return calibrated


def with_confidence(model: keras.Model, head: ServingHead) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """The `with_confidence` signature: calibrated probabilities, and the flags of `head.rule`, from one pass
    through the network's hidden layers, which the detector reads too."""
    body, dense = split_head(model)
    calibrate = _calibrated_softmax(dense, head.calibration)

    def flagged(x: tf.Tensor) -> dict[str, tf.Tensor]:
        features = body(x, training=False)
        probabilities = calibrate(features)
        digit_like = head.detector.score(features) >= head.rule.digit_threshold
        return {
            OUTPUT_NAME: probabilities,
            CONFIDENT_NAME: tf.logical_and(digit_like, tf.reduce_max(probabilities, axis=1) >= head.rule.threshold),
            DIGIT_LIKE_NAME: digit_like,
        }

    return flagged


def _calibrated_softmax(dense: keras.layers.Dense, calibration: Calibration) -> Callable[[tf.Tensor], tf.Tensor]:
    """Last hidden features to calibrated probabilities: the softmax layer's logits, then the calibration."""
    weight = tf.constant(calibration.weight, tf.float32)
    bias = tf.constant(calibration.bias, tf.float32)

    def calibrate(features: tf.Tensor) -> tf.Tensor:
        logits = tf.matmul(features, dense.kernel) + dense.bias
        return tf.nn.softmax(tf.matmul(logits, weight) + bias)

    return calibrate


def integrated_gradients(calibrated: Callable[..., tf.Tensor], x: tf.Tensor, *, steps: int) -> dict[str, tf.Tensor]:
    """Integrated gradients (Sundararajan et al. 2017) of the calibrated probability of the digit read, from a
    blank image to `x`, by the midpoint rule over `steps` points of the straight path."""
    probabilities = calibrated(x)
    digit = tf.argmax(probabilities, axis=1)
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps
    path = tf.reshape(alphas[None, :, None] * x[:, None, :], [-1, IMAGE_PIXELS])  # the baseline is all 0
    with tf.GradientTape() as tape:
        tape.watch(path)
        along = tf.gather(calibrated(path), tf.repeat(digit, steps), batch_dims=1)
    gradients = tf.reshape(tape.gradient(along, path), [-1, steps, IMAGE_PIXELS])
    return {
        ATTRIBUTIONS_NAME: x * tf.reduce_mean(gradients, axis=1),
        EXPLAINED_DIGIT_NAME: digit,
        EXPLAINED_PROBABILITY_NAME: tf.gather(probabilities, digit, batch_dims=1),
        BASELINE_PROBABILITY_NAME: tf.gather(calibrated(tf.zeros_like(x)), digit, batch_dims=1),
    }


def completeness_gaps(explained: dict[str, np.ndarray]) -> np.ndarray:
    """Per explanation, |sum of attributions - (probability - baseline)| over the tolerance: 1 or less holds."""
    change = explained[EXPLAINED_PROBABILITY_NAME].astype(np.float64) - explained[BASELINE_PROBABILITY_NAME]
    total = explained[ATTRIBUTIONS_NAME].astype(np.float64).sum(axis=1)
    gaps: np.ndarray = np.abs(total - change) / np.maximum(COMPLETENESS_TOLERANCE * np.abs(change), 1e-4)
    return gaps


def explain_steps(calibrated: Callable[..., tf.Tensor], x: np.ndarray) -> int:
    """The fewest steps of EXPLAIN_STEPS whose explanations of `x` are all complete with a margin: the path's
    integral needs more points where the probability turns sharply, as it does for a sure model."""
    for steps in EXPLAIN_STEPS:
        rows = max(1, EXPLAIN_PATH_ROWS // steps)  # digits explained at a time: their paths fit in memory
        worst = max(
            completeness_gaps(
                {k: v.numpy() for k, v in integrated_gradients(calibrated, tf.constant(part), steps=steps).items()}
            ).max()
            for part in np.array_split(x, range(rows, len(x), rows))
        )
        if worst <= COMPLETENESS_MARGIN:
            return steps
    return EXPLAIN_STEPS[-1]


def features(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's last hidden features (what its softmax layer and the detector read), in inference mode."""
    body, _ = split_head(model)
    return _body_features(body, x)


def logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's logits (its last layer without the softmax), in inference mode, as float64."""
    body, dense = split_head(model)
    out: np.ndarray = _body_features(body, x).astype(np.float64) @ np.asarray(dense.kernel, np.float64) + np.asarray(
        dense.bias, np.float64
    )
    return out


def _body_features(body: keras.Model, x: np.ndarray) -> np.ndarray:
    # NOTE: called, not body.predict(): predict traces a function per new Model, and split_head makes one.
    parts = [
        np.asarray(body(x[i : i + FEATURE_ROWS], training=False), np.float32) for i in range(0, len(x), FEATURE_ROWS)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, body.output.shape[-1]), np.float32)


def fit_detector(model: keras.Model, splits: Splits) -> Detector:
    x, is_digit = detector.examples(splits.train, detector.DETECTOR_DIGITS)
    positives = int(is_digit.sum())
    described = (
        f"{positives:,} training and printed digits (half the training digits redrawn with the page's pens) "
        f"against {len(x) - positives:,} non-digits from training.glyphs, seed {detector.DETECTOR_SEED}"
    )
    return detector.fit(features(model, x), is_digit, described)


def scores(model: keras.Model, found: Detector, x: np.ndarray) -> np.ndarray:
    return np.asarray(found.score(tf.constant(features(model, x))))


def fit_head(model: keras.Model, splits: Splits, probes: np.ndarray) -> tuple[ServingHead, HeadReport]:
    """The version's head, fitted on the validation digits; its explanation steps must also suit the golden
    `probes`, which the export checks explain."""
    validation = splits.validation
    z = logits(model, validation.x)
    choice = calibration.choose(z, validation.y)
    before, after = calibration.softmax(z), choice.chosen.apply(z)
    found = fit_detector(model, splits)
    validation_scores = scores(model, found, validation.x)
    rule = confidence.choose(after.astype(np.float32), validation_scores, validation.y)
    calibrated = calibrated_probabilities(model, choice.chosen)
    steps = explain_steps(calibrated, np.concatenate([validation.x[:EXPLAIN_CHECK_DIGITS], probes]))
    count = min(VALIDATION_NON_DIGITS, len(validation))  # a tiny validation set gets as few: tests stay quick
    non_digits = glyphs.non_digits(count, VALIDATION_NON_DIGITS_SEED)
    non_digit_probabilities = choice.chosen.apply(logits(model, non_digits)).astype(np.float32)
    turned_away = float(1 - rule.confident(non_digit_probabilities, scores(model, found, non_digits)).mean())
    report = HeadReport(
        calibration={
            **choice.chosen.describe(),
            "fitted_on": f"{len(validation):,} validation digits, by their negative log-likelihood",
            "candidates_validation_nll": choice.candidates,
            "not_kept": choice.refused,
            "validation_before": calibration.scores(before, validation.y).as_dict(),
            "validation_after": calibration.scores(after, validation.y).as_dict(),
            "ece_bins": calibration.ECE_BINS,
        },
        confidence={
            "confident": "the calibrated top probability is at least `threshold`, and the image is digit_like",
            "digit_like": "the digit detector's score is at least `digit_threshold`",
            "threshold": rule.threshold,
            "digit_threshold": rule.digit_threshold,
            "detector": found.describe(),
            "target_accuracy_when_confident": confidence.TARGET_ACCURACY,
            "digit_like_share_of_validation_digits": confidence.DIGIT_LIKE_SHARE,
            "validation": confidence.figures(rule, after.astype(np.float32), validation_scores, validation.y),
            "validation_non_digits_turned_away": turned_away,
            "validation_non_digits": f"{count:,} from training.glyphs, seed {VALIDATION_NON_DIGITS_SEED}",
        },
        explanation={
            "method": "integrated-gradients",
            "baseline": "blank: every pixel 0",
            "steps": steps,
            "steps_chosen": f"the fewest of {EXPLAIN_STEPS} complete within {COMPLETENESS_MARGIN:g} of the "
            f"{COMPLETENESS_TOLERANCE:.0%} tolerance on {min(EXPLAIN_CHECK_DIGITS, len(validation))} validation "
            f"digits and the {len(probes)} golden probes",
            "target": "the calibrated probability of the digit read",
        },
        validation_ece=calibration.scores(after, validation.y).ece,
        validation_digits=len(validation),
    )
    return ServingHead(choice.chosen, found, rule, steps), report
