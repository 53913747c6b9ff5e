"""Every option of a training command, named in one place and importable without TensorFlow, so that the
CLI can describe them before anything heavy loads: hyperparameters (a network may change their
defaults; the CLI overrides both), the tf.distribute strategy, the repository, the deploy gate, the
recipes run.
"""

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from contract import defaults
from training.augment import DISTORTIONS
from training.networks import DEFAULT_NETWORK, Network

DEFAULT_DATA = os.environ.get("MNIST_DATA") or "auto"  # see training.data for what each spec means
DEFAULT_SERVER = f"http://{defaults.HOST}:{defaults.REST_PORT}"
StrategyName = Literal["none", "mirrored", "multiworker"]
STRATEGIES: tuple[StrategyName, ...] = ("none", "mirrored", "multiworker")


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
    outlier_exposure: float = 0.0  # the share of each epoch that is non-digits, trained toward no class
    printed_digits: int = 0  # digits printed in fonts, added to the training digits

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
            ("outlier_exposure", 0 <= self.outlier_exposure < 1, "must be in [0, 1)"),
            ("printed_digits", self.printed_digits >= 0, "must be at least 0"),
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


@dataclass(frozen=True)
class Distribution:
    """How a run is spread: the strategy, logical CPU devices for `mirrored` (0: the machine's own), and
    whether BN statistics are synchronized across replicas."""

    strategy: StrategyName = "none"
    devices: int = 0
    sync_bn: bool = True


@dataclass(frozen=True)
class TrainOptions:
    network: str = DEFAULT_NETWORK
    data: str = DEFAULT_DATA
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)  # over the network's own defaults
    verbose: bool = True
    distribution: Distribution = field(default_factory=Distribution)  # tf.distribute; none by default
    extra_data: Path | None = None  # corrections (POST /feedback's folder) added to the training digits
    extra_repeat: int = 1  # ... each this many times


@dataclass(frozen=True)
class Repository:
    models_dir: Path = defaults.MODELS_DIR
    name: str = defaults.MODEL_NAME

    @property
    def model_dir(self) -> Path:
        return self.models_dir / self.name


@dataclass(frozen=True)
class Gate:
    """What a new version must reach on its held-out digits before it is published."""

    min_accuracy: float = 0.96
    tolerance: float = 0.005  # how far below the served version's accuracy a new one may be


@dataclass(frozen=True)
class DeployOptions:
    servers: tuple[str, ...] = (DEFAULT_SERVER,)  # every replica serving the repository
    resolve: bool = False  # each server's host name stands for every address it resolves to
    gate: Gate = Gate()
    wait_s: float = 180.0
    admin_token: str | None = None  # to rescan at once, and to set labels
    canary: bool = False  # label the new version `canary` once it serves
    promote: bool = False  # then move `stable` to it

    def steps(self) -> int:
        return 7 + (self.canary or self.promote) + self.promote


QUICK_RECIPE_DIGITS = 2_000


@dataclass(frozen=True)
class RecipeOptions:
    data: str = DEFAULT_DATA
    doc: Path = Path("docs/training.md")  # the table replaces what is between the markers here
    results: Path = Path("docs/recipes.json")
    quick: bool = False  # one seed, one epoch, QUICK_RECIPE_DIGITS training digits: for tests
