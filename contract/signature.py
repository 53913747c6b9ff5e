"""The SavedModel half of the contract: its serving signature, loaded as a numpy-in, numpy-out call.

`training` loads SavedModels through here to verify an export, and the service's TensorFlow runtime
to serve one, so both hold a model to the same signature. TensorFlow is imported only on load.
"""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from contract.metadata import IMAGE_PIXELS, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, SIGNATURE_KEY

Serve = Callable[[np.ndarray], np.ndarray]
ServeAll = Callable[[np.ndarray], dict[str, np.ndarray]]  # every output of a signature, by name


class SignatureError(ValueError):
    """The SavedModel does not have the signature the contract promises."""


class _Spec(Protocol):
    @property
    def shape(self) -> Any: ...

    @property
    def dtype(self) -> Any: ...


class ConcreteSignature(Protocol):
    @property
    def structured_input_signature(self) -> tuple[tuple[Any, ...], Mapping[str, _Spec]]: ...

    @property
    def structured_outputs(self) -> Mapping[str, _Spec]: ...

    def __call__(self, **inputs: Any) -> Mapping[str, Any]: ...


class Variable(Protocol):
    @property
    def name(self) -> str: ...

    def numpy(self) -> np.ndarray: ...


class SavedModel(Protocol):
    """What `tf.saved_model.load` returns, as far as this project uses it."""

    @property
    def signatures(self) -> Mapping[str, ConcreteSignature]: ...

    @property
    def variables(self) -> Sequence[Variable]: ...


def load_savedmodel(directory: Path) -> SavedModel:
    import tensorflow as tf

    saved: SavedModel = tf.saved_model.load(str(directory))
    return saved


def serving_function(saved: SavedModel) -> Serve:
    """The `serving_default` signature as a call on float32 `[N, 784]`; raises SignatureError if the
    signature is not `pixels [None, 784]` to `probabilities [None, 10]`."""
    import tensorflow as tf

    signature = saved.signatures.get(SIGNATURE_KEY)
    if signature is None:
        raise SignatureError(f"SavedModel has no '{SIGNATURE_KEY}' signature")
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if INPUT_NAME not in inputs or list(inputs[INPUT_NAME].shape) != [None, IMAGE_PIXELS]:
        raise SignatureError(f"signature must take '{INPUT_NAME}' float32 [None, {IMAGE_PIXELS}]")
    if OUTPUT_NAME not in outputs or list(outputs[OUTPUT_NAME].shape) != [None, NUM_CLASSES]:
        raise SignatureError(f"signature must return '{OUTPUT_NAME}' float32 [None, {NUM_CLASSES}]")

    def serve(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = signature(**{INPUT_NAME: tf.constant(x, tf.float32)})[OUTPUT_NAME].numpy()
        return out

    return serve


def signature_function(saved: SavedModel, key: str) -> ServeAll | None:
    """Signature `key`, if the SavedModel has it, as a call on float32 `[N, 784]` that returns every output as
    numpy; raises SignatureError if it does not take the contract's pixels."""
    import tensorflow as tf

    signature = saved.signatures.get(key)
    if signature is None:
        return None
    inputs = signature.structured_input_signature[1]
    if INPUT_NAME not in inputs or list(inputs[INPUT_NAME].shape) != [None, IMAGE_PIXELS]:
        raise SignatureError(f"signature '{key}' must take '{INPUT_NAME}' float32 [None, {IMAGE_PIXELS}]")

    def serve(x: np.ndarray) -> dict[str, np.ndarray]:
        return {name: tensor.numpy() for name, tensor in signature(**{INPUT_NAME: tf.constant(x, tf.float32)}).items()}

    return serve


def output_specs(saved: SavedModel, key: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Signature `key`'s outputs: numpy dtype name and shape (-1 where any size goes), by name."""
    outputs = saved.signatures[key].structured_outputs
    return {
        name: (spec.dtype.as_numpy_dtype.__name__, tuple(-1 if d is None else int(d) for d in spec.shape))
        for name, spec in outputs.items()
    }
