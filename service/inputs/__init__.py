"""Every wire form of a request's input, checked here once: raw fields in, a checked float32 `[N, 784]`
array (or a version, a flag) out, or an InvalidInput that says what is wrong and what was expected.

The forms: JSON lists (`/predict`, TF Serving's `instances` and `inputs`, the v2 protocol's `data`),
raw little-endian bytes (v2 binary data and `raw_input_contents`, TF Serving's `tensor_content`),
typed protobuf values (`fp32_contents`, `float_val`), and image files (`service.inputs.images`).
JSON lists are checked value by value before numpy sees them, because numpy would otherwise turn
"7", true or 1e300 silently into pixels.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgspec
import numpy as np

import contract
from contract import IMAGE_PIXELS, INPUT_NAME, PIXEL_MAX, PIXEL_MIN
from service.core.dataplane import ModelRef
from service.core.runtime import FP32
from service.errors import InvalidInput
from service.protocols import tfserving
from service.protocols.tensors import RAW_FP32

_NUMBER_TYPES, _INT = frozenset({int, float}), frozenset({int})
_PREDICT_FIELDS = frozenset({"image", "images", "model", "version", "label"})


@dataclass(frozen=True)
class WireTensor:
    """An input tensor as a protobuf message carries it."""

    name: str
    datatype: str  # as the protocol names it: FP32 (v2) or DT_FLOAT (TF Serving)
    shape: list[int]
    content: bytes  # raw little-endian contents, or empty
    values: Sequence[float]  # typed contents, or empty


def json_image(value: Any, *, field: str) -> np.ndarray:
    """One image, a list of 784 numbers in 0..255, as float32 `[1, 784]`."""
    return _as_pixels([value], field, integers=_check_row(value, field))


def json_images(value: Any, *, field: str, max_images: int) -> np.ndarray:
    """A list of images, each a list of 784 numbers in 0..255, as float32 `[N, 784]`."""
    if not isinstance(value, list):
        raise InvalidInput(f"'{field}' must be a list of images, got {type_name(value)}")
    _check_batch(len(value), field=field, max_images=max_images)
    integers = [_check_row(row, f"{field}[{i}]") for i, row in enumerate(value)]
    return _as_pixels(value, field, integers=all(integers))


def predict_json(body: Mapping[str, Any], *, max_images: int) -> np.ndarray:
    """`POST /predict`'s JSON body: `image` (784 pixel values) or `images` (a list of them), beside the
    optional `model`, `version` and `label`."""
    unknown = body.keys() - _PREDICT_FIELDS
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(sorted(unknown))}; expected image or images, model, version or label"
        )
    if ("image" in body) == ("images" in body):
        raise InvalidInput("send exactly one of 'image' (784 pixel values) or 'images' (a list of them)")
    if "image" in body:
        return json_image(body["image"], field="image")
    return json_images(body["images"], field="images", max_images=max_images)


class _IntegerPredictBody(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /predict`'s common body: raw intensities as JSON integers (a bool is not one, to msgspec)."""

    image: list[int] | msgspec.UnsetType = msgspec.UNSET
    images: list[list[int]] | msgspec.UnsetType = msgspec.UNSET
    model: str | None = None
    version: int | str | None = None
    label: str | None = None


_INTEGER_PREDICT_BODY = msgspec.json.Decoder(_IntegerPredictBody)


def predict_integers(raw: bytes, *, max_images: int) -> tuple[np.ndarray, ModelRef] | None:
    """`POST /predict`'s raw JSON body, decoded straight into its types, if it is the common one: `image` or
    `images` of integers within 0..255, and valid `model`, `version` and `label`. None for any other body,
    valid or not, which `predict_json` and `predict_ref` then read and word the errors of: this is a subset of
    what they accept, read the same way, without their value-by-value type check (about 20 µs an image)."""
    try:
        body = _INTEGER_PREDICT_BODY.decode(raw)
    except msgspec.MsgspecError:  # malformed, or not of these types: floats, bools, null images, ...
        return None
    if isinstance(body.image, list) and body.images is msgspec.UNSET:
        rows = [body.image]
    elif isinstance(body.images, list) and body.image is msgspec.UNSET and 0 < len(body.images) <= max_images:
        rows = body.images
    else:
        return None
    if any(len(row) != IMAGE_PIXELS for row in rows):
        return None
    x = _from_intensities(rows)
    if x is None:
        return None
    return x, predict_ref({"model": body.model, "version": body.version, "label": body.label})


def predict_ref(fields: Mapping[str, Any]) -> ModelRef:
    """The model `/predict` fields name (JSON fields, or query parameters with an image): `model`, and
    `version` or `label`."""
    name, label = optional_string(fields, "model"), optional_string(fields, "label")
    given = fields.get("version")
    number = None if given is None else version(given, field="'version'")
    if number is not None and label is not None:
        raise InvalidInput("send 'version' or 'label', not both")
    return ModelRef(name, number, label)


def tfserving_json(body: Mapping[str, Any], *, max_images: int) -> tuple[np.ndarray, bool]:
    """TF Serving's REST predict body: the pixels, and whether they came in row format (`instances`) rather
    than columnar (`inputs`). Rows may be images or {"pixels": image} objects; columns, images or
    {"pixels": images}."""
    if ("instances" in body) == ("inputs" in body):
        raise InvalidInput("send exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    if "instances" in body:
        rows = body["instances"]
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            rows = [_named_input(row, f"instances[{i}]") for i, row in enumerate(rows)]
        return json_images(rows, field="instances", max_images=max_images), True
    columns = body["inputs"]
    if isinstance(columns, dict):
        columns = _named_input(columns, "inputs")
    return json_images(columns, field="inputs", max_images=max_images), False


def tfserving_protobuf(tensors: Mapping[str, WireTensor], *, max_images: int) -> np.ndarray:
    """TF Serving's PredictRequest inputs: one tensor, by its alias or its tensor name, DT_FLOAT `[N, 784]`,
    as `tensor_content` or `float_val`."""
    names = sorted(tensors)
    if len(names) != 1 or names[0] not in tfserving.INPUT_NAMES:
        tensor_name = tfserving.tensor_name(INPUT_NAME)
        raise InvalidInput(
            f"inputs must hold exactly one tensor, '{INPUT_NAME}' (or its tensor name, such as '{tensor_name}'), "
            f"got {names}"
        )
    tensor = tensors[names[0]]
    if tensor.datatype != tfserving.DTYPES[FP32]:
        raise InvalidInput(f"input '{INPUT_NAME}' must be {tfserving.DTYPES[FP32]}, got {tensor.datatype}")
    rows = _rows(tensor.shape, max_images)
    if tensor.content:
        return _from_raw(tensor.content, rows)
    return _from_values(tensor.values, rows)


def v2_protobuf(tensors: Sequence[WireTensor], raw_contents: Sequence[bytes], *, max_images: int) -> np.ndarray:
    """The v2 protocol's ModelInferRequest inputs: one FP32 tensor, as `fp32_contents` or as the one entry of
    `raw_input_contents`."""
    if len(tensors) != 1:
        raise InvalidInput(f"'inputs' must hold exactly one tensor, '{INPUT_NAME}'")
    (tensor,) = tensors
    rows = _v2_rows(tensor.name, tensor.datatype, tensor.shape, max_images)
    if raw_contents:
        if len(raw_contents) != 1 or len(tensor.values):
            raise InvalidInput("send the pixels once: one raw_input_contents entry, or typed contents, not both")
        return _from_raw(raw_contents[0], rows)
    return _from_values(tensor.values, rows)


def v2_json(inputs: Any, binary: bytes, *, max_images: int) -> np.ndarray:
    """The v2 protocol's JSON `inputs`: one FP32 tensor whose `data` is flat or nested, or whose contents
    follow the JSON as binary data (`parameters.binary_data_size`)."""
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInput(f"'inputs' must be a list with exactly one tensor, '{INPUT_NAME}'")
    tensor = inputs[0]
    rows = _v2_rows(tensor.get("name"), tensor.get("datatype"), tensor.get("shape"), max_images)
    parameters = tensor.get("parameters") or {}
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if type(size) is not int or size != len(binary):
            raise InvalidInput(f"binary_data_size must equal the {len(binary)} bytes sent, got {size!r}")
        return _from_raw(binary, rows)
    if binary:
        raise InvalidInput("binary data was sent but no input declares binary_data_size")
    data = tensor.get("data")
    if isinstance(data, list) and data and not isinstance(data[0], list):  # flat, row-major
        if len(data) != rows * IMAGE_PIXELS:
            raise InvalidInput(f"'{INPUT_NAME}' has shape {tensor['shape']} but {len(data)} values")
        data = [data[i * IMAGE_PIXELS : (i + 1) * IMAGE_PIXELS] for i in range(rows)]
    x = json_images(data, field=INPUT_NAME, max_images=max_images)
    if len(x) != rows:
        raise InvalidInput(f"'{INPUT_NAME}' has shape {tensor['shape']} but {len(x)} images")
    return x


def version(value: object, *, field: str = "version") -> int:
    """A version from a URL path segment, a query parameter, a JSON field or a protobuf field: a positive
    integer, or its digits without leading zeros, as version folders are named."""
    parsed = contract.parse_version(value) if isinstance(value, str) else value
    if type(parsed) is not int or parsed < 1:
        raise InvalidInput(f"{field} must be a positive integer, got {value!r}")
    return parsed


def optional_string(fields: Mapping[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string, got {type_name(value)}")
    return value


def flag(value: str | None, name: str) -> bool:
    """A query flag: absent, false or 0 is off; true or 1 is on."""
    if value in (None, "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise InvalidInput(f"{name} must be true or false, got {value!r}")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a number"


def _check_batch(rows: int, *, field: str, max_images: int) -> None:
    if rows == 0:
        raise InvalidInput(f"'{field}' is an empty batch; send at least one image")
    if rows > max_images:
        raise InvalidInput(f"'{field}' has {rows} images; the maximum per request is {max_images}")


def _check_row(row: Any, where: str) -> bool:
    """Raise unless `row` is 784 numbers (a bool is not one); return whether every one is an int."""
    if not isinstance(row, list):
        raise InvalidInput(f"{where} must be a list of {IMAGE_PIXELS} pixel values, got {type_name(row)}")
    if len(row) != IMAGE_PIXELS:
        raise InvalidInput(f"{where}: expected {IMAGE_PIXELS} pixel values, got {len(row)}")
    types = set(map(type, row))
    if not types <= _NUMBER_TYPES:
        j, bad = next((j, v) for j, v in enumerate(row) if type(v) not in _NUMBER_TYPES)
        raise InvalidInput(f"{where}[{j}] must be a number, got {type_name(bad)}")
    return types == _INT


def _check_range(x: np.ndarray, *, field: str) -> np.ndarray:
    """`x` itself, if every pixel is a raw intensity within 0..255; NaN and infinities are refused too."""
    low, high = x.min(), x.max()
    if low >= PIXEL_MIN and high <= PIXEL_MAX:
        return x
    i, j = np.argwhere(~((x >= PIXEL_MIN) & (x <= PIXEL_MAX)))[0]
    raise InvalidInput(
        f"{field}[{i}][{j}] is {x[i, j]:g}; pixel values must be raw intensities within {PIXEL_MIN:g}..{PIXEL_MAX:g}"
    )


def _as_pixels(rows: list[list[Any]], field: str, *, integers: bool) -> np.ndarray:
    """float32 `[N, 784]` from checked rows; `integers` when every value is an int."""
    if integers:
        x = _from_intensities(rows)
        if x is not None:
            return x
    with np.errstate(over="ignore"):  # a huge number becomes inf, which the range check refuses
        x = np.array(rows, dtype=np.float32)
    return _check_range(x, field=field)


def _from_intensities(rows: list[list[int]]) -> np.ndarray | None:
    """float32 `[N, 784]` from rows of 784 ints, if every one is within 0..255; else None.
    NOTE: bytearray() checks and converts a list of ints within 0..255 in C, several times faster than
    numpy's conversion of Python numbers, which goes value by value. Raw intensities, the common case,
    take this path; a value outside the range leaves it for the range check's message."""
    try:
        raw = b"".join(map(bytearray, rows))
    except ValueError:
        return None
    return np.frombuffer(raw, dtype=np.uint8).astype(np.float32).reshape(len(rows), IMAGE_PIXELS)


def _named_input(value: Any, where: str) -> Any:
    if not isinstance(value, dict) or set(value) != {INPUT_NAME}:
        raise InvalidInput(f"{where} must name exactly one input, '{INPUT_NAME}'")
    return value[INPUT_NAME]


def _rows(shape: object, max_images: int) -> int:
    """The number of images in a tensor of shape `[N, 784]`."""
    if not _is_shape(shape) or len(shape) != 2 or shape[1] != IMAGE_PIXELS or shape[0] < 0:
        raise InvalidInput(f"input '{INPUT_NAME}' must have shape [N, {IMAGE_PIXELS}], got {shape!r}")
    _check_batch(shape[0], field=INPUT_NAME, max_images=max_images)
    return shape[0]


def _v2_rows(name: object, datatype: object, shape: object, max_images: int) -> int:
    if name != INPUT_NAME:
        raise InvalidInput(f"unknown input {name!r}; the model's input is '{INPUT_NAME}'")
    if datatype != FP32:
        raise InvalidInput(f"input '{INPUT_NAME}' must have datatype {FP32}, got {datatype!r}")
    return _rows(shape, max_images)


def _from_raw(raw: bytes, rows: int) -> np.ndarray:
    expected = rows * IMAGE_PIXELS * RAW_FP32.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"'{INPUT_NAME}' has shape [{rows}, {IMAGE_PIXELS}]: {expected} bytes of raw data, not {len(raw)}"
        )
    x = np.frombuffer(raw, dtype=RAW_FP32).reshape(rows, IMAGE_PIXELS).astype(np.float32)
    return _check_range(x, field=INPUT_NAME)


def _from_values(values: Sequence[float], rows: int) -> np.ndarray:
    x = np.asarray(values, dtype=np.float32)
    if x.size != rows * IMAGE_PIXELS:
        raise InvalidInput(f"'{INPUT_NAME}' has shape [{rows}, {IMAGE_PIXELS}] but {x.size} values")
    return _check_range(x.reshape(rows, IMAGE_PIXELS), field=INPUT_NAME)


def _is_shape(shape: object) -> TypeGuard[Sequence[int]]:
    return isinstance(shape, Sequence) and all(type(d) is int for d in shape)
