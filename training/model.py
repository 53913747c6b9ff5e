"""A network from `training.networks` as a Keras model, and the readable list of its layers.

Every model starts by rescaling raw 0..255 pixels to 0..1, so the scaling travels inside the SavedModel.
"""

from collections import Counter

import keras

from contract import IMAGE_PIXELS, INPUT_NAME, NUM_CLASSES
from training.networks import Network


def build_model(
    network: Network, *, dropout: float, momentum: float, epsilon: float, synchronized: bool = False
) -> keras.Model:
    """The Keras model for `network`, uncompiled; `synchronized` BN all-reduces its moments across replicas."""
    inputs = keras.Input((IMAGE_PIXELS,), name=INPUT_NAME)
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    for width in network.hidden:
        x = _hidden_block(
            x, width, network, dropout=dropout, momentum=momentum, epsilon=epsilon, synchronized=synchronized
        )
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=network.name)


def describe_layers(model: keras.Model) -> list[str]:
    """A readable list of a built model's layers, as recorded in metadata.json: one entry a layer for a chain;
    for a model of parallel branches (an ensemble's members), one entry a run of layers, joined by ' -> ', in
    the model's order: each branch, then what follows where they join."""
    parents_of = _parents(model)
    consumers = Counter(parent for parents in parents_of.values() for parent in parents)
    runs: list[list[str]] = []
    run_of: dict[str, int] = {}  # layer name -> its run
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        parents = parents_of.get(layer.name, [])
        follows = len(parents) == 1 and parents[0] in run_of and consumers[parents[0]] == 1
        if not follows:
            runs.append([])
        run_of[layer.name] = run_of[parents[0]] if follows else len(runs) - 1
        runs[run_of[layer.name]].append(_describe(layer))
    return runs[0] if len(runs) == 1 else [" -> ".join(run) for run in runs]


def _parents(model: keras.Model) -> dict[str, list[str]]:
    """Each layer's name -> the names of the layers whose outputs it takes, from the functional model's config."""
    found: dict[str, list[str]] = {}
    for layer in model.get_config()["layers"]:
        for node in layer["inbound_nodes"]:
            args = node["args"][0] if isinstance(node["args"][0], list) else [node["args"][0]]
            found[layer["name"]] = [arg["config"]["keras_history"][0] for arg in args]
    return found


def _describe(layer: keras.layers.Layer) -> str:
    if isinstance(layer, keras.layers.Rescaling):
        return f"Rescaling(1/{round(1 / layer.scale)})"
    if isinstance(layer, keras.layers.Dense):
        activation = layer.activation.__name__
        return f"Dense({layer.units})" if activation == "linear" else f"Dense({layer.units}, {activation})"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "BN"
    if isinstance(layer, keras.layers.Dropout):
        return f"Dropout({layer.rate:g})"
    if isinstance(layer, keras.layers.Activation):
        name: str = layer.activation.__name__
        return {"relu": "ReLU"}.get(name, name)
    return type(layer).__name__


def _hidden_block(
    x: keras.KerasTensor,
    width: int,
    network: Network,
    *,
    dropout: float,
    momentum: float,
    epsilon: float,
    synchronized: bool,
) -> keras.KerasTensor:
    def bn(t: keras.KerasTensor) -> keras.KerasTensor:
        return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, synchronized=synchronized)(t)

    def drop(t: keras.KerasTensor) -> keras.KerasTensor:
        return keras.layers.Dropout(dropout)(t) if dropout > 0 else t

    if network.bn == "before":
        x = keras.layers.Activation("relu")(bn(keras.layers.Dense(width)(x)))
        return drop(x)
    x = keras.layers.Dense(width, activation="relu")(x)
    if network.bn == "none":
        return drop(x)
    if network.dropout_order == "before_bn":
        return bn(drop(x))
    return drop(bn(x))


def split_head(model: keras.Model) -> tuple[keras.Model, keras.layers.Dense]:
    """The model without its softmax layer (features in, the last hidden layer's output out), and that layer:
    its logits are `features @ kernel + bias`."""
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or head.units != NUM_CLASSES:
        raise ValueError(f"{model.name}'s last layer is {type(head).__name__}, not the {NUM_CLASSES}-way Dense")
    return keras.Model(model.input, head.input), head
