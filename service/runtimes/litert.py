"""LiteRT (TensorFlow Lite, with its XNNPACK CPU kernels): a version's SavedModel computed without
TensorFlow's per-call overhead, with its own weights (fp32) or with int8 weights.

The SavedModel stays the artifact and the source of truth. At load, its request signature
(`with_confidence` where the version has it, else `serving_default`) is converted in memory with
TensorFlow's own `TFLiteConverter` (`contract.litert`), and the result is one more candidate runtime for
the version: it serves only if it passes the same self-checks as the SavedModel (`service.core.model`)
and, where chosen by speed, is faster on the version's own probes. fp32 must reproduce the SavedModel's
golden outputs; int8 is offered only where the version's export gate passed (`metadata.int8_weights`),
and must reproduce the int8 golden outputs the export recorded. Explanations (integrated gradients,
which need gradients) and the warm-up requests for them stay on the SavedModel.

NOTE: `ai_edge_litert` is imported by the first conversion, so that a server without the package, or
on a platform without its wheel, still serves every version on its SavedModel.
"""

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract import GoldenProbes, Metadata, ServeAll
from contract.litert import Precision, convert, request_signature, runner
from service.core.model import SelfCheckFailed
from service.core.runtime import Outputs, Predict, TensorSpec
from service.runtimes.tensorflow import SavedModelRuntime, cpp_lines_to_log, replay_warmup

ENGINES: dict[Precision, str] = {"fp32": "litert", "int8": "litert-int8"}


@dataclass(frozen=True)
class LiteRtRuntime:
    base: SavedModelRuntime  # explanations, and what this runtime must reproduce
    runner: ServeAll  # not thread-safe, hence the lock
    engine: str
    lock: threading.Lock = field(default_factory=threading.Lock)

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
            found = self.runner(x)
        return {spec.name: found[spec.name] for spec in self.outputs}

    def warm_up(self) -> int:
        return replay_warmup(self.base.warmup, self.predict, self.base.explain)


class LiteRtConverter:
    """An accelerator for SavedModel versions (`service.core.model.Accelerator`) at one weight precision: with
    `by_speed`, used only where it is faster."""

    def __init__(self, *, threads: int, by_speed: bool = True, precision: Precision = "fp32") -> None:
        self._threads = max(threads, 1)
        self.by_speed = by_speed
        self.precision: Precision = precision
        self.engine = ENGINES[precision]

    def golden(self, metadata: Metadata) -> GoldenProbes:
        if self.precision == "fp32":
            return metadata.probes
        gated = metadata.int8_weights
        if gated is None:
            raise SelfCheckFailed("its export measured no int8 weights (mnist-train quantize measures them)")
        if not gated.passed:
            raise SelfCheckFailed(f"its int8 weights failed the export's gate ({gated.gate}): {gated.figures}")
        return gated.probes(metadata.probes.inputs)

    def __call__(self, path: Path, base: Any) -> LiteRtRuntime:
        if isinstance(base, LiteRtRuntime):  # offered after LiteRT at another precision won
            base = base.base
        if not isinstance(base, SavedModelRuntime):
            raise TypeError(f"LiteRT converts SavedModels, not a {type(base).__name__}")
        signature = request_signature(base.signatures)
        with cpp_lines_to_log():  # the converter's and the interpreter's C++ notices, as JSON log lines
            converted = convert(path, signature, self.precision)
            run = runner(converted, signature, threads=self._threads, outputs=[spec.name for spec in base.outputs])
        return LiteRtRuntime(base, run, self.engine)
