"""What a published version computes beside its network, fitted on the validation digits: calibrated
probabilities (`training.calibration`), the confidence rule (`training.confidence`), and how its
explanations are taken; and what each measured, for the version's metadata.
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
from training import calibration, confidence, glyphs
from training.calibration import Calibration
from training.data import Splits
from training.model import split_head

EXPLAIN_STEPS = (64, 128, 256, 512, 1024, 2048)  # points on the path from the blank image that a version may use
EXPLAIN_CHECK_DIGITS = 200  # validation digits whose explanations choose the steps
COMPLETENESS_TOLERANCE = 0.01  # of the change in probability the attributions must add up to
COMPLETENESS_MARGIN = 0.8  # of that tolerance, for the digits that choose the steps
VALIDATION_NON_DIGITS = 3_000
VALIDATION_NON_DIGITS_SEED = 90_001  # not a seed training draws its non-digits from (those follow hp.seed)
MAX_VALIDATION_ECE = 0.015
MIN_DIGITS_TO_JUDGE_ECE = 1_000  # fewer validation digits than this, and 15 bins' ECE is mostly noise


@dataclass(frozen=True)
class ServingHead:
    calibration: Calibration
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
    weight = tf.constant(calibration.weight, tf.float32)
    bias = tf.constant(calibration.bias, tf.float32)

    def calibrated(x: tf.Tensor, training: bool = False) -> tf.Tensor:
        logits = tf.matmul(body(x, training=training), dense.kernel) + dense.bias
        return tf.nn.softmax(tf.matmul(logits, weight) + bias)

    return calibrated


def with_confidence(probabilities: tf.Tensor, rule: confidence.Rule) -> dict[str, tf.Tensor]:
    top = tf.reduce_max(probabilities, axis=1)
    digit_like = top >= rule.digit_threshold
    return {
        OUTPUT_NAME: probabilities,
        CONFIDENT_NAME: tf.logical_and(digit_like, top >= rule.threshold),
        DIGIT_LIKE_NAME: digit_like,
    }


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
        outputs = integrated_gradients(calibrated, tf.constant(x), steps=steps)
        if completeness_gaps({k: v.numpy() for k, v in outputs.items()}).max() <= COMPLETENESS_MARGIN:
            return steps
    return EXPLAIN_STEPS[-1]


def logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's logits (its last layer without the softmax), in inference mode, as float64."""
    body, dense = split_head(model)
    features = np.asarray(body.predict(x, batch_size=512, verbose=0), np.float64)
    out: np.ndarray = features @ np.asarray(dense.kernel, np.float64) + np.asarray(dense.bias, np.float64)
    return out


def fit_head(model: keras.Model, splits: Splits, probes: np.ndarray) -> tuple[ServingHead, HeadReport]:
    """The version's head, fitted on the validation digits; its explanation steps must also suit the golden
    `probes`, which the export checks explain."""
    validation = splits.validation
    z = logits(model, validation.x)
    choice = calibration.choose(z, validation.y)
    before, after = calibration.softmax(z), choice.chosen.apply(z)
    rule = confidence.choose(after.astype(np.float32), validation.y)
    calibrated = calibrated_probabilities(model, choice.chosen)
    steps = explain_steps(calibrated, np.concatenate([validation.x[:EXPLAIN_CHECK_DIGITS], probes]))
    count = min(VALIDATION_NON_DIGITS, len(validation))  # a tiny validation set gets as few: tests stay quick
    non_digits = choice.chosen.apply(logits(model, glyphs.non_digits(count, VALIDATION_NON_DIGITS_SEED)))
    turned_away = float(1 - rule.confident(non_digits.astype(np.float32)).mean())
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
            "digit_like": "the calibrated top probability is at least `digit_threshold`",
            "threshold": rule.threshold,
            "digit_threshold": rule.digit_threshold,
            "target_accuracy_when_confident": confidence.TARGET_ACCURACY,
            "digit_like_share_of_validation_digits": confidence.DIGIT_LIKE_SHARE,
            "validation": confidence.figures(rule, after.astype(np.float32), validation.y),
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
    return ServingHead(choice.chosen, rule, steps), report
