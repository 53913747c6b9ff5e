import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from service.core.arrivals import GrpcArrivals
from service.core.batcher import QUIET_TURNS, BatchLimits, DynamicBatcher
from service.core.runtime import Outputs
from service.errors import NotReady, Overloaded, Timeout


class RecordingModel:
    """Doubles its input and records each call's batch size; `gate` holds calls back."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.entered = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, x: np.ndarray) -> Outputs:
        self.entered += 1
        self.gate.wait(5)
        self.batches.append(len(x))
        return {"y": x * 2}


@dataclass
class RecordingObserver:
    batches: list[int] = field(default_factory=list)
    shed: int = 0

    def on_batch(self, outputs: Outputs) -> None:
        self.batches.append(len(next(iter(outputs.values()))))

    def on_shed(self) -> None:
        self.shed += 1


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


LIMITS = BatchLimits(max_rows=8, max_wait_s=0.0, max_queue_rows=100, timeout_s=5.0)


def _arrivals_possible() -> bool:  # as with no front door: another request may always come
    return True


def _batcher(
    model: RecordingModel,
    executor: ThreadPoolExecutor | None,
    observer: RecordingObserver | None = None,
    **overrides: float,
) -> DynamicBatcher:
    limits = replace(LIMITS, **overrides)
    return DynamicBatcher(
        model, executor, limits, observer=observer or RecordingObserver(), arrivals=_arrivals_possible
    )


async def _until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), 30)  # a guard against a hang, not a speed limit


async def test_concurrent_requests_share_calls_and_get_their_own_rows(executor: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.submit(np.full((1, 3), -1.0)))
    await _until(lambda: model.entered == 1)  # the first call is now in the model, held at the gate
    rest = [asyncio.ensure_future(batcher.submit(np.full((i % 3 + 1, 3), float(i)))) for i in range(6)]
    await _until(lambda: batcher.queued_rows == sum(i % 3 + 1 for i in range(6)))
    model.gate.set()
    assert np.array_equal((await first)["y"], np.full((1, 3), -2.0))
    for i, task in enumerate(rest):
        assert np.array_equal((await task)["y"], np.full((i % 3 + 1, 3), 2.0 * i))
    assert model.batches[0] == 1
    assert sum(model.batches) == 1 + sum(i % 3 + 1 for i in range(6))
    assert max(model.batches[1:]) <= 8 and len(model.batches) == 3  # 12 queued rows in calls of at most 8
    await batcher.close()


async def test_a_full_queue_sheds_at_once_and_reports_it(executor: ThreadPoolExecutor) -> None:
    model, observer = RecordingModel(), RecordingObserver()
    batcher = _batcher(model, executor, observer, max_queue_rows=4)
    model.gate.clear()
    in_model = asyncio.ensure_future(batcher.submit(np.ones((2, 3))))
    await _until(lambda: model.entered == 1)  # taken by the model, so no longer queued
    queued = [asyncio.ensure_future(batcher.submit(np.ones((2, 3)))) for _ in range(2)]
    await _until(lambda: batcher.queued_rows == 4)
    with pytest.raises(Overloaded, match="at capacity"):
        await batcher.submit(np.ones((1, 3)))
    assert observer.shed == 1 and batcher.queued_rows == 4
    model.gate.set()
    await asyncio.gather(in_model, *queued)
    assert observer.shed == 1 and batcher.queued_rows == 0 and observer.batches == [2, 4]
    await batcher.close()


async def test_a_slow_model_times_out_the_request(executor: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor, timeout_s=0.05)
    model.gate.clear()
    with pytest.raises(Timeout, match="within 0.05s"):
        await batcher.submit(np.ones((1, 3)))
    model.gate.set()
    assert np.array_equal((await batcher.submit(np.ones((1, 3))))["y"], np.full((1, 3), 2.0))
    await batcher.close()


async def test_rows_of_requests_that_timed_out_or_went_away_while_queued_are_never_computed(
    executor: ThreadPoolExecutor,
) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor, timeout_s=30)
    model.gate.clear()
    in_model = asyncio.ensure_future(batcher.submit(np.ones((1, 3))))
    await _until(lambda: model.entered == 1)  # the model is busy: what comes next is queued
    abandoned = asyncio.ensure_future(batcher.submit(np.ones((2, 3))))
    await _until(lambda: batcher.queued_rows == 2)
    abandoned.cancel()
    with pytest.raises(Timeout, match="within 0.05s"):
        await batcher.submit(np.ones((4, 3)), timeout_s=0.05)
    kept = asyncio.ensure_future(batcher.submit(np.ones((8, 3))))
    await _until(lambda: batcher.queued_rows == 14)
    model.gate.set()
    await asyncio.gather(in_model, kept)
    assert abandoned.cancelled() and model.batches == [1, 8]  # neither the 2 rows nor the 4 were computed
    assert batcher.queued_rows == 0
    await batcher.close()


async def test_close_finishes_every_accepted_request(executor: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor)
    model.gate.clear()
    tasks = [asyncio.ensure_future(batcher.submit(np.full((1, 3), float(i)))) for i in range(20)]
    await _until(lambda: model.entered == 1)  # the first batch is in the model
    closing = asyncio.ensure_future(batcher.close())
    model.gate.set()
    await closing
    assert [float((await t)["y"][0, 0]) for t in tasks] == [2.0 * i for i in range(20)]


async def test_a_closed_batcher_refuses_with_not_ready(executor: ThreadPoolExecutor) -> None:
    batcher = _batcher(RecordingModel(), executor)
    await batcher.close()
    with pytest.raises(NotReady, match="being unloaded"):
        await batcher.submit(np.ones((1, 3)))


async def test_a_model_error_fails_only_that_batch(executor: ThreadPoolExecutor) -> None:
    calls = []

    def flaky(x: np.ndarray) -> Outputs:
        calls.append(len(x))
        if len(calls) == 1:
            raise ValueError("boom")
        return {"y": x}

    batcher = DynamicBatcher(
        flaky,
        executor,
        BatchLimits(max_rows=8, max_wait_s=0, max_queue_rows=10, timeout_s=5),
        observer=RecordingObserver(),
        arrivals=_arrivals_possible,
    )
    with pytest.raises(ValueError, match="boom"):
        await batcher.submit(np.ones((1, 3)))
    assert np.array_equal((await batcher.submit(np.ones((1, 3))))["y"], np.ones((1, 3)))
    await batcher.close()


async def _submit_after(batcher: DynamicBatcher, turns: int, value: float) -> Outputs:
    for _ in range(turns):
        await asyncio.sleep(0)
    return await batcher.submit(np.full((1, 3), value))


async def test_inline_requests_arriving_turn_after_turn_join_one_call() -> None:
    model = RecordingModel()
    batcher = _batcher(model, None)
    # Requests a few loop turns apart, as a server parses them: the batcher waits while they keep coming.
    results = await asyncio.gather(*(_submit_after(batcher, 5 * turns, turns) for turns in range(6)))
    assert model.batches == [6]
    assert [float(r["y"][0, 0]) for r in results] == [2.0 * t for t in range(6)]
    await batcher.close()


async def test_inline_requests_after_a_quiet_turn_get_a_call_of_their_own() -> None:
    model = RecordingModel()
    batcher = _batcher(model, None)
    # Two arrive together, then nothing for longer than the batcher waits, then two more.
    late = QUIET_TURNS + 8
    await asyncio.gather(*(_submit_after(batcher, turns, 1) for turns in (0, 0, late, late)))
    assert model.batches == [2, 2]
    await batcher.close()


async def test_inline_a_request_nobody_can_join_is_computed_without_waiting() -> None:
    model = RecordingModel()
    arriving = [True]
    batcher = DynamicBatcher(model, None, LIMITS, observer=RecordingObserver(), arrivals=lambda: arriving[0])
    # The front doors know of one more request on its way: the batcher waits for it, as by default.
    await asyncio.gather(*(_submit_after(batcher, turns, 1) for turns in (0, 3)))
    assert model.batches == [2]
    # Nobody else can come: the first request is computed at once, and one two turns later gets its own call.
    arriving[0] = False
    await asyncio.gather(*(_submit_after(batcher, turns, 1) for turns in (0, 2)))
    assert model.batches == [2, 1, 1]
    await batcher.close()


async def test_inline_grpc_calls_arriving_together_share_a_call() -> None:
    # Calls that each run start to finish without yielding never overlap, so "were calls concurrent?"
    # would send each alone. While a call is in progress, another may come: they share one call.
    model, grpc = RecordingModel(), GrpcArrivals()
    batcher = DynamicBatcher(model, None, LIMITS, observer=RecordingObserver(), arrivals=grpc.possible)

    async def call(turns: int) -> np.ndarray:
        for _ in range(turns):
            await asyncio.sleep(0)
        grpc.started()
        try:
            return await batcher.submit(np.ones((1, 3)))
        finally:
            grpc.finished()

    await asyncio.gather(*(call(turns) for turns in range(4)))
    assert model.batches == [4]
    await batcher.close()


async def test_inline_joining_stops_once_a_call_is_full() -> None:
    model = RecordingModel()
    batcher = _batcher(model, None, max_rows=4)
    await asyncio.gather(*(_submit_after(batcher, turns, 1) for turns in range(10)))
    assert model.batches[0] == 4 and sum(model.batches) == 10 and max(model.batches) <= 4
    await batcher.close()
