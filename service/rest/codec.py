"""JSON request bodies to validated numpy pixels, and numpy results to JSON, without detours.

The hot path is orjson into Python lists into one float32 array. Strict checks run on the lists
first, because numpy would otherwise turn "7", true or 1e300 silently into pixels.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

import contract
from contract import IMAGE_PIXELS
from service.core.tensors import check_batch, check_range
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
    """Parse a JSON body; malformed, non-finite or too deeply nested input is a BadRequest."""
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


def pixels(value: Any, *, field: str, max_images: int) -> np.ndarray:
    """A list of images, each a list of 784 numbers in 0..255, as float32 `[N, 784]`."""
    if not isinstance(value, list):
        raise InvalidInput(f"'{field}' must be a list of images, got {type_name(value)}")
    check_batch(len(value), field=field, max_images=max_images)
    for i, row in enumerate(value):
        _check_row(row, f"{field}[{i}]")
    with np.errstate(over="ignore"):  # a huge number becomes inf, which the range check refuses
        x = np.array(value, dtype=np.float32)
    return check_range(x, field=field)


def image(value: Any, *, field: str) -> np.ndarray:
    """One image, a list of 784 numbers in 0..255, as float32 `[1, 784]`."""
    _check_row(value, field)
    with np.errstate(over="ignore"):
        x = np.array([value], dtype=np.float32)
    return check_range(x, field=field)


def path_version(text: str) -> int:
    """A version from a URL path segment or a string field, by the rule for version folder names."""
    version = contract.parse_version(text)
    if version is None:
        raise InvalidInput(f"version must be a positive integer, got '{text}'")
    return version


def json_version(value: Any) -> int | None:
    """A version from a JSON field or query parameter: absent, an integer, or a string of digits."""
    if value is None:
        return None
    if isinstance(value, str):
        return path_version(value)
    if type(value) is not int or value < 1:
        raise InvalidInput(f"'version' must be a positive integer, got {type_name(value)} {value!r}")
    return value


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(content), status_code=status_code, media_type="application/json", headers=headers)


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
    return int(np.max(np.cumsum(steps, dtype=np.int32), initial=0))
