"""Is it a digit at all: a small network on the classifier's last hidden features, fitted at export.

It reads the features the classifier computes anyway (one Dense layer of DETECTOR_WIDTH ReLU units, then
one logit), and it is fitted on training digits, half of them drawn with the page's pens (the `pen`
distortion), and printed digits, against non-digits from `training.glyphs` (letters, symbols, pen
curves, noise, blanks). It needs nothing from the classifier's training, so it serves any network,
one trained without non-digits or an ensemble as well as one trained with outlier exposure.

NOTE: the held-out sets that report on it (bench/strokes.py, bench/people.py) are made elsewhere; the
detector only ever sees `training.glyphs` and the training digits.
"""

import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training import glyphs
from training.augment import DISTORTIONS
from training.data import Digits

DETECTOR_WIDTH = 64
DETECTOR_DIGITS = 20_000  # training digits it learns from; as many non-digits
DETECTOR_SEED = 70_001  # not a seed training draws its distortions or glyphs from
DETECTOR_STEPS = 600  # Adam steps of DETECTOR_BATCH, however few the examples
DETECTOR_BATCH = 256


@dataclass(frozen=True)
class Detector:
    """`score(features)`: a logit, higher for what looks like a digit."""

    hidden_kernel: np.ndarray  # [features, DETECTOR_WIDTH]
    hidden_bias: np.ndarray
    kernel: np.ndarray  # [DETECTOR_WIDTH, 1]
    bias: np.ndarray
    fitted_on: str

    def score(self, features: tf.Tensor) -> tf.Tensor:
        hidden = tf.nn.relu(tf.matmul(features, tf.constant(self.hidden_kernel)) + self.hidden_bias)
        return tf.squeeze(tf.matmul(hidden, tf.constant(self.kernel)) + self.bias, axis=1)

    def describe(self) -> dict[str, Any]:
        features = self.hidden_kernel.shape[0]
        return {
            "layers": [f"features({features})", f"Dense({DETECTOR_WIDTH}, relu)", "Dense(1): a logit"],
            "fitted_on": self.fitted_on,
        }


def examples(train: Digits, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, 1 for a digit and 0 for none): `count` training digits, half of them redrawn with the
    page's pens, and a tenth as many printed digits, against as many non-digits."""
    rng = np.random.default_rng(DETECTOR_SEED)
    digits = train.x[rng.choice(len(train), size=min(count, len(train)), replace=False)]
    pen = DISTORTIONS["pen"]
    assert pen is not None
    half = len(digits) // 2
    digits = np.concatenate([digits[:half], pen.apply(digits[half:], rng)])
    printed = glyphs.printed_digits(max(1, len(digits) // 10), seed=DETECTOR_SEED).x
    positives = np.concatenate([digits, printed])
    negatives = glyphs.non_digits(len(positives), seed=DETECTOR_SEED)
    x = np.concatenate([positives, negatives]).astype(np.float32)
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype(np.float32)
    return x, y


def fit(features: np.ndarray, is_digit: np.ndarray, described: str) -> Detector:
    """The detector, fitted on the classifier's `features` of the images `examples` made; reproducible."""
    keras.utils.set_random_seed(DETECTOR_SEED)
    inputs = keras.Input((features.shape[1],))
    hidden = keras.layers.Dense(DETECTOR_WIDTH, activation="relu")(inputs)
    net = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    epochs = math.ceil(DETECTOR_STEPS / math.ceil(len(features) / DETECTOR_BATCH))
    net.fit(features, is_digit, batch_size=DETECTOR_BATCH, epochs=epochs, shuffle=True, verbose=0)
    hidden_kernel, hidden_bias, kernel, bias = (np.asarray(w, np.float32) for w in net.get_weights())
    return Detector(hidden_kernel, hidden_bias, kernel, bias, described)
