"""Pure ASGI middleware for every request: an id, body limits, metrics and an access log.

Body limits: a declared Content-Length over the maximum is refused before reading; a streamed
(chunked) body is counted as it arrives; a body that trickles in slower than `body_timeout_s` gets
408; and compressed bodies are refused, so there is no decompression bomb to defuse.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a stream per request.
"""

import asyncio
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.codec import dumps
from service.errors import PayloadTooLarge, RequestTimeout, ServiceError, UnsupportedMediaType
from service.logs import request_id
from service.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_MAX_CLIENT_ID = 128

logger = logging.getLogger("service.access")


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, body_timeout_s: float, access_log: bool
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _client_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500

        refusal = self._refuse_early(scope)
        if refusal is not None:
            status = refusal.status_code
            await _send_error(send, status, refusal.message, rid)
            self._record(scope, status, started)
            request_id.reset(token)
            return

        received = 0
        deadline: float | None = None
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, deadline, body_done
            if body_done:  # after the body, receive() only waits for a disconnect: no deadline
                return await receive()
            deadline = deadline or asyncio.get_running_loop().time() + self.body_timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(f"request body not received within {self.body_timeout_s:g}s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
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

    def _refuse_early(self, scope: Scope) -> ServiceError | None:
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return PayloadTooLarge(self._too_large())
            if key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                return UnsupportedMediaType(
                    f"Content-Encoding {value.decode('latin-1')} is not accepted; send the body uncompressed"
                )
        return None

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
