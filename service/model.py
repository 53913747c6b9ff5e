"""One loaded model version: its SavedModel, its batch-invariant predict, and its load-time self-check.

Batch invariance: on CPU, TensorFlow computes a batch of one row through a different matmul kernel
from a batch of two or more, and the bits differ (about 1e-7), while the rows of any batch of two
or more agree bit for bit. So `predict` never runs a batch of one: it pads it to two rows. The
self-check proves at load that a row's output is the same bits alone, repeated, and at any position
of batches of many sizes; where that fails on some machine, the model falls back to "isolated" mode,
where every row is computed in its own padded pair, and says so.
"""

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import tensorflow as tf

from contract import (
    IMAGE_PIXELS,
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    SIGNATURE_KEY,
    Metadata,
    read_metadata,
    savedmodel_digest,
)
from service.errors import ModelOutputError

PROBE_TOLERANCE = 1e-5
INVARIANCE_BATCH_SIZES = (2, 3, 5, 8, 16, 31, 64)

logger = logging.getLogger(__name__)


class SelfCheckFailed(Exception):
    """The version must not take traffic; the message says why."""


class BatchingMode(StrEnum):
    BATCHED = "batched"  # rows of many requests share one model call
    ISOLATED = "isolated"  # every row computed alone, padded to two rows


@dataclass
class SelfCheckReport:
    mode: BatchingMode
    probe_max_error: float
    checks: list[str] = field(default_factory=list)
    seconds: float = 0.0


class LoadedModel:
    """A SavedModel version loaded in inference mode. Thread-safe: TensorFlow calls may overlap."""

    def __init__(self, name: str, version: int, path: Path, metadata: Metadata, loaded: object) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.metadata = metadata
        self.mode = BatchingMode.BATCHED
        self._loaded = loaded  # keeps the variables alive
        self._signature = loaded.signatures[SIGNATURE_KEY]  # type: ignore[attr-defined]

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> "LoadedModel":
        """Load and validate one version; raises SelfCheckFailed with the reason."""
        try:
            metadata = read_metadata(path)
        except (OSError, ValueError) as e:
            raise SelfCheckFailed(f"metadata.json unreadable: {e}") from e
        digest = savedmodel_digest(path)
        if digest != metadata.savedmodel_sha256:
            raise SelfCheckFailed(f"SavedModel files do not match the SHA-256 in metadata.json ({digest[:12]}…)")
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:
            raise SelfCheckFailed(f"SavedModel did not load: {type(e).__name__}: {e}") from e
        signature = loaded.signatures.get(SIGNATURE_KEY)
        if signature is None:
            raise SelfCheckFailed(f"SavedModel has no '{SIGNATURE_KEY}' signature")
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        if INPUT_NAME not in inputs or list(inputs[INPUT_NAME].shape) != [None, IMAGE_PIXELS]:
            raise SelfCheckFailed(f"signature must take '{INPUT_NAME}' float32 [None, {IMAGE_PIXELS}]")
        if OUTPUT_NAME not in outputs or list(outputs[OUTPUT_NAME].shape) != [None, NUM_CLASSES]:
            raise SelfCheckFailed(f"signature must return '{OUTPUT_NAME}' float32 [None, {NUM_CLASSES}]")
        return cls(name, version, path, metadata, loaded)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for float32 `[N, 784]` pixels; a row's bits never depend on its batch."""
        if self.mode is BatchingMode.ISOLATED:
            return np.concatenate([self._call_padded(x[i : i + 1]) for i in range(len(x))])
        if len(x) == 1:
            return self._call_padded(x)
        return self._call(x)

    def self_check(self, *, repeats: int, max_rows: int) -> SelfCheckReport:
        """Refuse the version unless it reproduces its golden probes and is batch-invariant."""
        started = time.perf_counter()
        probes = np.asarray(self.metadata.probes.inputs, dtype=np.float32)
        expected = np.asarray(self.metadata.probes.outputs, dtype=np.float32)
        got = self._call(probes)
        error = float(np.abs(got - expected).max()) if np.isfinite(got).all() else float("inf")
        if not error <= PROBE_TOLERANCE:
            raise SelfCheckFailed(
                f"golden probes differ by {error:.2e} (tolerance {PROBE_TOLERANCE:g}): "
                "wrong weights, unfrozen or missing BN statistics, or wrong input scaling"
            )
        checks = [f"golden probes reproduced within {error:.1e}"]

        first = self.predict(probes[:1])
        if any(not np.array_equal(self.predict(probes[:1]), first) for _ in range(repeats - 1)):
            raise SelfCheckFailed(f"a batch of one gave different bits over {repeats} calls")
        checks.append(f"batch of one bit-identical over {repeats} calls")

        problem = self._invariance_problem(probes, max_rows)
        if problem:
            logger.warning(
                "batch invariance does not hold; serving rows one at a time",
                extra={"model": self.name, "version": self.version, "reason": problem},
            )
            self.mode = BatchingMode.ISOLATED
            problem = self._invariance_problem(probes, max_rows)
            if problem:
                raise SelfCheckFailed(f"outputs depend on batching even in isolated mode: {problem}")
        checks.append(f"rows bit-identical alone and in batches of {_sizes(max_rows)} at every position")
        return SelfCheckReport(self.mode, error, checks, time.perf_counter() - started)

    def _invariance_problem(self, probes: np.ndarray, max_rows: int) -> str | None:
        reference = np.concatenate([self.predict(probes[i : i + 1]) for i in range(len(probes))])
        rng = np.random.default_rng(0)
        for size in _sizes(max_rows):
            for _ in range(2):
                rows = rng.integers(0, len(probes), size=size)
                if not np.array_equal(self.predict(probes[rows]), reference[rows]):
                    return f"a batch of {size} changed some row's bits"
        return None

    def _call(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._signature(**{INPUT_NAME: tf.constant(x)})[OUTPUT_NAME].numpy()
        if not np.isfinite(out).all():
            raise ModelOutputError(f"model {self.name} version {self.version} produced non-finite probabilities")
        return out

    def _call_padded(self, row: np.ndarray) -> np.ndarray:
        # NOTE: never run the M=1 kernel; a zero row makes it the M=2 kernel every batch uses.
        return self._call(np.concatenate([row, np.zeros_like(row)]))[:1]


def _sizes(max_rows: int) -> list[int]:
    return sorted({s for s in INVARIANCE_BATCH_SIZES if s <= max_rows} | {max_rows})
