"""`python -m tests.training.distributed_probe STRATEGY DEVICES SYNC OUT.json`: one training step of the
real distributed step (`training.distributed.make_step`) on one global batch, then each local replica's
BN moving mean and variance, written as JSON. Run in its own process: logical devices and TF_CONFIG
must be set before TensorFlow starts.

The batch is 32 rows of bn-128-64's input, the first BN layer's momentum 0 (so its moving statistics
become exactly the moments it used), and the learning rate 0 (so nothing else moves)."""

import json
import sys
from pathlib import Path

import keras
import numpy as np

from training.config import Distribution
from training.data import Digits
from training.distributed import epoch_batches, make_step, make_strategy
from training.model import build_model
from training.networks import NETWORKS

GLOBAL_BATCH = 32


def batch() -> tuple[np.ndarray, np.ndarray]:
    """Rows whose halves and quarters differ, so per-slice statistics differ from the global ones."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 255, (GLOBAL_BATCH, 784)).astype(np.float32)
    x *= np.repeat(np.linspace(0.2, 1.0, 4), GLOBAL_BATCH // 4)[:, None].astype(np.float32)
    return x, rng.integers(0, 10, GLOBAL_BATCH)


def main(strategy_name: str, devices: str, sync: str, out: str) -> None:
    strategy = make_strategy(Distribution(strategy_name, int(devices), sync == "sync"))  # type: ignore[arg-type]
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(NETWORKS["bn-128-64"], dropout=0.0, momentum=0.0, epsilon=1e-3, synchronized=sync == "sync")
        optimizer = keras.optimizers.SGD(0.0)
        optimizer.build(model.trainable_variables)
    loss = keras.losses.CategoricalCrossentropy(reduction="none")
    step = make_step(model, optimizer, loss, strategy, GLOBAL_BATCH)
    x, y = batch()
    for one in epoch_batches(Digits(x, y), GLOBAL_BATCH, strategy):
        step(one)
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    dense = model.layers[2]  # Rescaling, then the first Dense
    z = np.asarray(dense(x / 255.0))
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "means": [np.asarray(v).tolist() for v in strategy.experimental_local_results(bn.moving_mean.value)],
        "variances": [np.asarray(v).tolist() for v in strategy.experimental_local_results(bn.moving_variance.value)],
        "global_mean": z.mean(axis=0).tolist(),
        "global_variance": z.var(axis=0).tolist(),
        "weights": [np.asarray(w).tolist() for w in model.get_weights()[:2]],
    }
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
