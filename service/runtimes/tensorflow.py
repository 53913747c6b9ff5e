"""TensorFlow SavedModels with the contract's `serving_default` signature, warmed up by the requests of
TF Serving's warm-up file where the SavedModel has one (`service.grpc.warmup`).

TensorFlow is imported by the first load, not before. Its C++ start-up lines (oneDNN notices, CPU
features, and with the full wheel on a machine without a GPU a CUDA probe that "fails") are written
straight to file descriptor 2 before its own logging starts; the import captures them and passes
them on as JSON log lines at their own level (`contract.tensorflow_log`), so that `MNIST_TF_LOG_LEVEL`
filters them.
"""

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contract import (
    CONFIDENCE_SIGNATURE,
    CONFIDENT_NAME,
    EXPLAIN_SIGNATURE,
    IMAGE_PIXELS,
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    SIGNATURE_KEY,
    TENSORFLOW_RUNTIME,
    SavedModel,
    SignatureError,
    load_savedmodel,
    output_specs,
    serving_function,
    signature_function,
)
from contract.tensorflow_log import records
from service.core.runtime import DATATYPES, FP32, Predict, TensorSpec

if TYPE_CHECKING:
    from service.grpc.warmup import WarmupRequest

PLATFORM = TENSORFLOW_RUNTIME
_CPP_MIN_LOG_LEVEL = {"debug": "0", "info": "0", "warning": "1", "error": "2"}

logger = logging.getLogger(__name__)
cpp_logger = logging.getLogger(f"{__name__}.cpp")


@dataclass(frozen=True)
class SavedModelRuntime:
    """Requests go through the confidence signature where the version has one (its probabilities are the
    same computation as `serving_default`'s), else through `serving_default`."""

    saved: SavedModel  # holds the variables the signatures read
    predict: Predict
    outputs: tuple[TensorSpec, ...]
    explain: Predict | None = None
    explain_outputs: tuple[TensorSpec, ...] = ()
    platform: str = PLATFORM
    engine: str = "tensorflow"
    inputs: tuple[TensorSpec, ...] = (TensorSpec(INPUT_NAME, FP32, (-1, IMAGE_PIXELS)),)
    warmup: tuple["WarmupRequest", ...] = ()  # read at load

    @property
    def signatures(self) -> tuple[str, ...]:
        with_confidence = any(spec.name == CONFIDENT_NAME for spec in self.outputs)
        return (SIGNATURE_KEY,) + (CONFIDENCE_SIGNATURE,) * with_confidence + (EXPLAIN_SIGNATURE,) * bool(self.explain)

    def warm_up(self) -> int:
        return replay_warmup(self.warmup, self.predict, self.explain)


def replay_warmup(requests: tuple["WarmupRequest", ...], predict: Predict, explain: Predict | None) -> int:
    """Each warm-up request through `explain` or `predict`, as its signature says; how many."""
    for request in requests:
        call = explain if request.signature == EXPLAIN_SIGNATURE else predict
        assert call is not None  # read_warmup admits only the signatures this version has
        call(request.x)
    return len(requests)


def _runtime(saved: SavedModel) -> SavedModelRuntime:
    probabilities = serving_function(saved)  # refuses a SavedModel without the contract's signature
    with_confidence = signature_function(saved, CONFIDENCE_SIGNATURE)
    if with_confidence is None:
        only = (TensorSpec(OUTPUT_NAME, FP32, (-1, NUM_CLASSES)),)
        return SavedModelRuntime(saved, lambda x: {OUTPUT_NAME: probabilities(x)}, only)
    if not {OUTPUT_NAME, CONFIDENT_NAME} <= set(output_specs(saved, CONFIDENCE_SIGNATURE)):
        raise SignatureError(f"signature '{CONFIDENCE_SIGNATURE}' must return '{OUTPUT_NAME}' and '{CONFIDENT_NAME}'")
    explain = signature_function(saved, EXPLAIN_SIGNATURE)
    explained = _specs(saved, EXPLAIN_SIGNATURE) if explain is not None else ()
    return SavedModelRuntime(saved, with_confidence, _specs(saved, CONFIDENCE_SIGNATURE), explain, explained)


def _specs(saved: SavedModel, key: str) -> tuple[TensorSpec, ...]:
    """The signature's outputs, the probabilities first and then by name: a SignatureDef keeps them in a
    protobuf map, whose order is not the same from one load to the next."""
    found = output_specs(saved, key)
    names = sorted(found, key=lambda name: (name != OUTPUT_NAME, name))
    return tuple(TensorSpec(name, DATATYPES[np.dtype(found[name][0])], found[name][1]) for name in names)


class SavedModelLoader:
    """A `RuntimeLoader`; the first call imports and configures TensorFlow."""

    def __init__(self, *, intra_op_threads: int, inter_op_threads: int, log_level: str) -> None:
        self._intra_op_threads = intra_op_threads
        self._inter_op_threads = inter_op_threads
        self._log_level = log_level
        self._prepared = False
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> SavedModelRuntime:
        self._prepare()
        from service.grpc.warmup import read_warmup  # its protos import TensorFlow's

        runtime = _runtime(load_savedmodel(path))
        return replace(runtime, warmup=read_warmup(path, signatures=runtime.signatures))

    def _prepare(self) -> None:
        with self._lock:
            if self._prepared:
                return
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = _CPP_MIN_LOG_LEVEL[self._log_level]
            cpp_logger.setLevel(self._log_level.upper())
            with cpp_lines_to_log():
                import tensorflow as tf

                try:
                    tf.config.threading.set_intra_op_parallelism_threads(self._intra_op_threads)
                    tf.config.threading.set_inter_op_parallelism_threads(self._inter_op_threads)
                except RuntimeError:
                    logger.warning("TensorFlow was already initialised in this process; its thread settings stand")
                tf.constant(0)  # devices are probed, and log, at first use, not at import
            self._prepared = True


@contextmanager
def cpp_lines_to_log() -> Iterator[None]:
    """Capture what is written to file descriptor 2 meanwhile; log TensorFlow's lines, pass the rest on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _replay(capture.read().decode(errors="replace"))


def _replay(text: str) -> None:
    for level, message in records(text.splitlines()):
        if level is None:  # not TensorFlow's: someone else's output, unchanged
            sys.stderr.write(message + "\n")
        else:
            cpp_logger.log(level, message)
