"""LiteRT (TensorFlow Lite, with its XNNPACK CPU kernels): the same weights as a version's SavedModel,
computed without TensorFlow's per-call overhead.

The SavedModel stays the artifact and the source of truth. At load, its request signature
(`with_confidence` where the version has it, else `serving_default`) is converted in memory with
TensorFlow's own `TFLiteConverter`, and the result is one more candidate runtime for the version:
it serves only if it passes the same self-checks as the SavedModel (`service.core.model`) and is
faster on the version's own probes. Explanations (integrated gradients, which need gradients) and
the warm-up requests for them stay on the SavedModel.

NOTE: `ai_edge_litert` is imported by the first conversion, so that a server without the package, or
on a platform without its wheel, still serves every version on its SavedModel.
"""

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract import CONFIDENCE_SIGNATURE, IMAGE_PIXELS, INPUT_NAME, SIGNATURE_KEY
from service.core.runtime import Outputs, Predict, TensorSpec
from service.runtimes.tensorflow import SavedModelRuntime, cpp_lines_to_log, replay_warmup

ENGINE = "litert"


@dataclass(frozen=True)
class LiteRtRuntime:
    base: SavedModelRuntime  # explanations, and what this runtime must reproduce
    runner: Any  # the interpreter's signature runner; not thread-safe, hence the lock
    lock: threading.Lock = field(default_factory=threading.Lock)
    engine: str = ENGINE

    @property
    def platform(self) -> str:
        return self.base.platform

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.base.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.base.outputs

    @property
    def explain(self) -> Predict | None:
        return self.base.explain

    @property
    def explain_outputs(self) -> tuple[TensorSpec, ...]:
        return self.base.explain_outputs

    def predict(self, x: np.ndarray) -> Outputs:
        with self.lock:
            found = self.runner(**{INPUT_NAME: np.ascontiguousarray(x, np.float32)})
        return {spec.name: found[spec.name] for spec in self.outputs}  # copies: the runner reuses its buffers

    def warm_up(self) -> int:
        return replay_warmup(self.base.warmup, self.predict, self.base.explain)


class LiteRtConverter:
    """An accelerator for SavedModel versions (`service.core.model.Accelerator`): with `by_speed`, only
    where it is faster."""

    engine = ENGINE

    def __init__(self, *, threads: int, by_speed: bool = True) -> None:
        self._threads = max(threads, 1)
        self.by_speed = by_speed

    def __call__(self, path: Path, base: Any) -> LiteRtRuntime:
        if not isinstance(base, SavedModelRuntime):
            raise TypeError(f"LiteRT converts SavedModels, not a {type(base).__name__}")
        import tensorflow as tf
        from ai_edge_litert.interpreter import Interpreter

        key = CONFIDENCE_SIGNATURE if CONFIDENCE_SIGNATURE in base.signatures else SIGNATURE_KEY
        with cpp_lines_to_log():  # the converter's and the interpreter's C++ notices, as JSON log lines
            flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[key]).convert()
            interpreter = Interpreter(model_content=flatbuffer, num_threads=self._threads)
            runner = interpreter.get_signature_runner(key)
            runner(**{INPUT_NAME: np.zeros((2, IMAGE_PIXELS), np.float32)})  # XNNPACK is set up at the first call
        missing = {spec.name for spec in base.outputs} - set(runner.get_output_details())
        if missing:
            raise ValueError(f"the converted model lacks the outputs {sorted(missing)}")
        return LiteRtRuntime(base, runner)
