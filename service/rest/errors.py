"""Service errors as HTTP responses: `{"error": "..."}` with the status this table gives."""

import logging
from typing import Any

from starlette.responses import Response

from service import errors
from service.errors import ServiceError
from service.rest.codec import json_response
from service.rest.schemas import ErrorResponse

HTTP_STATUS: dict[type[ServiceError], int] = {
    errors.BadRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.RequestTimeout: 408,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.InvalidInput: 422,
    errors.ModelOutputError: 500,
    errors.Unimplemented: 501,
    errors.Overloaded: 503,
    errors.NotReady: 503,
    errors.Timeout: 504,
}
INFERENCE_ERRORS = tuple(
    e for e in HTTP_STATUS if e not in (errors.Unauthenticated, errors.Forbidden, errors.Unimplemented)
)
READ_ERRORS = (errors.InvalidInput, errors.NotFound, errors.NotReady)

logger = logging.getLogger(__name__)


def http_status(error: ServiceError) -> int:
    return next((HTTP_STATUS[c] for c in type(error).__mro__ if c in HTTP_STATUS), 500)


def error_response(error: ServiceError) -> Response:
    status = http_status(error)
    headers: dict[str, str] = {}
    if isinstance(error, errors.Overloaded):
        headers["Retry-After"] = str(error.retry_after_s)
    elif isinstance(error, errors.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if status >= 500:
        logger.warning("request failed", extra={"status": status, "error": error.message})
    return json_response({"error": error.message}, status, headers)


def unexpected_error_response(error: Exception) -> Response:
    """A 500 for an error no handler expected, logged with its traceback; the client learns nothing more."""
    logger.error("unhandled error", exc_info=error)
    return json_response({"error": "internal server error"}, 500)


def openapi_responses(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route that can raise `errors`, described by their docstrings."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        status = HTTP_STATUS[error]
        described = responses.setdefault(status, {"model": ErrorResponse, "description": ""})
        text = " ".join((error.__doc__ or error.__name__).split())
        described["description"] = f"{described['description']} {text}".strip()
    return dict(sorted(responses.items(), key=lambda item: int(item[0])))
