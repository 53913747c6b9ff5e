"""Pure ASGI middleware for every request: an id, body limits, metrics, an access log and payload logging;
and the count of requests inside the app, for the batcher (`service.core.arrivals`).

Body limits: a declared Content-Length over the maximum is refused before reading; a streamed
(chunked) body is counted as it arrives; a body that trickles in slower than `body_timeout_s` gets
408; and compressed bodies are refused, so there is no decompression bomb to defuse.

Payload logging (`service.payloads`): a sampled request's body and its response's are kept as they pass,
and handed to the payload logger once the response is sent, if the route ran a model (a `FastRoute`).

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a stream per request.
"""

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.arrivals import HttpArrivals
from service.errors import PayloadTooLarge, RequestTimeout, ServiceError, UnsupportedMediaType
from service.logs import REQUEST_ID_KEY, RUNTIME_KEY, accept_request_id, answered_by, answered_fields, request_id
from service.metrics import Metrics
from service.payloads import Body, Exchange, PayloadLogger
from service.rest.errors import error_response
from service.rest.routing import FastRoute
from service.tracing import Tracing, failed

REQUEST_ID_HEADER = REQUEST_ID_KEY.encode()
RUNTIME_HEADER = RUNTIME_KEY.encode()

logger = logging.getLogger("service.access")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        body_timeout_s: float,
        access_log: bool,
        arrivals: HttpArrivals,
        payloads: PayloadLogger | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.payloads = payloads
        self.tracing = tracing
        self.arrivals = arrivals
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif self.tracing is None:
            await self._serve(scope, receive, send, accept_request_id(_sent_request_id(scope)))
        else:
            await self._traced(scope, receive, send, self.tracing)

    async def _traced(self, scope: Scope, receive: Receive, send: Send, tracing: Tracing) -> None:
        rid = accept_request_id(_sent_request_id(scope))
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in tracing.fields}
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with tracing.serving(f"{method} {scope['path']}", carrier, attributes) as span:
            status = await self._serve(scope, receive, send, rid)
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attributes({"http.response.status_code": status, "mnist.request_id": rid})
            if status >= 500:
                failed(span, str(status))

    async def _serve(self, scope: Scope, receive: Receive, send: Send, rid: str) -> int:
        """Serve the request as `rid`; its status."""
        started = time.perf_counter()
        token = request_id.set(rid)
        kept = self.payloads is not None and self.payloads.sampled()
        tagged = _TaggedSend(send, rid, keep=kept)
        self.arrivals.in_app += 1
        try:
            refusal = self._refuse_early(scope)
            if refusal is None:
                limited = _LimitedReceive(receive, self.max_body_bytes, self.body_timeout_s, keep=kept)
                await self.app(scope, limited, tagged)
                if kept and isinstance(scope.get("route"), FastRoute):
                    self._log_payload(scope, rid, limited, tagged)
            else:  # the body is never read, so the connection cannot carry another request
                response = error_response(refusal)
                response.headers["connection"] = "close"
                await response(scope, receive, tagged)
        finally:
            self.arrivals.in_app -= 1
            self._record(scope, tagged.status, started)
            request_id.reset(token)
        return tagged.status

    def _refuse_early(self, scope: Scope) -> ServiceError | None:
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return PayloadTooLarge(_too_large(self.max_body_bytes))
            if key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                return UnsupportedMediaType(
                    f"Content-Encoding {value.decode('latin-1')} is not accepted; send the body uncompressed"
                )
        return None

    def _record(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        self.metrics.observe_request("rest", endpoint, scope["method"], str(status), seconds)
        if self.access_log:
            entry = {"method": scope["method"], "path": scope["path"], "status": status, "ms": round(seconds * 1000, 3)}
            logger.info("request", extra={**entry, **answered_fields()})

    def _log_payload(self, scope: Scope, rid: str, received: "_LimitedReceive", sent: "_TaggedSend") -> None:
        assert self.payloads is not None
        request_type = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), "")
        answered = answered_by.get()
        self.payloads.offer(
            Exchange(
                request_id=rid,
                endpoint=scope["route"].path,
                model=None if answered is None else answered.model,
                version=None if answered is None else answered.version,
                request=Body(b"".join(received.kept), request_type or "application/octet-stream"),
                response=Body(b"".join(sent.kept), sent.content_type),
            )
        )


def _sent_request_id(scope: Scope) -> str | None:
    return next((value.decode("latin-1") for key, value in scope["headers"] if key == REQUEST_ID_HEADER), None)


class _LimitedReceive:
    """The request's receive(), refusing a body over the size limit or slower than the timeout."""

    def __init__(self, receive: Receive, max_bytes: int, timeout_s: float, *, keep: bool = False) -> None:
        self._receive = receive
        self._keep = keep
        self.kept: list[bytes] = []  # the body, when asked to keep it
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._received = 0
        self._deadline: float | None = None
        self._body_done = False

    async def __call__(self) -> Message:
        if self._body_done:  # after the body, receive() only waits for a disconnect: no deadline
            return await self._receive()
        loop = asyncio.get_running_loop()
        self._deadline = self._deadline or loop.time() + self._timeout_s
        try:
            message = await _by(self._deadline, self._receive())
        except asyncio.TimeoutError:
            raise RequestTimeout(f"request body not received within {self._timeout_s:g}s") from None
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._keep:
                self.kept.append(message.get("body", b""))
            self._body_done = not message.get("more_body", False)
            if self._received > self._max_bytes:
                raise PayloadTooLarge(_too_large(self._max_bytes))
        return message


class _TaggedSend:
    """send(), adding the request id to the response and noting its status (and, when asked, its body)."""

    def __init__(self, send: Send, rid: str, *, keep: bool = False) -> None:
        self._send = send
        self._rid = rid.encode()
        self.status = 500
        self._keep = keep
        self.kept: list[bytes] = []
        self.content_type = "application/octet-stream"

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, self._rid)]
            answered = answered_by.get()
            if answered is not None and answered.runtime:
                message["headers"].append((RUNTIME_HEADER, answered.runtime.encode()))
            if self._keep:
                self.content_type = next(
                    (v.decode("latin-1") for k, v in message["headers"] if k == b"content-type"), self.content_type
                )
        elif self._keep and message["type"] == "http.response.body":
            self.kept.append(message.get("body", b""))
        await self._send(message)


async def _by(deadline: float, receiving: Awaitable[Message]) -> Message:
    if sys.version_info >= (3, 11):  # a timer on this task, where wait_for would start another task
        async with asyncio.timeout_at(deadline):
            return await receiving
    return await asyncio.wait_for(receiving, max(0.0, deadline - asyncio.get_running_loop().time()))


def _too_large(max_bytes: int) -> str:
    return f"request body exceeds the limit of {max_bytes} bytes"
