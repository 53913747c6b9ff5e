"""The networks this project trains, each addressable by name.

The article's three batch-normalized MLPs, their no-BN controls, and the default recipe. Every
network starts by rescaling raw 0..255 pixels to 0..1, so the scaling travels inside the SavedModel.
"""

from dataclasses import dataclass, field
from typing import Literal

import keras

from contract import IMAGE_PIXELS, INPUT_NAME, NUM_CLASSES

BnPlacement = Literal["after", "before", "none"]
DropoutOrder = Literal["after_bn", "before_bn"]


@dataclass(frozen=True)
class Network:
    """An MLP: hidden widths, where BN sits relative to ReLU, and where dropout sits relative to BN."""

    name: str
    hidden: tuple[int, ...]
    bn: BnPlacement = "after"
    dropout_order: DropoutOrder = "after_bn"
    description: str = ""
    defaults: dict[str, float | int | bool | str] = field(default_factory=dict)


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network("bn-128-64", (128, 64), description="article: 2 BN layers, Adam at 0.001"),
        Network(
            "bn-256-128-64",
            (256, 128, 64),
            description="article: 3 BN layers, Adam at 0.01",
            defaults={"learning_rate": 0.01},
        ),
        Network("bn-256-128", (256, 128), description="article: 2 BN layers, Adam at 0.001"),
        Network("plain-128-64", (128, 64), bn="none", description="control for bn-128-64"),
        Network(
            "plain-256-128-64",
            (256, 128, 64),
            bn="none",
            description="control for bn-256-128-64",
            defaults={"learning_rate": 0.01},
        ),
        Network("plain-256-128", (256, 128), bn="none", description="control for bn-256-128"),
        Network(
            "bn-512-256-aug",
            (512, 256),
            bn="before",
            description="the first default (version 1): BN before ReLU, dropout, shifted digits, cosine decay",
            defaults={"epochs": 60, "dropout": 0.25, "augment": "shift", "cosine_decay": True},
        ),
        Network(
            "bn-768-768-affine",
            (768, 768),
            bn="before",
            description="default recipe: two wide BN layers before ReLU, dropout 0.2, small affine "
            "distortions, label smoothing 0.1, cosine decay",
            defaults={
                "epochs": 60,
                "batch_size": 128,
                "dropout": 0.2,
                "augment": "affine",
                "cosine_decay": True,
                "label_smoothing": 0.1,
            },
        ),
    )
}
DEFAULT_NETWORK = "bn-768-768-affine"


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
