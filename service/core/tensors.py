"""Input checks every protocol shares: batch sizes, pixel ranges, and Open Inference Protocol tensors.

A front door turns its wire format into these calls (JSON lists, binary bodies, protobuf fields);
what counts as valid, and what the error says, is decided here once.
"""

from collections.abc import Sequence
from typing import TypeGuard

import numpy as np

from contract import IMAGE_PIXELS, INPUT_NAME, PIXEL_MAX, PIXEL_MIN
from service.errors import InvalidInput

FP32 = "FP32"


def check_batch(rows: int, *, field: str, max_images: int) -> None:
    if rows == 0:
        raise InvalidInput(f"'{field}' is an empty batch; send at least one image")
    if rows > max_images:
        raise InvalidInput(f"'{field}' has {rows} images; the maximum per request is {max_images}")


def check_range(x: np.ndarray, *, field: str) -> np.ndarray:
    """`x` itself, if every pixel is a raw intensity within 0..255; NaN and infinities are refused too."""
    low, high = x.min(), x.max()
    if low >= PIXEL_MIN and high <= PIXEL_MAX:
        return x
    i, j = np.argwhere(~((x >= PIXEL_MIN) & (x <= PIXEL_MAX)))[0]
    raise InvalidInput(
        f"{field}[{i}][{j}] is {x[i, j]:g}; pixel values must be raw intensities within {PIXEL_MIN:g}..{PIXEL_MAX:g}"
    )


def pixels_from_array(x: np.ndarray, *, field: str, max_images: int) -> np.ndarray:
    """float32 `[N, 784]` that arrived as a tensor: check the batch and the range only."""
    check_batch(len(x), field=field, max_images=max_images)
    return check_range(x, field=field)


def infer_input_rows(name: object, datatype: object, shape: object, *, max_images: int) -> int:
    """The number of images in an Open Inference Protocol input tensor, after checking its header."""
    if name != INPUT_NAME:
        raise InvalidInput(f"unknown input {name!r}; the model's input is '{INPUT_NAME}'")
    if datatype != FP32:
        raise InvalidInput(f"input '{INPUT_NAME}' must have datatype {FP32}, got {datatype!r}")
    if not _is_shape(shape) or len(shape) != 2 or shape[1] != IMAGE_PIXELS or shape[0] < 0:
        raise InvalidInput(f"input '{INPUT_NAME}' must have shape [N, {IMAGE_PIXELS}], got {shape!r}")
    rows = int(shape[0])
    check_batch(rows, field=INPUT_NAME, max_images=max_images)
    return rows


def pixels_from_bytes(raw: bytes, rows: int) -> np.ndarray:
    """`rows` images sent as raw little-endian float32, row-major."""
    expected = rows * IMAGE_PIXELS * 4
    if len(raw) != expected:
        raise InvalidInput(
            f"'{INPUT_NAME}' has shape [{rows}, {IMAGE_PIXELS}]: {expected} bytes of raw data, not {len(raw)}"
        )
    x = np.frombuffer(raw, dtype="<f4").reshape(rows, IMAGE_PIXELS).astype(np.float32)
    return check_range(x, field=INPUT_NAME)


def pixels_from_values(values: np.ndarray, rows: int) -> np.ndarray:
    """`rows` images sent as a flat float32 array of typed contents."""
    if values.size != rows * IMAGE_PIXELS:
        raise InvalidInput(f"'{INPUT_NAME}' has shape [{rows}, {IMAGE_PIXELS}] but {values.size} values")
    return check_range(values.reshape(rows, IMAGE_PIXELS), field=INPUT_NAME)


def _is_shape(shape: object) -> TypeGuard[Sequence[int]]:
    return isinstance(shape, Sequence) and all(type(d) is int for d in shape)
