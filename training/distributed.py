"""Data-parallel training on tf.distribute, with synchronized batch normalization.

`MirroredStrategy` runs one replica per device of this machine (CPU devices can be split into logical
ones for tests), `MultiWorkerMirroredStrategy` one per worker process, its cluster from `TF_CONFIG`, as
TensorFlow documents. Each replica normalizes over its slice of the batch unless the BN layers are
synchronized (`BatchNormalization(synchronized=True)`), which all-reduces the moments so that every
replica uses the global batch's statistics.

NOTE: Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy in TensorFlow 2.21 ("Attempt to
convert a value (PerReplica:{...}) to a Tensor"; tensorflow#72388, keras#20585). So training here is
one custom step, `strategy.run` over a distributed dataset with the loss averaged over the global batch,
which works for every strategy, the default single-device one included.
"""

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.config import Distribution, Hyperparameters
from training.data import Digits, Splits
from training.model import build_model
from training.networks import Network
from training.train import TrainResult, evaluate, make_deterministic, training_digits

Log = Callable[[str], None]
# What a collective op raises when a peer stops (its heartbeats stop, or the connection drops).
WORKER_LOST = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError)


def split_cpu(devices: int) -> None:
    """Make `devices` logical CPU devices, before TensorFlow initializes them (a test's stand-in for GPUs)."""
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def make_strategy(distribution: Distribution) -> tf.distribute.Strategy:
    if distribution.strategy == "mirrored":
        if distribution.devices:
            split_cpu(distribution.devices)
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if distribution.strategy == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster and this worker")
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """False only for a process that TF_CONFIG names as a worker other than the chief: only the chief
    publishes. The chief is the `chief` task if the cluster has one, else worker 0."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return bool(task.get("type") == "chief")
    return int(task.get("index", 0)) == 0


def fit(
    network: Network,
    hp: Hyperparameters,
    splits: Splits,
    strategy: tf.distribute.Strategy,
    *,
    sync_bn: bool,
    log: Log | None = None,
) -> TrainResult:
    """Train `network` with `strategy`: `hp.batch_size` rows per replica, so the global batch is that times
    the replica count. Every replica starts from the same seeded weights and sees a disjoint slice."""
    if hp.augment != "none":
        raise ValueError("distributed training takes no augmentation yet; use --augment none")
    make_deterministic(hp.seed)
    replicas = strategy.num_replicas_in_sync
    global_batch = hp.batch_size * replicas
    training = training_digits(splits.train, hp)
    with strategy.scope():
        model = build_model(
            network, dropout=hp.dropout, momentum=hp.bn_momentum, epsilon=hp.bn_epsilon, synchronized=sync_bn
        )
        steps_per_epoch = len(training) // global_batch
        learning_rate: Any = hp.learning_rate
        if hp.cosine_decay:
            learning_rate = keras.optimizers.schedules.CosineDecay(hp.learning_rate, hp.epochs * steps_per_epoch)
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing, reduction="none")
    step = make_step(model, optimizer, loss_fn, strategy, global_batch)
    history: dict[str, list[float]] = {"loss": [], "val_accuracy": []}
    for epoch in range(hp.epochs):
        order = np.random.default_rng((hp.seed, epoch)).permutation(len(training))[: steps_per_epoch * global_batch]
        batches = epoch_batches(training.take(order), global_batch, strategy)
        progress = keras.utils.Progbar(steps_per_epoch, verbose=1 if log else 0)
        losses = []
        for i, batch in enumerate(batches):
            losses.append(float(step(batch)))
            progress.update(i + 1, [("loss", losses[-1])])
        predicted = np.asarray(model(splits.validation.x, training=False)).argmax(axis=1)
        history["loss"].append(float(np.mean(losses)))
        history["val_accuracy"].append(float((predicted == splits.validation.y).mean()))
        if log:
            log(
                f"epoch {epoch + 1}/{hp.epochs}: loss {history['loss'][-1]:.4f}, "
                f"validation accuracy {history['val_accuracy'][-1]:.4f}"
            )
    # The export is an ordinary model: the same weights, outside any strategy (BN's moving statistics
    # are what inference uses, synchronized or not).
    plain = build_model(network, dropout=hp.dropout, momentum=hp.bn_momentum, epsilon=hp.bn_epsilon)
    plain.set_weights(model.get_weights())
    return TrainResult(plain, history, evaluate(plain, splits))


def make_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss_fn: keras.losses.Loss,
    strategy: tf.distribute.Strategy,
    global_batch: int,
) -> Callable[[Any], tf.Tensor]:
    """One training step on every replica: per-replica gradients of the loss averaged over the global
    batch, all-reduced by the optimizer; BN's moments are all-reduced too when its layers are synchronized."""

    def replica_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            per_example = loss_fn(y, model(x, training=True))
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    def train_step(batch: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    step: Callable[[Any], tf.Tensor] = tf.function(train_step)
    return step


def epoch_batches(digits: Digits, global_batch: int, strategy: tf.distribute.Strategy) -> Any:
    """Rows in the order given, in global batches split across the replicas: each input pipeline (one per
    worker) takes every n-th row, and each of its replicas a per-replica batch of those in turn."""

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(global_batch)
        rows = tf.data.Dataset.from_tensor_slices((digits.x, digits.one_hot()))
        return rows.shard(context.num_input_pipelines, context.input_pipeline_id).batch(
            per_replica, drop_remainder=True
        )

    return strategy.distribute_datasets_from_function(pipeline)


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight, in order: equal on every worker of a correct synchronous run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def describe(distribution: Distribution, strategy: tf.distribute.Strategy, hp: Hyperparameters) -> dict[str, Any]:
    """What metadata.json records about the distribution of a run."""
    replicas = strategy.num_replicas_in_sync
    return {
        "strategy": distribution.strategy,
        "replicas": replicas,
        "per_replica_batch": hp.batch_size,
        "global_batch": hp.batch_size * replicas,
        "synchronized_bn": distribution.sync_bn,
    }
