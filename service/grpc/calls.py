"""The frame of every RPC: its request id, its metrics and access-log line, errors as gRPC statuses, and
payload logging of the inference calls: the response message, or for a call that failed, its status as
JSON (`{"code": "INVALID_ARGUMENT", "error": "..."}`, as REST's error bodies read)."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import orjson

from service.core.arrivals import GrpcArrivals
from service.errors import ServiceError
from service.grpc.errors import grpc_status, trailing_metadata
from service.logs import REQUEST_ID_KEY, RUNTIME_KEY, accept_request_id, answered_by, answered_fields, request_id
from service.metrics import Metrics
from service.payloads import Body, Exchange, PayloadLogger
from service.tracing import Span, Tracing, failed

T = TypeVar("T")
SERVER_ERRORS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS})
Context = grpc.aio.ServicerContext[Any, Any]

logger = logging.getLogger("service.access")


class Calls:
    def __init__(
        self,
        metrics: Metrics,
        *,
        access_log: bool,
        arrivals: GrpcArrivals,
        payloads: PayloadLogger | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._metrics = metrics
        self._access_log = access_log
        self._arrivals = arrivals
        self._payloads = payloads
        self._tracing = tracing

    async def answer(self, method: str, context: Context, work: Callable[[], Awaitable[T]], *, logged: Any = None) -> T:
        """`work()`'s result; a ServiceError it raises aborts the RPC with the mapped status. `logged`, an
        inference call's request message, goes to the payload log with the result when sampled."""
        if self._tracing is None:
            return await self._answer(method, context, work, logged, None)
        metadata = context.invocation_metadata() or ()
        carrier = {key: value for key, value in metadata if isinstance(value, str)}
        service_name, _, rpc = method.strip("/").partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service_name, "rpc.method": rpc}
        with self._tracing.serving(method, carrier, attributes) as span:
            return await self._answer(method, context, work, logged, span)

    async def _answer(
        self, method: str, context: Context, work: Callable[[], Awaitable[T]], logged: Any, span: Span | None
    ) -> T:
        started = time.perf_counter()
        rid = accept_request_id(_sent_request_id(context))
        token = request_id.set(rid)
        code = grpc.StatusCode.CANCELLED
        # NOTE: in the trailing metadata, which costs nothing: sending initial metadata first is a
        # round trip through gRPC's completion queue before the request even reaches the batcher.
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
        self._arrivals.started()
        kept = logged is not None and self._payloads is not None and self._payloads.sampled()
        try:
            result = await work()
            code = grpc.StatusCode.OK
            answered = answered_by.get()
            if answered is not None and answered.runtime:
                context.set_trailing_metadata(((REQUEST_ID_KEY, rid), (RUNTIME_KEY, answered.runtime)))
            if kept:
                self._log_payload(method, rid, logged, _protobuf(result))
            return result
        except ServiceError as e:
            code = grpc_status(e)
            if kept:
                self._log_payload(method, rid, logged, _status(code, e.message))
            await context.abort(code, e.message, ((REQUEST_ID_KEY, rid), *trailing_metadata(e)))
            raise  # abort raised already; this line is never reached
        except Exception:
            code = grpc.StatusCode.UNKNOWN
            logger.exception("unhandled error", extra={"rpc": method})
            raise
        finally:
            self._arrivals.finished()
            self._record(method, code, started)
            request_id.reset(token)
            if span is not None:
                span.set_attributes({"rpc.grpc.status_code": code.value[0], "mnist.request_id": rid})
                if code in SERVER_ERRORS:
                    failed(span, code.name)

    def _record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        seconds = time.perf_counter() - started
        self._metrics.observe_request("grpc", method, "POST", code.name, seconds)
        if self._access_log:
            entry: dict[str, Any] = {"rpc": method, "status": code.name, "ms": round(seconds * 1000, 3)}
            logger.info("request", extra={**entry, **answered_fields()})

    def _log_payload(self, method: str, rid: str, request: Any, response: Body) -> None:
        assert self._payloads is not None
        answered = answered_by.get()
        model, version = (answered.model, answered.version) if answered else (None, None)
        self._payloads.offer(Exchange(rid, method, model, version, _protobuf(request), response))


def _sent_request_id(context: Context) -> str | None:
    sent = (value for key, value in context.invocation_metadata() or () if key == REQUEST_ID_KEY)
    return next((value for value in sent if isinstance(value, str)), None)


def _protobuf(message: Any) -> Body:
    return Body(message.SerializeToString(), f"application/x-protobuf; messageType={message.DESCRIPTOR.full_name}")


def _status(code: grpc.StatusCode, message: str) -> Body:
    return Body(orjson.dumps({"code": code.name, "error": message}), "application/json")
