"""The runtime seam: what the server needs from a model, whichever framework computes it.

A version's `metadata.json` names its runtime; the server holds a table of runtime loaders by name
(`service.runtimes.default_runtimes`) and refuses a version whose runtime it does not have.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

Outputs = dict[str, np.ndarray]  # a model call's outputs by name, each with one row per input row
Predict = Callable[[np.ndarray], Outputs]
FP32, BOOL, INT64 = "FP32", "BOOL", "INT64"  # tensor datatypes go by the Open Inference Protocol's names
DATATYPES = {np.dtype(np.float32): FP32, np.dtype(np.bool_): BOOL, np.dtype(np.int64): INT64}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # e.g. FP32
    shape: tuple[int, ...]  # -1 where any size goes


class Runtime(Protocol):
    """One loaded model version. `predict` maps float32 `[N, 784]` to its outputs for any N >= 1: always
    `probabilities` float32 `[N, 10]`, and whatever else `outputs` lists (`confident`, ...). `explain`,
    where the version has one, maps pixels to their explanation. Both may be called from any thread."""

    @property
    def platform(self) -> str:
        """The version's format, as TF Serving and the v2 protocol name it (`tensorflow_savedmodel`)."""
        ...

    @property
    def engine(self) -> str:
        """What computes it: `tensorflow`, `litert`."""
        ...

    @property
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    def predict(self, x: np.ndarray) -> Outputs: ...

    @property
    def explain(self) -> Predict | None: ...

    @property
    def explain_outputs(self) -> tuple[TensorSpec, ...]: ...

    def warm_up(self) -> int:
        """Replay the warm-up requests that the version's files carry, if any; return how many. Raises
        if one cannot be replayed."""
        ...


RuntimeLoader = Callable[[Path], Runtime]


def rows(outputs: Outputs, start: int, stop: int) -> Outputs:
    return {name: array[start:stop] for name, array in outputs.items()}


def concatenated(parts: Sequence[Outputs]) -> Outputs:
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def same_bits(a: Outputs, b: Outputs) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[name], b[name]) for name in a)


def finite(outputs: Outputs) -> bool:
    return all(np.isfinite(array).all() for array in outputs.values() if array.dtype.kind == "f")
