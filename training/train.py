"""Fit one network, reproducibly, and measure it on held-out digits."""

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from training import glyphs
from training.augment import DISTORTIONS, Distortion
from training.config import Hyperparameters
from training.data import NOT_A_DIGIT, Digits, Splits
from training.model import build_model
from training.networks import Network


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, float]


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's kernels deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def run(
    network: Network,
    hp: Hyperparameters,
    splits: Splits,
    *,
    verbose: int = 0,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainResult:
    """Train `network` on `splits.train`, validate each epoch, and evaluate on `splits.test`."""
    make_deterministic(hp.seed)
    model = build_model(network, dropout=hp.dropout, momentum=hp.bn_momentum, epsilon=hp.bn_epsilon)
    training = training_digits(splits.train, hp)
    steps_per_epoch = math.ceil(len(training) / hp.batch_size)
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = hp.learning_rate
    if hp.cosine_decay:
        learning_rate = keras.optimizers.schedules.CosineDecay(hp.learning_rate, hp.epochs * steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing),
        metrics=["accuracy"],
    )
    batches = _Batches(training, hp.batch_size, seed=hp.seed, distortion=DISTORTIONS[hp.augment])
    fit = model.fit(
        batches,
        epochs=hp.epochs,
        validation_data=(splits.validation.x, splits.validation.one_hot()),
        verbose=verbose,
        callbacks=callbacks,
    )
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    return TrainResult(model, history, evaluate(model, splits))


def training_digits(digits: Digits, hp: Hyperparameters) -> Digits:
    """The digits to train on: the split's, then printed digits and non-digits if `hp` asks for them."""
    if hp.printed_digits:
        digits = digits + glyphs.printed_digits(hp.printed_digits, seed=hp.seed)
    if hp.outlier_exposure:
        count = round(len(digits) * hp.outlier_exposure / (1 - hp.outlier_exposure))
        digits = digits + Digits(glyphs.non_digits(count, seed=hp.seed + 1), np.full(count, NOT_A_DIGIT))
    return digits


def evaluate(model: keras.Model, splits: Splits) -> dict[str, float]:
    """Inference-mode accuracy and loss on the validation and test digits."""
    metrics: dict[str, float] = {}
    for prefix, digits in (("validation", splits.validation), ("test", splits.test)):
        probabilities = np.asarray(model.predict(digits.x, batch_size=256, verbose=0))
        accuracy, loss = score(probabilities, digits.y)
        metrics[f"{prefix}_accuracy"] = accuracy
        metrics[f"{prefix}_loss"] = loss
    return metrics


def score(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of predicted probabilities against integer labels."""
    accuracy = float((probabilities.argmax(axis=1) == labels).mean())
    picked = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    loss = float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())
    return accuracy, loss


class _Batches(keras.utils.PyDataset):  # type: ignore[misc]
    """Shuffled mini-batches, optionally distorted anew each epoch.

    Randomness comes from (seed, epoch, batch), so two runs with the same seed see the same batches.
    """

    def __init__(self, digits: Digits, batch_size: int, *, seed: int, distortion: Distortion | None) -> None:
        # NOTE: a second thread distorts the next batch while TensorFlow trains on this one; numpy and
        # scipy release the GIL. Keras finishes an epoch's batches before on_epoch_end reshuffles.
        super().__init__(workers=2 if distortion is not None else 1)
        self._digits = digits
        self._batch_size = batch_size
        self._seed = seed
        self._distortion = distortion
        self._epoch = 0
        self._order = self._shuffle()

    def __len__(self) -> int:
        return math.ceil(len(self._digits) / self._batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        batch = self._digits.take(self._order[index * self._batch_size : (index + 1) * self._batch_size])
        x = batch.x
        if self._distortion is not None:
            x = self._distortion.apply(x, np.random.default_rng((self._seed, self._epoch, index)))
        return x, batch.one_hot()

    def on_epoch_end(self) -> None:
        self._epoch += 1
        self._order = self._shuffle()

    def _shuffle(self) -> np.ndarray:
        return np.random.default_rng((self._seed, self._epoch)).permutation(len(self._digits))
