"""The frame of every RPC: its request id, its metrics and access-log line, and errors as gRPC statuses."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from service.core.arrivals import GrpcArrivals
from service.errors import ServiceError
from service.grpc.errors import grpc_status, trailing_metadata
from service.logs import REQUEST_ID_KEY, accept_request_id, request_id
from service.metrics import Metrics

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]

logger = logging.getLogger("service.access")


class Calls:
    def __init__(self, metrics: Metrics, *, access_log: bool, arrivals: GrpcArrivals) -> None:
        self._metrics = metrics
        self._access_log = access_log
        self._arrivals = arrivals

    async def answer(self, method: str, context: Context, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`'s result; a ServiceError it raises aborts the RPC with the mapped status."""
        started = time.perf_counter()
        rid = accept_request_id(_sent_request_id(context))
        token = request_id.set(rid)
        code = grpc.StatusCode.CANCELLED
        # NOTE: in the trailing metadata, which costs nothing: sending initial metadata first is a
        # round trip through gRPC's completion queue before the request even reaches the batcher.
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
        self._arrivals.started()
        try:
            result = await work()
            code = grpc.StatusCode.OK
            return result
        except ServiceError as e:
            code = grpc_status(e)
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

    def _record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        seconds = time.perf_counter() - started
        self._metrics.observe_request("grpc", method, "POST", code.name, seconds)
        if self._access_log:
            logger.info("request", extra={"rpc": method, "status": code.name, "ms": round(seconds * 1000, 3)})


def _sent_request_id(context: Context) -> str | None:
    sent = (value for key, value in context.invocation_metadata() or () if key == REQUEST_ID_KEY)
    return next((value for value in sent if isinstance(value, str)), None)
