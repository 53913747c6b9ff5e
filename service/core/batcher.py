"""Dynamic batching: concurrent requests for one model version share one model call.

While the model computes one batch, new requests queue up, and the next call takes them all (up to
`max_rows`). So a lone request waits for nobody, and under load the batches grow by themselves.
`max_wait_s` can hold a batch open a little longer to gather more rows. The queue is bounded: past
`max_queue_rows`, requests are shed at once.

The model runs on the event loop itself unless an executor is given. NOTE: for a model this small,
TensorFlow's per-call Python overhead holds the GIL for most of the call, so a worker thread buys
little overlap and costs a thread hand-off per batch; `python -m bench` measures both
(BENCHMARKS.md, "model thread").
"""

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from service.core.runtime import Outputs, Predict, rows
from service.errors import NotReady, Overloaded, Timeout

QUIET_TURNS = 64  # loop turns without a new arrival that end the wait for more
MAX_JOIN_TURNS = 512


class BatchObserver(Protocol):
    """What a batcher reports as it works: to metrics in the server, to a list in tests."""

    def on_batch(self, outputs: Outputs) -> None:
        """A model call answered: its outputs, one row per input row."""
        ...

    def on_shed(self) -> None: ...


class BatchTracer(Protocol):
    """Traces a batcher's work where tracing is on (`service.tracing.BatchTracing`)."""

    def enqueued(self) -> Any:
        """A token for the request being queued now: its trace, and when."""
        ...

    def model_call(self, callers: Sequence[Any], rows: int) -> AbstractContextManager[None]:
        """Around one model call for the requests whose tokens are `callers`."""
        ...


@dataclass(frozen=True)
class BatchLimits:
    max_rows: int  # in one model call
    max_wait_s: float  # for more rows, once the first is queued
    max_queue_rows: int  # waiting at once; past it, requests are shed
    timeout_s: float  # a request still waiting then gets Timeout


@dataclass
class _Pending:
    x: np.ndarray
    future: asyncio.Future[Outputs]
    traced: Any = None  # the BatchTracer's token, where tracing is on


def _expire(future: asyncio.Future[Outputs], timeout: float) -> None:
    if not future.done():
        future.set_exception(Timeout(f"no answer from the model within {timeout:.3g}s"))


class DynamicBatcher:
    def __init__(
        self,
        predict: Predict,
        executor: Executor | None,
        limits: BatchLimits,
        *,
        observer: BatchObserver,
        arrivals: Callable[[], bool],
        tracer: BatchTracer | None = None,
    ) -> None:
        self._predict = predict
        self._executor = executor
        self._max_rows = limits.max_rows
        self._max_wait_s = limits.max_wait_s
        self._max_queue_rows = limits.max_queue_rows
        self._timeout_s = limits.timeout_s
        self._observer = observer
        self._tracer = tracer
        self._may_arrive = arrivals
        self._full = min(limits.max_rows, limits.max_queue_rows)  # rows at which waiting for more is pointless
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker = asyncio.get_running_loop().create_task(self._run())

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(self, x: np.ndarray, *, timeout_s: float | None = None) -> Outputs:
        """The outputs for `x`'s rows, computed in some batch alongside other requests; `timeout_s`
        (at most the batcher's own) is the caller's deadline."""
        if self._closing:  # routing never sends a request here; if it did, a retry reaches a live version
            raise NotReady("this model version is being unloaded; retry")
        if self._queued_rows + len(x) > self._max_queue_rows:
            self._observer.on_shed()
            raise Overloaded(f"server is at capacity ({self._queued_rows} rows queued); retry shortly")
        if self._executor is None and not self._queue and not self._may_arrive():
            return self._alone(x)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self._queue.append(_Pending(x, future, None if self._tracer is None else self._tracer.enqueued()))
        self._queued_rows += len(x)
        self._wakeup.set()
        timeout = self._timeout_s if timeout_s is None else min(timeout_s, self._timeout_s)
        # NOTE: one timer that fails the future, rather than wait_for(shield(future)), which costs a second
        # future, a timeout context and their callbacks per request. A future that is done when its batch
        # is taken (timed out, or cancelled because the caller went away) has its rows skipped.
        deadline = loop.call_later(timeout, _expire, future, timeout)
        try:
            return await future
        finally:
            deadline.cancel()

    def _alone(self, x: np.ndarray) -> Outputs:
        """A request nobody can join, with the model free: computed here, in the caller's task.

        NOTE: through the queue, a lone request would pay for a future, a shield, a timer and two task
        switches for nobody (`python -m bench.budget` measures them). The answer and the metrics are
        the same either way.
        """
        if self._tracer is None:
            out = self._predict(x)
        else:
            with self._tracer.model_call([self._tracer.enqueued()], len(x)):
                out = self._predict(x)
        self._observer.on_batch(out)
        return out

    async def close(self) -> None:
        """Stop taking requests, finish every queued one, then stop the worker."""
        self._closing = True
        self._wakeup.set()
        await self._worker

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._executor is None:
                await self._let_arrivals_join()
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                continue
            if self._max_wait_s > 0 and self._queued_rows < self._max_rows and not self._closing:
                await asyncio.sleep(self._max_wait_s)
            batch = self._take_batch()
            if batch:
                await self._compute(batch)

    async def _let_arrivals_join(self) -> None:
        """Yield to the event loop until QUIET_TURNS turns in a row add no request, a call is full, or
        the front doors know that no other request can come (`service.core.arrivals`).

        NOTE: requests that arrived while the model ran need loop turns to reach the queue. Firing
        at the first queued one settles into batches of a few rows, each paying the full model call,
        and gRPC calls trickle in slower still (grpc.aio accepts one new call per round trip through
        its completion queue). Waiting is pointless when nobody can come, so it stops then too.
        docs/performance.md has the measurements behind QUIET_TURNS.
        """
        quiet = 0
        for _ in range(MAX_JOIN_TURNS):
            if self._queued_rows >= self._full or not self._may_arrive():
                return
            queued = len(self._queue)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._queue) == queued else 0
            if quiet >= QUIET_TURNS:
                return

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._queue and (not batch or rows + len(self._queue[0].x) <= self._max_rows):
            pending = self._queue.popleft()
            self._queued_rows -= len(pending.x)
            if not pending.future.done():  # timed out while queued: skip its rows
                batch.append(pending)
                rows += len(pending.x)
        return batch

    async def _compute(self, batch: list[_Pending]) -> None:
        x = batch[0].x if len(batch) == 1 else np.concatenate([p.x for p in batch])
        traced = nullcontext() if self._tracer is None else self._tracer.model_call([p.traced for p in batch], len(x))
        try:
            with traced:
                if self._executor is None:
                    out = self._predict(x)
                else:
                    out = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, x)
        except Exception as e:  # noqa: BLE001 - the error belongs to the requests, not the worker
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        self._observer.on_batch(out)
        start = 0
        for p in batch:
            end = start + len(p.x)
            if not p.future.done():
                p.future.set_result(rows(out, start, end))
            start = end
