"""int8 weights, gated at export: the version's request signature converted to LiteRT with int8 weights
(`contract.litert`), measured against the SavedModel on the validation digits, and recorded in
`metadata.json` with its own golden outputs whether it passed or not.

The gate is the issue's: validation accuracy down by at most GATE_ACCURACY_POINTS, and at most
GATE_CHANGED_SHARE of the validation answers changed. It is taken on validation digits, never on the test
digits, which stay for reporting (`python -m bench.runtimes` reports int8 on them).
"""

import math
from pathlib import Path

import numpy as np

from contract import CONFIDENT_NAME, OUTPUT_NAME, Int8Weights, ServeAll
from contract.litert import convert, runner
from training.data import Digits

GATE_ACCURACY_POINTS = 0.05
GATE_CHANGED_SHARE = 0.001
SCHEME = "int8 weights, float activations (LiteRT dynamic range quantization, XNNPACK)"
GATE = (
    f"validation accuracy down by at most {GATE_ACCURACY_POINTS} points, "
    f"and at most {GATE_CHANGED_SHARE:.1%} of validation answers changed, against the SavedModel"
)


def measure_int8(
    savedmodel: Path, signature: str, exported: ServeAll, validation: Digits, probes: np.ndarray
) -> Int8Weights:
    """Convert `signature` of the SavedModel in `savedmodel` with int8 weights, and hold it to the gate against
    `exported`, the same signature on TensorFlow."""
    int8 = runner(convert(savedmodel, signature, "int8"), signature, threads=1)
    theirs, ours = int8(validation.x), exported(validation.x)
    figures = {
        "validation_digits": float(len(validation)),
        "validation_accuracy": _accuracy(ours, validation.y),
        "validation_accuracy_int8": _accuracy(theirs, validation.y),
        "answers_changed": float((theirs[OUTPUT_NAME].argmax(1) != ours[OUTPUT_NAME].argmax(1)).sum()),
        "max_probability_difference": float(np.abs(theirs[OUTPUT_NAME] - ours[OUTPUT_NAME]).max()),
    }
    if CONFIDENT_NAME in ours:
        figures |= {
            "coverage": float(ours[CONFIDENT_NAME].mean()),
            "coverage_int8": float(theirs[CONFIDENT_NAME].mean()),
            "accuracy_when_confident": _accuracy(ours, validation.y, ours[CONFIDENT_NAME]),
            "accuracy_when_confident_int8": _accuracy(theirs, validation.y, theirs[CONFIDENT_NAME]),
        }
    figures = {name: value for name, value in figures.items() if not math.isnan(value)}  # none confident
    passed = figures["validation_accuracy"] - figures[
        "validation_accuracy_int8"
    ] <= GATE_ACCURACY_POINTS / 100 and figures["answers_changed"] <= GATE_CHANGED_SHARE * len(validation)
    golden = int8(probes)
    confident = golden[CONFIDENT_NAME].tolist() if CONFIDENT_NAME in golden else None
    return Int8Weights(
        scheme=SCHEME,
        gate=GATE,
        passed=passed,
        figures=figures,
        outputs=golden[OUTPUT_NAME].tolist(),
        confident=confident,
    )


def _accuracy(outputs: dict[str, np.ndarray], labels: np.ndarray, among: np.ndarray | None = None) -> float:
    right = outputs[OUTPUT_NAME].argmax(1) == labels
    if among is not None:
        right = right[among]
    return float(right.mean()) if right.size else float("nan")
