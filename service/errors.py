"""One error hierarchy: each error knows its HTTP status, and its message tells the user what to fix."""


class ServiceError(Exception):
    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class RequestTimeout(ServiceError):
    status_code = 408


class PayloadTooLarge(ServiceError):
    status_code = 413


class UnsupportedMediaType(ServiceError):
    status_code = 415


class InvalidInput(ServiceError):
    """The request parsed, but what it asks for is not valid."""

    status_code = 422


class ModelOutputError(ServiceError):
    """The model itself produced garbage (NaN or infinity); the request fails, the server does not."""

    status_code = 500


class Overloaded(ServiceError):
    status_code = 503

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class NotReady(ServiceError):
    status_code = 503


class Timeout(ServiceError):
    status_code = 504
