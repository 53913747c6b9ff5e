"""The LiteRT half of the contract: a version's request signature converted from its SavedModel to a LiteRT
flatbuffer at a weight precision, and run as numpy in, numpy out.

`training` converts through here to measure int8 weights against the SavedModel at export, and records what
it measured with the int8 runtime's own golden outputs (`Int8Weights`); the service's LiteRT runtimes
convert through here at load. So the weights the export gated are the weights that serve, and a server
whose converter makes other weights fails their golden probes and serves without them. TensorFlow and
`ai_edge_litert` are imported only on use.
"""

from collections.abc import Collection
from pathlib import Path
from typing import Literal

import numpy as np

from contract.metadata import CONFIDENCE_SIGNATURE, IMAGE_PIXELS, INPUT_NAME, SIGNATURE_KEY
from contract.signature import ServeAll

Precision = Literal["fp32", "int8"]


def request_signature(signatures: Collection[str]) -> str:
    """The signature requests go through: `with_confidence` where the version has it."""
    return CONFIDENCE_SIGNATURE if CONFIDENCE_SIGNATURE in signatures else SIGNATURE_KEY


def convert(savedmodel: Path, signature: str, precision: Precision) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=[signature])
    if precision == "int8":
        # NOTE: dynamic range: int8 weights, and each row's activations quantized on their own at run time,
        # so that a row's answer does not depend on the batch it is in (the self-check holds it to that).
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return bytes(converter.convert())


def runner(flatbuffer: bytes, signature: str, *, threads: int, outputs: Collection[str] = ()) -> ServeAll:
    """The signature as a call; not thread-safe, as the interpreter it runs is not. ValueError if it lacks any
    of `outputs`."""
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_content=flatbuffer, num_threads=max(threads, 1)).get_signature_runner(signature)

    def call(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(run(**{INPUT_NAME: np.ascontiguousarray(x, np.float32)}))

    missing = set(outputs) - set(call(np.zeros((2, IMAGE_PIXELS), np.float32)))  # XNNPACK sets up at the first call
    if missing:
        raise ValueError(f"the converted model lacks the outputs {sorted(missing)}")
    return call
