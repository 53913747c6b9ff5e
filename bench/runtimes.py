"""`python -m bench.runtimes`: the default version's serving signature on every runtime and weight precision
tried, against the SavedModel: speed, and how far the answers move.

For each candidate: the median µs of one call (one thread, as the server runs it) at 2, 16 and 64 rows;
the largest probability difference and the argmax changes on the official test digits; the validation
accuracy's change (the version's own validation split, seed from its metadata); whether the first two
rows come out the same alone as in a batch of 64 (the self-check's batch invariance, in brief). The
issue's gate for lower-precision weights, here on the test digits as reported: validation accuracy down
by at most 0.05 points and at most 0.1% of the test digits' argmax changed (the export gates int8 on
validation digits alone, `training.quantize`). A candidate that cannot be built says why.

ONNX Runtime is tried when `tf2onnx` and `onnxruntime` import (they are not project dependencies:
`pip install --target DIR tf2onnx onnx onnxruntime --no-deps` and PYTHONPATH=DIR).
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import contract
from bench.lineup import MODEL
from contract import OUTPUT_NAME, SIGNATURE_KEY
from contract.litert import convert, runner
from training.data import Digits, load_splits

Call = Callable[[np.ndarray], np.ndarray]  # float32 [N, 784] pixels -> float32 [N, 10] probabilities
ROWS = (2, 16, 64)
GATE_VALIDATION_POINTS, GATE_ARGMAX_SHARE = 0.05, 0.001


@dataclass(frozen=True)
class Candidate:
    name: str
    call: Call | None
    why_not: str = ""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runtimes", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mnist", help="MNIST as mnist-train reads it")
    parser.add_argument("--model", type=Path, default=MODEL, help="a version folder (default: the newest)")
    args = parser.parse_args()
    metadata = contract.read_metadata(args.model)
    splits = load_splits(args.data, seed=metadata.dataset.split_seed)
    with tempfile.TemporaryDirectory() as tmp:
        candidates = _candidates(args.model, Path(tmp))
        base = candidates[0].call
        assert base is not None
        reference = {"test": base(splits.test.x), "validation": base(splits.validation.x)}
        print(f"{args.model}: official test digits {len(splits.test):,}, validation {len(splits.validation):,}")
        print("| runtime | µs at 2 rows | at 16 | at 64 | max prob. difference | argmax changed (test) "
              "| validation accuracy change | rows as in a batch of 64 | gate |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for candidate in candidates:
            if candidate.call is None:
                print(f"| {candidate.name} | could not be built: {candidate.why_not} | | | | | | | |")
                continue
            print(_row(candidate.name, candidate.call, reference, splits.test.x, splits.validation))
    return 0


def _row(name: str, call: Call, reference: dict[str, np.ndarray], test: np.ndarray, validation: Digits) -> str:
    speeds = [_median_us(call, test[:rows]) for rows in ROWS]
    test_out = call(test)
    difference = float(np.abs(test_out - reference["test"]).max())
    changed = int((test_out.argmax(1) != reference["test"].argmax(1)).sum())
    right = validation.y
    points = 100 * float(
        (call(validation.x).argmax(1) == right).mean() - (reference["validation"].argmax(1) == right).mean()
    )
    passes = points >= -GATE_VALIDATION_POINTS and changed <= GATE_ARGMAX_SHARE * len(test)
    invariant = np.array_equal(call(test[:2]), call(test[:64])[:2])  # the self-check's promise, in brief
    cells = [f"{s:,.0f}" for s in speeds] + [f"{difference:.1e}", f"{changed}", f"{points:+.2f} points"]
    cells.append("yes" if invariant else "**no**")
    return f"| {name} | " + " | ".join(cells) + f" | {'passes' if passes else 'fails'} |"


def _median_us(call: Call, x: np.ndarray, n: int = 400) -> float:
    call(x)
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        call(x)
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1000


def _candidates(model: Path, tmp: Path) -> list[Candidate]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    signature = tf.saved_model.load(str(model)).signatures["serving_default"]

    def saved(x: np.ndarray) -> np.ndarray:
        return signature(pixels=tf.constant(x))["probabilities"].numpy()

    return [
        Candidate("SavedModel (TensorFlow)", saved),
        _litert("LiteRT fp32 (served as litert)", lambda: convert(model, SIGNATURE_KEY, "fp32")),
        _litert("LiteRT, fp16 weights", lambda: _fp16(model, tf)),
        _litert(
            "LiteRT, int8 weights, float activations (served as litert-int8 where the export's gate passed)",
            lambda: convert(model, SIGNATURE_KEY, "int8"),
        ),
        *_onnx(model, tmp),
    ]


def _fp16(model: Path, tf: Any) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(model), signature_keys=[SIGNATURE_KEY])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return bytes(converter.convert())


def _litert(name: str, flatbuffer: Callable[[], bytes]) -> Candidate:
    try:
        call = runner(flatbuffer(), SIGNATURE_KEY, threads=1)
    except Exception as e:  # noqa: BLE001 - a candidate that cannot be built is a row that says why
        return Candidate(name, None, f"{type(e).__name__}: {e}"[:200])
    return Candidate(name, lambda x: call(x)[OUTPUT_NAME])


def _onnx(model: Path, tmp: Path) -> list[Candidate]:
    """ONNX Runtime on the tf2onnx conversion, fp32 and with int8 weights (its dynamic quantization)."""
    names = "ONNX Runtime fp32 (tf2onnx)", "ONNX Runtime, int8 weights (quantize_dynamic)"
    try:
        import onnxruntime
        import tf2onnx.convert
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        return [Candidate(name, None, f"not installed here ({e.name})") for name in names]
    fp32, int8 = tmp / "model.onnx", tmp / "model.int8.onnx"
    sys.argv = ["tf2onnx", "--saved-model", str(model), "--signature_def", SIGNATURE_KEY, "--output", str(fp32)]
    steps = [lambda: tf2onnx.convert.main(), lambda: quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)]
    candidates = []
    for name, path, step in zip(names, (fp32, int8), steps, strict=True):
        try:
            step()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - a candidate that cannot be built is a row that says why
            candidates.append(Candidate(name, None, f"{type(e).__name__}: {e}"[:200]))
            continue
        candidates.append(Candidate(name, _onnx_call(session)))
    return candidates


def _onnx_call(session: Any) -> Call:
    (input_name,) = (i.name for i in session.get_inputs())
    index = [o.name for o in session.get_outputs()].index(OUTPUT_NAME)
    return lambda x: session.run(None, {input_name: x})[index]


if __name__ == "__main__":
    sys.exit(main())
