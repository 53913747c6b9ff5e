"""The networks this project trains, each addressable by name (built as Keras models by `training.model`).

The article's three batch-normalized MLPs, their no-BN controls, and the default recipe.
"""

from dataclasses import dataclass, field
from typing import Literal

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


# What the page sees as well as MNIST: other pens, warps, printed digits (version 3's recipe, before non-digits)
_PEOPLE: dict[str, float | int | bool | str] = {
    "epochs": 60,
    "batch_size": 128,
    "dropout": 0.2,
    "augment": "pen",
    "cosine_decay": True,
    "label_smoothing": 0.1,
    "printed_digits": 6000,
}

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
            description="the second default (version 2): two wide BN layers before ReLU, dropout 0.2, small affine "
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
        Network(
            "bn-768-768-pen",
            (768, 768),
            bn="before",
            description="the third default (version 3): bn-768-768-affine trained on what people make too: pens "
            "of several widths, elastic warps, stretched and low-resolution digits, printed digits, and non-digits "
            "(outlier exposure) for the `confident` flag",
            defaults={**_PEOPLE, "outlier_exposure": 0.2},
        ),
        Network(
            "bn-768-768-people",
            (768, 768),
            bn="before",
            description="bn-768-768-pen without outlier exposure, non-digits left to the export's digit detector "
            "(training.detector); tried as an ensemble member, not kept (docs/calibration.md)",
            defaults=_PEOPLE,
        ),
    )
}
DEFAULT_NETWORK = "bn-768-768-pen"
