"""What every peer serves: the SavedModel's signature, and the answer /predict gives for one image.

Each peer's server imports this module from its own virtualenv (the script's directory is on sys.path);
so it needs nothing but numpy and tensorflow. The bench passes the settings in the environment.
"""

import os

import numpy as np
import tensorflow as tf

MODEL_PATH = os.environ["BENCH_MODEL"]
PORT = int(os.environ["BENCH_PORT"])
MAX_BATCH = int(os.environ.get("BENCH_MAX_BATCH", "64"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_MS", "1")) / 1000


class Model:
    def __init__(self) -> None:
        self._loaded = tf.saved_model.load(MODEL_PATH)
        self._signature = self._loaded.signatures["serving_default"]

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities for an (n, 784) batch."""
        return self._signature(pixels=tf.constant(pixels, tf.float32))["probabilities"].numpy()


def answer(probabilities: np.ndarray) -> dict[str, object]:
    """One image's answer, as /predict gives it: the digit, its probability and all ten."""
    digit = int(probabilities.argmax())
    return {"digit": digit, "probability": float(probabilities[digit]), "probabilities": probabilities.tolist()}
