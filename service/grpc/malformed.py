"""Requests that are not the message their method takes get INVALID_ARGUMENT, with a sentence.

gRPC decodes a request before any servicer sees it; a body that does not parse as the method's message
would otherwise end the call as UNKNOWN, with the decoder's Python exception class in the details. A
server interceptor gives every method a decoder that turns that failure into a marker, and a behaviour
that answers the marker with INVALID_ARGUMENT. It wraps each method's handler once and keeps it.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError


class _Malformed:
    """What a request that did not decode becomes."""


MALFORMED = _Malformed()


class RefuseMalformed(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._handlers: dict[str, Any] = {}

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        wrapped = self._handlers.get(details.method)
        if wrapped is None:
            handler = await continuation(details)
            if handler is None or handler.request_deserializer is None:
                return handler
            wrapped = _guarded(handler)
            self._handlers[details.method] = wrapped
        return wrapped


def _guarded(handler: Any) -> Any:
    """The unary method's handler, decoding tolerantly; any other kind of method as it is (the streaming
    one served here, health's Watch, takes a message too small to be malformed in a way that matters)."""
    if handler.unary_unary is None:
        return handler
    decode, behaviour = handler.request_deserializer, handler.unary_unary
    message = getattr(getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None), "full_name", "request")

    def tolerant(data: bytes) -> Any:
        try:
            return decode(data)
        except DecodeError:
            return MALFORMED

    async def unary_unary(request: Any, context: Any) -> Any:
        if request is MALFORMED:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {message} message")
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        unary_unary, request_deserializer=tolerant, response_serializer=handler.response_serializer
    )
