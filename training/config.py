"""Hyperparameters, named in one place. A network may change the defaults; the CLI overrides both."""

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from training.networks import Network


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    dropout: float = 0.0
    augment: bool = False
    cosine_decay: bool = False
    label_smoothing: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


HYPERPARAMETER_NAMES = tuple(f.name for f in fields(Hyperparameters))


def hyperparameters_for(network: Network, **overrides: Any) -> Hyperparameters:
    """The network's defaults, then every override that is not None."""
    chosen = {**network.defaults, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(chosen) - set(HYPERPARAMETER_NAMES)
    if unknown:
        raise ValueError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
    return replace(Hyperparameters(), **chosen)
