"""Service errors as gRPC statuses: the one table, and the details a client sees."""

import grpc

from service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    ModelOutputError,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    Timeout,
    Unauthenticated,
    Unimplemented,
    UnsupportedMediaType,
)

GRPC_STATUS: dict[type[ServiceError], grpc.StatusCode] = {
    BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    UnsupportedMediaType: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    RequestTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    Timeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    ModelOutputError: grpc.StatusCode.INTERNAL,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


def grpc_status(error: ServiceError) -> grpc.StatusCode:
    return next((GRPC_STATUS[c] for c in type(error).__mro__ if c in GRPC_STATUS), grpc.StatusCode.INTERNAL)


def trailing_metadata(error: ServiceError) -> tuple[tuple[str, str], ...]:
    """What HTTP puts in headers: when to retry after shedding."""
    return (("retry-after", str(error.retry_after_s)),) if isinstance(error, Overloaded) else ()
