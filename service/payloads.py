"""Payload logging in KServe's logger format: each sampled inference request and its response, sent as
two CloudEvents 1.0 in binary mode to `MNIST_PAYLOAD_LOG_URL`, for audits and for the next model's data.

The events (binary mode: the payload is the HTTP body, the attributes are `ce-` headers):
- `ce-type` `org.kubeflow.serving.inference.request` or `.response`, as KServe's logger sends them;
- `ce-id` the request id, the same on both events and in the response's `X-Request-ID`;
- `ce-source` this server, `ce-specversion` 1.0, `ce-time`, and `content-type` the body's own;
- extensions: `ce-modelname` and `ce-modelversion` (the version that answered), `ce-endpoint` (the
  route or RPC), and `ce-inferenceservicename` (the model, as KServe's message dumpers expect).

Off the request path: a request only decides whether it is sampled (`MNIST_PAYLOAD_LOG_SAMPLE`) and, if
so, puts its pair of events on a bounded queue; one task sends them. When the sink is slow or down the
queue fills, and events are dropped and counted (`mnist_payload_events_total{outcome="dropped"}`);
no request ever waits for the sink, and a sink that fails is counted (`outcome="failed"`).
"""

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from service.metrics import Metrics

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
STOP_GRACE_S = 2.0  # at shutdown, events still queued get this long to be sent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Body:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Exchange:
    """One sampled request and its response."""

    request_id: str
    endpoint: str
    model: str | None  # None when no version answered (the request failed before one did)
    version: int | None
    request: Body
    response: Body


class PayloadLogger:
    def __init__(self, url: str, sample: float, *, source: str, max_queued: int, timeout_s: float, metrics: Metrics):
        self._url = url
        self._sample = sample
        self._source = source
        self._queue: asyncio.Queue[Exchange] = asyncio.Queue(maxsize=max(1, max_queued // 2))  # pairs of events
        self._timeout_s = timeout_s
        self._events = {outcome: metrics.payload_events.labels(outcome) for outcome in ("sent", "failed", "dropped")}
        self._task: asyncio.Task[None] | None = None

    def sampled(self) -> bool:
        """Whether to log the request that begins now."""
        return self._sample >= 1 or random.random() < self._sample

    def offer(self, exchange: Exchange) -> None:
        """Queue the pair of events, or drop and count them if the queue is full. Never waits."""
        try:
            self._queue.put_nowait(exchange)
        except asyncio.QueueFull:
            self._events["dropped"].inc(2)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._send_all())

    async def stop(self) -> None:
        """Send what is queued, for a moment, then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            logger.warning("payload events left unsent at shutdown", extra={"exchanges": self._queue.qsize()})
        self._task.cancel()

    async def _send_all(self) -> None:
        async with httpx.AsyncClient(timeout=self._timeout_s) as client:
            while True:
                exchange = await self._queue.get()
                try:
                    for headers, body in events(exchange, self._source):
                        await self._send(client, headers, body)
                finally:
                    self._queue.task_done()

    async def _send(self, client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> None:
        try:
            response = await client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as e:
            self._events["failed"].inc()
            logger.debug("payload event not sent", extra={"error": str(e) or type(e).__name__})
            return
        self._events["sent" if response.is_success else "failed"].inc()


def events(exchange: Exchange, source: str) -> Iterator[tuple[dict[str, str], bytes]]:
    """The request's event and the response's, as CloudEvents binary-mode headers and body."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    common = {"ce-specversion": "1.0", "ce-id": exchange.request_id, "ce-source": source, "ce-time": now}
    common["ce-endpoint"] = exchange.endpoint
    if exchange.model is not None:
        common["ce-modelname"] = common["ce-inferenceservicename"] = exchange.model
    if exchange.version is not None:
        common["ce-modelversion"] = str(exchange.version)
    for kind, body in ((REQUEST_TYPE, exchange.request), (RESPONSE_TYPE, exchange.response)):
        yield {**common, "ce-type": kind, "content-type": body.content_type}, body.data
