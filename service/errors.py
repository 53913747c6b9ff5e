"""One error hierarchy for every protocol. Each message tells the user what to fix.

The errors know nothing of HTTP or gRPC: each front door maps them to its status codes in one table
(`service.rest.errors.HTTP_STATUS`). A class's docstring says when it is raised; the REST API's
OpenAPI document and error catalogue are built from those docstrings.
"""


class ServiceError(Exception):
    """Something went wrong on the server."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    """The request cannot be parsed: malformed JSON, NaN or Infinity literals, nesting too deep, an empty body, an
    unknown signature name."""


class InvalidInput(ServiceError):
    """The request parsed, but what it asks for is not valid: missing or unknown fields, the wrong number of pixel
    values, values that are not numbers or lie outside 0..255, an empty or oversized batch, a malformed version."""


class Unauthenticated(ServiceError):
    """Inference without one of the server's API keys (when MNIST_API_KEYS_FILE is set), or an admin operation
    without the right bearer token."""


class Forbidden(ServiceError):
    """An admin operation while the admin API is off."""


class NotFound(ServiceError):
    """An unknown route, model or version."""


class Conflict(ServiceError):
    """The repository cannot take the change here: it is mounted read-only, or its files cannot be written."""


class RequestTimeout(ServiceError):
    """The request body did not arrive in time."""


class PayloadTooLarge(ServiceError):
    """The request body is over the size limit (declared or streamed)."""


class UnsupportedMediaType(ServiceError):
    """A Content-Type the route does not take, or a compressed body."""


class Unimplemented(ServiceError):
    """A method of a protocol that this model cannot answer (TensorFlow Serving's Classify on raw pixels)."""


class ModelOutputError(ServiceError):
    """The model itself produced NaN or infinity: the request fails, the server does not."""


class Overloaded(ServiceError):
    """The model version's queue is full: retry after `retry_after_s` seconds."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(ServiceError):
    """No version of the model is ready yet, or the server is shutting down."""


class Timeout(ServiceError):
    """The model did not answer within the request timeout."""
