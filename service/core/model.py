"""One model version made fit to serve: loaded by its runtime, batch-invariant, and self-checked.

Batch invariance: on CPU, TensorFlow computes a batch of one row through a different matmul kernel
from a batch of two or more, and the bits differ (about 1e-7), while the rows of any batch of two
or more agree bit for bit. So a served model never runs a batch of one: `BatchInvariantPredict` pads
it to two rows. The self-check proves at load that a row's output is the same bits alone, repeated,
and at any position of batches of many sizes; where that fails on some machine, the version falls
back to "isolated" mode, where every row is computed in its own padded pair, and says so.

None of this depends on the runtime: the self-check runs over any predict callable.

Accelerators: a version's runtime (its SavedModel) may be offered to faster runtimes built from the same
files (LiteRT, `service.runtimes.litert`). Each candidate must pass the same self-check, in batched
mode, and be faster on the version's probes than the runtime it would replace; the first that does
serves, and the version's checks say which runtime serves and why the others do not.
"""

import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np

from contract import CONFIDENT_NAME, OUTPUT_NAME, GoldenProbes, Metadata, read_metadata, savedmodel_digest
from service.core.runtime import (
    Outputs,
    Predict,
    Runtime,
    RuntimeLoader,
    TensorSpec,
    concatenated,
    finite,
    rows,
    same_bits,
)
from service.errors import ModelOutputError

PROBE_TOLERANCE = 1e-5
INVARIANCE_BATCH_SIZES = (2, 3, 5, 8, 16, 31, 64)
TIMING_ROUNDS = 30  # per runtime compared, each a call of 2 rows and one of every probe


class Accelerator(Protocol):
    """Builds a faster runtime for a loaded version from its files, or raises."""

    engine: str  # what it builds: litert, litert-int8
    by_speed: bool  # used only where it is faster than the runtime it would replace

    def golden(self, metadata: Metadata, /) -> GoldenProbes:
        """The probes its runtime must reproduce; raises SelfCheckFailed where the version does not offer it."""
        ...

    def __call__(self, path: Path, base: Runtime, /) -> Runtime: ...


logger = logging.getLogger(__name__)


class SelfCheckFailed(Exception):
    """The version must not take traffic; the message says why."""


class BatchingMode(str, Enum):
    BATCHED = "batched"  # rows of many requests share one model call
    ISOLATED = "isolated"  # every row computed alone, padded to two rows


@dataclass(frozen=True)
class SelfCheckReport:
    mode: BatchingMode
    probe_max_error: float
    checks: tuple[str, ...]
    seconds: float
    engine: str = ""  # the runtime that passed and serves: tensorflow, litert, litert-int8


class BatchInvariantPredict:
    """`predict`, called so that a row's bits never depend on the batch it is in; non-finite outputs raise."""

    def __init__(self, predict: Predict, mode: BatchingMode, label: str) -> None:
        self._predict = predict
        self.mode = mode
        self._label = label

    def __call__(self, x: np.ndarray) -> Outputs:
        if self.mode is BatchingMode.ISOLATED:
            out = concatenated([self._padded(x[i : i + 1]) for i in range(len(x))])
        elif len(x) == 1:
            out = self._padded(x)
        else:
            out = self._predict(x)
        if not finite(out):
            raise ModelOutputError(f"{self._label} produced non-finite probabilities")
        return out

    def _padded(self, row: np.ndarray) -> Outputs:
        # NOTE: never run the M=1 kernel; a zero row makes it the M=2 kernel every batch uses.
        return rows(self._predict(np.concatenate([row, np.zeros_like(row)])), 0, 1)


def self_check(predict: Predict, probes: GoldenProbes, *, repeats: int, max_rows: int) -> SelfCheckReport:
    """Refuse a model unless it reproduces its golden probes and is batch-invariant; choose its batching mode."""
    started = time.perf_counter()
    inputs = np.asarray(probes.inputs, dtype=np.float32)
    got = predict(inputs)
    if not finite(got):
        raise SelfCheckFailed("the model produced non-finite outputs for its golden probes")
    error = float(np.abs(got[OUTPUT_NAME] - np.asarray(probes.outputs, dtype=np.float32)).max())
    if not error <= PROBE_TOLERANCE:
        raise SelfCheckFailed(
            f"golden probes differ by {error:.2e} (tolerance {PROBE_TOLERANCE:g}): "
            "wrong weights, unfrozen or missing BN statistics, or wrong input scaling"
        )
    checks = [f"golden probes reproduced within {error:.1e}"]
    if probes.confident is not None:
        if CONFIDENT_NAME not in got or got[CONFIDENT_NAME].tolist() != probes.confident:
            raise SelfCheckFailed("the golden probes' confident flags are not the ones the exporter saw")
        checks.append("golden probes' confident flags reproduced")

    invariant = BatchInvariantPredict(predict, BatchingMode.BATCHED, "the model")
    first = invariant(inputs[:1])
    if any(not same_bits(invariant(inputs[:1]), first) for _ in range(repeats - 1)):
        raise SelfCheckFailed(f"a batch of one gave different bits over {repeats} calls")
    checks.append(f"batch of one bit-identical over {repeats} calls")

    problem = _invariance_problem(invariant, inputs, max_rows)
    if problem:
        logger.warning("batch invariance does not hold; serving rows one at a time", extra={"reason": problem})
        invariant.mode = BatchingMode.ISOLATED
        problem = _invariance_problem(invariant, inputs, max_rows)
        if problem:
            raise SelfCheckFailed(f"outputs depend on batching even in isolated mode: {problem}")
    checks.append(f"rows bit-identical alone and in batches of {_sizes(max_rows)} at every position")
    return SelfCheckReport(invariant.mode, error, tuple(checks), time.perf_counter() - started)


@dataclass(frozen=True)
class LoadedModel:
    """A version that passed its self-check, with the predict every request goes through."""

    name: str
    version: int
    metadata: Metadata
    runtime: Runtime
    predict: BatchInvariantPredict
    report: SelfCheckReport

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.runtime.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.runtime.outputs


def load_version(
    name: str,
    version: int,
    path: Path,
    runtimes: Mapping[str, RuntimeLoader],
    *,
    repeats: int,
    max_rows: int,
    accelerators: Sequence[Accelerator] = (),
) -> LoadedModel:
    """Read, verify, load and self-check one version folder, and offer it to the accelerators; raises
    SelfCheckFailed with the reason."""
    try:
        metadata = read_metadata(path)
    except (OSError, ValueError) as e:
        raise SelfCheckFailed(f"metadata.json unreadable: {e}") from e
    digest = savedmodel_digest(path)
    if digest != metadata.savedmodel_sha256:
        raise SelfCheckFailed(f"SavedModel files do not match the SHA-256 in metadata.json ({digest[:12]}…)")
    loader = runtimes.get(metadata.runtime)
    if loader is None:
        raise SelfCheckFailed(f"runtime '{metadata.runtime}' is not one this server has: {', '.join(runtimes)}")
    try:
        runtime = loader(path)
    except Exception as e:
        raise SelfCheckFailed(f"{metadata.runtime} did not load it: {type(e).__name__}: {e}") from e
    report = self_check(runtime.predict, metadata.probes, repeats=repeats, max_rows=max_rows)
    report = replace(report, engine=runtime.engine)
    for accelerator in accelerators:
        runtime, report = _accelerated(path, runtime, report, accelerator, metadata, repeats, max_rows)
    try:
        replayed = runtime.warm_up()
    except Exception as e:
        raise SelfCheckFailed(f"its warm-up requests could not be replayed: {type(e).__name__}: {e}") from e
    if replayed:
        report = replace(report, checks=(*report.checks, f"{replayed} warm-up requests replayed"))
    predict = BatchInvariantPredict(runtime.predict, report.mode, f"model {name} version {version}")
    return LoadedModel(name, version, metadata, runtime, predict, report)


def _accelerated(
    path: Path,
    runtime: Runtime,
    report: SelfCheckReport,
    accelerator: Accelerator,
    metadata: Metadata,
    repeats: int,
    max_rows: int,
) -> tuple[Runtime, SelfCheckReport]:
    """The accelerator's runtime and its report if it passes the self-check batched and is faster; else the
    runtime given, its report noting why not."""
    engine = accelerator.engine
    try:
        probes = accelerator.golden(metadata)
        candidate = accelerator(path, runtime)
        checked = self_check(candidate.predict, probes, repeats=repeats, max_rows=max_rows)
    except Exception as e:  # noqa: BLE001 - a candidate that fails in any way is not used, and says why
        reason = e if isinstance(e, SelfCheckFailed) else f"{type(e).__name__}: {e}"
        return runtime, _noted(report, f"{engine} not used: {reason}")
    if checked.mode is not BatchingMode.BATCHED:
        return runtime, _noted(report, f"{engine} not used: its rows depend on the batch they are in")
    inputs = np.asarray(probes.inputs, dtype=np.float32)
    theirs, ours = _timed(candidate.predict, runtime.predict, inputs=inputs)
    timing = f"{theirs * 1e6:.0f} µs against {runtime.engine}'s {ours * 1e6:.0f} µs per round of the probes"
    if accelerator.by_speed and theirs >= ours:
        return runtime, _noted(report, f"{engine} not used: not faster ({timing})")
    passed = replace(checked, engine=engine, seconds=report.seconds + checked.seconds)
    return candidate, _noted(passed, f"runtime {engine}: every check passed; {timing}")


def _noted(report: SelfCheckReport, note: str) -> SelfCheckReport:
    logger.info("runtime chosen", extra={"note": note})
    return replace(report, checks=(*report.checks, note))


def _timed(*predicts: Predict, inputs: np.ndarray) -> list[float]:
    """Each predict's median seconds for a round, a call of two rows (c=1's batch, padded) and one of every
    probe, the rounds taken in turn so that a noisy moment costs them all alike."""
    rounds: list[list[float]] = [[] for _ in predicts]
    for _ in range(TIMING_ROUNDS):
        for predict, taken in zip(predicts, rounds, strict=True):
            started = time.perf_counter()
            predict(inputs[:2])
            predict(inputs)
            taken.append(time.perf_counter() - started)
    return [statistics.median(taken) for taken in rounds]


def _invariance_problem(predict: BatchInvariantPredict, probes: np.ndarray, max_rows: int) -> str | None:
    reference = concatenated([predict(probes[i : i + 1]) for i in range(len(probes))])
    rng = np.random.default_rng(0)
    for size in _sizes(max_rows):
        for _ in range(2):
            picked = rng.integers(0, len(probes), size=size)
            expected = {name: array[picked] for name, array in reference.items()}
            if not same_bits(predict(probes[picked]), expected):
                return f"a batch of {size} changed some row's bits"
    return None


def _sizes(max_rows: int) -> list[int]:
    return sorted({s for s in INVARIANCE_BATCH_SIZES if s <= max_rows} | {max_rows})
