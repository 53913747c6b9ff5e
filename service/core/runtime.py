"""The runtime seam: what the server needs from a model, whichever framework computes it.

A version's `metadata.json` names its runtime; the server holds a table of runtime loaders by name
(`service.runtimes.default_runtimes`) and refuses a version whose runtime it does not have.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]
FP32 = "FP32"  # tensor datatypes go by the Open Inference Protocol's names


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # e.g. FP32
    shape: tuple[int, ...]  # -1 where any size goes


class Runtime(Protocol):
    """One loaded model version. `predict` maps float32 `[N, 784]` to float32 `[N, 10]` for any N >= 1, and may
    be called from any thread."""

    @property
    def platform(self) -> str: ...

    @property
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


RuntimeLoader = Callable[[Path], Runtime]
