"""From data to a published version, as one pipeline with typed options: train, stage and verify, publish.

The CLI's `train` and `deploy` commands are thin callers of this module; so are the tests. Every
failure a user can act on is a `PipelineError`, raised before anything is published.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from contract import (
    CONFIDENCE_SIGNATURE,
    CONFIDENT_NAME,
    Int8Weights,
    Metadata,
    list_versions,
    load_savedmodel,
    read_metadata,
    signature_function,
    write_metadata,
)
from training import calibration, distributed
from training.calibration_report import Measured
from training.config import Hyperparameters, Repository, TrainOptions, hyperparameters_for
from training.data import DataError, Splits, load_splits, with_corrections
from training.export import CheckResult, ExportError, StagedVersion, int8_weights, load_signature, staged_export
from training.networks import NETWORKS, Network
from training.train import TrainResult, run

Log = Callable[[str], None]


class PipelineError(Exception):
    """A failure the user can act on; nothing was published."""


@dataclass(frozen=True)
class Trained:
    network: Network
    hp: Hyperparameters
    splits: Splits
    result: TrainResult
    distribution: dict[str, Any] | None = None  # for metadata.json, when trained under a strategy

    @property
    def test_accuracy(self) -> float:
        return self.result.metrics["test_accuracy"]


@dataclass(frozen=True)
class Published:
    version: int
    path: Path
    checks: list[CheckResult]


@dataclass(frozen=True)
class Evaluation:
    version: int
    source: str
    digits: int
    accuracy: float
    loss: float
    recorded_accuracy: float
    ece: float
    brier: float
    coverage: float | None  # the share of answers marked confident, for a version with the flag
    accuracy_when_confident: float | None
    measured: Measured  # the probabilities and flags behind the figures, for a report


def train(options: TrainOptions, log: Log) -> Trained:
    """Train as the options say: the network, its hyperparameters, the data."""
    network = NETWORKS.get(options.network)
    if network is None:
        raise PipelineError(f"unknown network {options.network!r}; choose from {', '.join(NETWORKS)}")
    try:
        hp = hyperparameters_for(network, **options.hyperparameters)
    except (ValueError, TypeError) as e:
        raise PipelineError(str(e)) from e
    splits = _load(options.data, hp.seed)
    if options.extra_data is None and options.extra_repeat != 1:
        raise PipelineError("--extra-repeat weighs the corrections that --extra-data adds: give both")
    if options.extra_data is not None:
        try:
            splits = with_corrections(splits, options.extra_data, options.extra_repeat)
        except DataError as e:
            raise PipelineError(str(e)) from e
    info = splits.info
    corrections = ""
    if info.extra:
        times = f", each {info.extra.repeat} times" if info.extra.repeat > 1 else ""
        corrections = f" ({info.extra.count} corrections{times})"
    log(
        f"training {network.name} on {info.source}: {info.train_size} train{corrections}, "
        f"{info.validation_size} validation, {info.test_size} test digits"
    )
    if options.distribution.strategy == "none":
        return Trained(network, hp, splits, run(network, hp, splits, verbose=2 if options.verbose else 0))
    return _train_distributed(network, hp, splits, options, log)


def _train_distributed(
    network: Network, hp: Hyperparameters, splits: Splits, options: TrainOptions, log: Log
) -> Trained:
    try:
        strategy = distributed.make_strategy(options.distribution)
        described = distributed.describe(options.distribution, strategy, hp)
        log(
            f"{described['strategy']} over {described['replicas']} replicas: {described['per_replica_batch']} rows "
            f"each, global batch {described['global_batch']}, BN {'' if described['synchronized_bn'] else 'not '}"
            "synchronized"
        )
        result = distributed.fit(
            network, hp, splits, strategy, sync_bn=options.distribution.sync_bn, log=log if options.verbose else None
        )
    except ValueError as e:
        raise PipelineError(str(e)) from e
    except distributed.WORKER_LOST as e:
        reason = (e.message or str(e)).strip().splitlines()[0][:300]
        raise PipelineError(f"training stopped: a worker was lost ({reason}); nothing was published") from e
    log(f"weights sha256 {distributed.weights_digest(result.model)} (the same on every worker)")
    return Trained(network, hp, splits, result, described)


@contextmanager
def stage(trained: Trained, repository: Repository) -> Iterator[StagedVersion]:
    """Export and verify `trained` in a staging folder of the repository; unpublished, it is removed."""
    with _staged(
        trained.result.model,
        repository,
        network=trained.network.name,
        hyperparameters=trained.hp.as_dict(),
        splits=trained.splits,
        metrics=trained.result.metrics,
        distribution=trained.distribution,
    ) as staged:
        yield staged


def publish(trained: Trained, repository: Repository, log: Log) -> Published:
    """Stage, verify and publish `trained` as the next version of the repository's model."""
    return _publish(stage(trained, repository), repository, log)


@contextmanager
def _staged(
    model: keras.Model,
    repository: Repository,
    *,
    network: str,
    hyperparameters: dict[str, Any],
    splits: Splits,
    metrics: dict[str, float],
    distribution: dict[str, Any] | None = None,
) -> Iterator[StagedVersion]:
    """`staged_export` into the repository, its refusal a PipelineError."""
    try:
        with staged_export(
            model,
            network=network,
            hyperparameters=hyperparameters,
            splits=splits,
            metrics=metrics,
            models_dir=repository.models_dir,
            name=repository.name,
            distribution=distribution,
        ) as staged:
            yield staged
    except ExportError as e:
        raise PipelineError(f"{e}; nothing was published") from e


def _publish(staging: AbstractContextManager[StagedVersion], repository: Repository, log: Log) -> Published:
    """Log the checks of a staged version, and publish it."""
    with staging as staged:
        for check in staged.checks:
            log(f"  check {check.name:14} ok   {check.detail}")
        version = staged.publish()
    return Published(version, repository.model_dir / str(version), staged.checks)


def publish_ensemble(repository: Repository, versions: list[int], data: str, log: Log) -> Published:
    """Combine published `versions` into one network (`training.ensemble`), then stage, verify and publish it
    as the next version, measured on the members' own split of `data`."""
    from training import ensemble
    from training.train import evaluate as measure

    if len(set(versions)) < 2:
        raise PipelineError(f"an ensemble needs two different versions or more, got {versions}")
    try:
        members = [ensemble.load_member(repository.model_dir, v) for v in versions]
    except ensemble.EnsembleError as e:
        raise PipelineError(str(e)) from e
    splits_of = {(m.metadata.dataset.split_seed, m.metadata.dataset.test_indices_sha256) for m in members}
    if len(splits_of) > 1:
        raise PipelineError(
            "the members were trained on different splits; their validation digits would not be held out"
        )
    splits = _own_splits(repository, versions[0], members[0].metadata, data)
    model = ensemble.combine(members)
    network, hyperparameters = ensemble.description(members)
    log(f"combining {network}")
    staging = _staged(
        model,
        repository,
        network=network,
        hyperparameters=hyperparameters,
        splits=splits,
        metrics=measure(model, splits),
    )
    return _publish(staging, repository, log)


def evaluate(repository: Repository, version: int | None, data: str) -> Evaluation:
    """Re-measure a published version on the held-out digits of its own split of `data`."""
    chosen, path = _published_version(repository, version)
    metadata = read_metadata(path)
    splits = _own_splits(repository, chosen, metadata, data)
    loaded, serve = load_signature(path)
    served = serve(splits.test.x)
    flags = signature_function(loaded, CONFIDENCE_SIGNATURE)
    confident = None if flags is None else flags(splits.test.x)[CONFIDENT_NAME]
    scores = calibration.scores(served, splits.test.y)
    right = served.argmax(axis=1) == splits.test.y
    about = {"calibration": metadata.calibration, "confidence": metadata.confidence}
    measured = Measured(repository.name, chosen, splits.info.source, splits.test.y, served, confident, about)
    return Evaluation(
        version=chosen,
        source=splits.info.source,
        digits=len(splits.test),
        accuracy=scores.accuracy,
        loss=scores.nll,
        recorded_accuracy=metadata.metrics.get("test_accuracy", float("nan")),
        ece=scores.ece,
        brier=scores.brier,
        coverage=None if confident is None else float(confident.mean()),
        accuracy_when_confident=None if confident is None else float(right[confident].mean()),
        measured=measured,
    )


def quantize(repository: Repository, version: int | None, data: str) -> tuple[int, Int8Weights]:
    """Measure a published version's int8 weights on the validation digits of its own split of `data`, as an
    export does (`training.quantize`), and record them in its metadata.json; its SavedModel is untouched."""
    chosen, path = _published_version(repository, version)
    metadata = read_metadata(path)
    splits = _own_splits(repository, chosen, metadata, data)
    probes = np.asarray(metadata.probes.inputs, np.float32)
    record = int8_weights(path, load_savedmodel(path), splits.validation, probes)
    write_metadata(path, metadata.model_copy(update={"int8_weights": record}))
    return chosen, record


def _published_version(repository: Repository, version: int | None) -> tuple[int, Path]:
    """`version`, or the newest where None, and its folder."""
    versions = list_versions(repository.model_dir) if repository.model_dir.is_dir() else {}
    if not versions:
        raise PipelineError(f"no published versions under {repository.model_dir}")
    chosen = version if version is not None else max(versions)
    if chosen not in versions:
        raise PipelineError(f"{repository.name} has no version {chosen}; published: {', '.join(map(str, versions))}")
    return chosen, versions[chosen]


def _own_splits(repository: Repository, version: int, metadata: Metadata, data: str) -> Splits:
    """The split of `data` the version was made with; refused unless its test digits are the recorded ones."""
    splits = _load(data, metadata.dataset.split_seed)
    recorded = metadata.dataset
    if (splits.info.test_size, splits.info.test_indices_sha256) != (recorded.test_size, recorded.test_indices_sha256):
        raise PipelineError(
            f"{repository.name} version {version} was measured on the {recorded.test_size} test digits of "
            f"{recorded.source}, and --data {data} gives {splits.info.test_size} others; "
            "pass the data it was trained on"
        )
    return splits


def _load(data: str, seed: int) -> Splits:
    try:
        return load_splits(data, seed=seed)
    except DataError as e:
        raise PipelineError(str(e)) from e
