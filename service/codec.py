"""Request bodies to validated numpy pixels, and numpy results to JSON, without detours.

The hot path is orjson into Python lists into one float32 array. Strict checks run on the lists
first, because numpy would otherwise turn "7", true or 1e300 silently into pixels.
"""

from typing import Any

import numpy as np
import orjson

from contract import IMAGE_PIXELS, PIXEL_MAX, PIXEL_MIN
from service.errors import BadRequest, InvalidInput, UnsupportedMediaType

JSON_MEDIA_TYPES = ("application/json", "application/problem+json")
_NUMBER_TYPES = frozenset({int, float})
_OPEN_SQUARE, _OPEN_CURLY, _CLOSE_SQUARE, _CLOSE_CURLY = b"[{]}"


def media_type(content_type: str | None) -> str:
    """`application/json` from `Application/JSON; charset=utf-8`; empty when none was declared."""
    return "" if content_type is None else content_type.split(";", 1)[0].strip().lower()


def require_json(content_type: str | None) -> None:
    """Accept JSON or no declared type (many clients send none); refuse anything else with 415."""
    declared = media_type(content_type)
    if declared and declared not in JSON_MEDIA_TYPES and not declared.endswith("+json"):
        raise UnsupportedMediaType(f"expected Content-Type application/json, got {declared}")


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """Parse a JSON body; malformed, non-finite or too deeply nested input is a 400."""
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    if _nesting_depth(body) > max_depth:
        raise BadRequest(f"JSON is nested more than {max_depth} levels deep")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        found = body[e.pos : e.pos + 9]
        if found.startswith((b"NaN", b"Infinity", b"-Infinity")):
            raise BadRequest("NaN and Infinity are not JSON numbers; pixel values must be finite") from e
        raise BadRequest(f"malformed JSON: {e}") from e


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"expected a JSON object, got {type_name(value)}")
    return value


def pixels(value: Any, *, field: str, max_batch: int) -> np.ndarray:
    """A list of images, each a list of 784 numbers in 0..255, as float32 `[N, 784]`."""
    if not isinstance(value, list):
        raise InvalidInput(f"'{field}' must be a list of images, got {type_name(value)}")
    if not value:
        raise InvalidInput(f"'{field}' is an empty batch; send at least one image")
    if len(value) > max_batch:
        raise InvalidInput(f"'{field}' has {len(value)} images; the maximum batch size is {max_batch}")
    for i, row in enumerate(value):
        _check_row(row, f"{field}[{i}]")
    with np.errstate(over="ignore"):  # a huge number becomes inf, which the range check refuses
        x = np.array(value, dtype=np.float32)
    return _in_range(x, field)


def image(value: Any, *, field: str) -> np.ndarray:
    """One image, a list of 784 numbers in 0..255, as float32 `[1, 784]`."""
    _check_row(value, field)
    with np.errstate(over="ignore"):
        x = np.array([value], dtype=np.float32)
    return _in_range(x, field)


def pixels_from_array(array: np.ndarray, *, field: str, max_batch: int) -> np.ndarray:
    """Pixels that arrived as binary tensor data: check the count and range only."""
    if len(array) == 0:
        raise InvalidInput(f"'{field}' is an empty batch; send at least one image")
    if len(array) > max_batch:
        raise InvalidInput(f"'{field}' has {len(array)} images; the maximum batch size is {max_batch}")
    return _in_range(array, field)


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


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


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, list):
        raise InvalidInput(f"{where} must be a list of {IMAGE_PIXELS} pixel values, got {type_name(row)}")
    if len(row) != IMAGE_PIXELS:
        raise InvalidInput(f"{where}: expected {IMAGE_PIXELS} pixel values, got {len(row)}")
    if not set(map(type, row)) <= _NUMBER_TYPES:
        j, bad = next((j, v) for j, v in enumerate(row) if type(v) not in _NUMBER_TYPES)
        raise InvalidInput(f"{where}[{j}] must be a number, got {type_name(bad)}")


def _in_range(x: np.ndarray, field: str) -> np.ndarray:
    low, high = x.min(), x.max()
    if low >= PIXEL_MIN and high <= PIXEL_MAX:
        return x
    i, j = np.argwhere(~((x >= PIXEL_MIN) & (x <= PIXEL_MAX)))[0]
    raise InvalidInput(
        f"{field}[{i}][{j}] is {x[i, j]:g}; pixel values must be raw intensities within {PIXEL_MIN:g}..{PIXEL_MAX:g}"
    )


def _nesting_depth(body: bytes) -> int:
    """The bracket depth of a JSON text, counted in C. Brackets inside strings count too, which can
    only make a hostile body look deeper; orjson's own limit of 1024 levels stands behind this one."""
    openings = body.count(b"[") + body.count(b"{")
    if openings <= 2:  # the common single-image body: nothing to count
        return openings
    raw = np.frombuffer(body, dtype=np.uint8)
    steps = ((raw == _OPEN_SQUARE) | (raw == _OPEN_CURLY)).view(np.int8) - (
        (raw == _CLOSE_SQUARE) | (raw == _CLOSE_CURLY)
    ).view(np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))
