"""Pure ASGI middleware for every request: an id, a body-size limit, metrics and an access log.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a stream per request.
"""

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.codec import dumps
from service.errors import PayloadTooLarge
from service.logs import request_id
from service.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_MAX_CLIENT_ID = 128

logger = logging.getLogger("service.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _client_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            status = PayloadTooLarge.status_code
            await _send_error(send, status, self._too_large(), rid)
            self._record(scope, status, started)
            request_id.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise PayloadTooLarge(self._too_large())
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._record(scope, status, started)
            request_id.reset(token)

    def _too_large(self) -> str:
        return f"request body exceeds the limit of {self.max_body_bytes} bytes"

    def _record(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        self.metrics.observe_request(endpoint, scope["method"], status, seconds)
        if self.access_log:
            logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round(seconds * 1000, 3),
                },
            )


def _client_request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if 0 < len(text) <= _MAX_CLIENT_ID and text.isprintable():
                return text
    return None


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _send_error(send: Send, status: int, message: str, rid: str) -> None:
    body = dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (REQUEST_ID_HEADER, rid.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
