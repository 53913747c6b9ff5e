"""Hyperparameters, named in one place. A network may change the defaults; the CLI overrides both."""

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from training.augment import DISTORTIONS
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
    augment: str = "none"  # a key of training.augment.DISTORTIONS
    cosine_decay: bool = False
    label_smoothing: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        """What is out of range, each as the flag that sets it would say."""
        checks = [
            ("epochs", self.epochs >= 1, "must be at least 1"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            ("learning_rate", self.learning_rate > 0, "must be positive"),
            ("dropout", 0 <= self.dropout < 1, "must be in [0, 1)"),
            ("bn_momentum", 0 <= self.bn_momentum < 1, "must be in [0, 1)"),
            ("bn_epsilon", self.bn_epsilon > 0, "must be positive"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be in [0, 1)"),
            ("augment", self.augment in DISTORTIONS, f"must be one of {', '.join(DISTORTIONS)}"),
        ]
        return [f"--{name.replace('_', '-')} {rule}, got {getattr(self, name)}" for name, ok, rule in checks if not ok]


HYPERPARAMETER_NAMES = tuple(f.name for f in fields(Hyperparameters))


def hyperparameters_for(network: Network, **overrides: Any) -> Hyperparameters:
    """The network's defaults, then every override that is not None; raises ValueError if out of range."""
    chosen = {**network.defaults, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(chosen) - set(HYPERPARAMETER_NAMES)
    if unknown:
        raise ValueError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
    hp = replace(Hyperparameters(), **chosen)
    problems = hp.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return hp
