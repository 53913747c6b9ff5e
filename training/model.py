"""A network from `training.networks` as a Keras model, and the readable list of its layers.

Every model starts by rescaling raw 0..255 pixels to 0..1, so the scaling travels inside the SavedModel.
"""

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
    """A readable list of a built model's layers, as recorded in metadata.json."""
    return [_describe(layer) for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


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
