"""Service errors as gRPC statuses: the one table, and the details a client sees."""

import grpc

from service import errors
from service.errors import ServiceError

GRPC_STATUS: dict[type[ServiceError], grpc.StatusCode] = {
    errors.BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.UnsupportedMediaType: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.RequestTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Timeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.NotReady: grpc.StatusCode.UNAVAILABLE,
    errors.Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ModelOutputError: grpc.StatusCode.INTERNAL,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


def grpc_status(error: ServiceError) -> grpc.StatusCode:
    return next((GRPC_STATUS[c] for c in type(error).__mro__ if c in GRPC_STATUS), grpc.StatusCode.INTERNAL)


def trailing_metadata(error: ServiceError) -> tuple[tuple[str, str], ...]:
    """What HTTP puts in headers: when to retry after shedding."""
    return (("retry-after", str(error.retry_after_s)),) if isinstance(error, errors.Overloaded) else ()
