"""JSON over HTTP: media types, bodies parsed within limits, and responses serialized straight from numpy.

What a parsed body holds is checked by `service.inputs`.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from service.errors import BadRequest, InvalidInput, UnsupportedMediaType
from service.inputs import type_name

JSON_MEDIA_TYPES = ("application/json", "application/problem+json")
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


def parse_json_object(body: bytes, *, max_depth: int) -> dict[str, Any]:
    """A body that must be a JSON object, parsed."""
    return json_object(parse_json(body, max_depth=max_depth))


async def read_json_object(request: Request, *, max_depth: int) -> dict[str, Any]:
    """The request's body, which must be a JSON object."""
    require_json(request.headers.get("content-type"))
    return parse_json_object(await request.body(), max_depth=max_depth)


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(content), status_code=status_code, media_type="application/json", headers=headers)


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
