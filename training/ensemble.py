"""`mnist-train ensemble`: published versions combined into one network, published as the next version.

The members' logits are averaged (a deep ensemble, Lakshminarayanan et al. 2017), which is one wider
MLP: the members' hidden layers side by side, read by one softmax layer whose kernel stacks theirs,
each divided by the number of members. The result is an ordinary Keras model with the same BN layers,
so it goes through the export, its head and its eight checks as a trained network does. Averaging
the answers of two differently trained networks ranks their doubts better than either alone: on the
validation digits it lets more answers be confident at the same accuracy (docs/calibration.md).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from contract import IMAGE_PIXELS, INPUT_NAME, NUM_CLASSES, list_versions, load_savedmodel, read_metadata
from contract.metadata import Metadata
from training.model import build_model, split_head
from training.networks import NETWORKS

SIGNATURE = "serving_default"


class EnsembleError(Exception):
    """A member that cannot be combined: missing, of an unknown network, or of other weights than its network's."""


@dataclass(frozen=True)
class Member:
    version: int
    metadata: Metadata
    model: keras.Model  # its network, with the published weights, in inference mode


def load_member(model_dir: Path, version: int) -> Member:
    """A published version as the Keras network it was trained as, with the weights its SavedModel holds."""
    versions = list_versions(model_dir) if model_dir.is_dir() else {}
    if version not in versions:
        published = ", ".join(map(str, sorted(versions))) or "none"
        raise EnsembleError(f"{model_dir.name} has no version {version}; published: {published}")
    metadata = read_metadata(versions[version])
    network = NETWORKS.get(metadata.network)
    if network is None:
        raise EnsembleError(f"version {version} is a {metadata.network!r}, not a network this project trains")
    hp = metadata.hyperparameters
    model = build_model(network, dropout=hp["dropout"], momentum=hp["bn_momentum"], epsilon=hp["bn_epsilon"])
    saved = load_savedmodel(versions[version])
    variables = saved.signatures[SIGNATURE].variables  # type: ignore[attr-defined]
    by_layer: dict[str, dict[str, np.ndarray]] = {}
    for variable in variables:  # "dense_1/kernel:0": a layer's weights, in the order the network made them
        layer, _, weight = variable.name.partition("/")
        by_layer.setdefault(layer, {})[weight.split(":")[0]] = variable.numpy()
    layers = [layer for layer in model.layers if layer.weights]
    if len(layers) != len(by_layer):
        raise EnsembleError(f"version {version} holds {len(by_layer)} layers of weights, its network {len(layers)}")
    for layer, saved_weights in zip(layers, by_layer.values(), strict=True):
        names = [w.path.split("/")[-1] for w in layer.weights]
        if set(names) != set(saved_weights) or any(
            w.shape != saved_weights[n].shape for w, n in zip(layer.weights, names, strict=True)
        ):
            raise EnsembleError(f"version {version}'s weights do not fit {metadata.network}'s layer {layer.name}")
        layer.set_weights([saved_weights[n] for n in names])
    return Member(version, metadata, model)


def combine(members: list[Member]) -> keras.Model:
    """One network whose softmax reads every member's last hidden layer: the mean of their logits."""
    inputs = keras.Input((IMAGE_PIXELS,), name=INPUT_NAME)
    features, kernels, biases = [], [], []
    for member in members:
        body, dense = split_head(member.model)
        x = inputs
        for layer in body.layers[1:]:  # the member's own layer objects, after its input
            x = layer(x)
        features.append(x)
        kernels.append(np.asarray(dense.kernel))
        biases.append(np.asarray(dense.bias))
    joined = keras.layers.Concatenate()(features)
    head = keras.layers.Dense(NUM_CLASSES, activation="softmax")
    outputs = head(joined)
    head.set_weights([np.concatenate(kernels) / len(members), np.mean(biases, axis=0)])
    name = "ensemble-" + "-".join(str(m.version) for m in members)
    return keras.Model(inputs, outputs, name=name)


def description(members: list[Member]) -> tuple[str, dict[str, Any]]:
    """The network name and the hyperparameters metadata.json records for an ensemble of `members`."""
    network = "ensemble of " + " and ".join(f"{m.metadata.network} (version {m.version})" for m in members)
    hyperparameters = {
        "combined": "the mean of the members' logits",
        "members": {
            str(m.version): {
                "network": m.metadata.network,
                "savedmodel_sha256": m.metadata.savedmodel_sha256,
                **m.metadata.hyperparameters,
            }
            for m in members
        },
    }
    return network, hyperparameters
