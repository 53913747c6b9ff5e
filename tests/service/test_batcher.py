import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.batcher import DynamicBatcher
from service.errors import NotReady, Overloaded, Timeout


class RecordingModel:
    """Doubles its input and records each call's batch size; `gate` holds calls back."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.gate.wait(5)
        self.batches.append(len(x))
        return x * 2


@pytest.fixture
def executor():  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(1) as pool:
        yield pool


def _batcher(model: RecordingModel, executor: ThreadPoolExecutor, **overrides: float) -> DynamicBatcher:
    options = {"max_rows": 8, "max_wait_s": 0.0, "max_queue_rows": 100, "timeout_s": 5.0, **overrides}
    return DynamicBatcher(model, executor, **options)  # type: ignore[arg-type]


async def test_concurrent_requests_share_calls_and_get_their_own_rows(executor: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.submit(np.full((1, 3), -1.0)))
    await asyncio.sleep(0.05)  # the first call is now in the model, holding the gate
    rest = [asyncio.ensure_future(batcher.submit(np.full((i % 3 + 1, 3), float(i)))) for i in range(6)]
    await asyncio.sleep(0.05)
    model.gate.set()
    assert np.array_equal(await first, np.full((1, 3), -2.0))
    for i, task in enumerate(rest):
        assert np.array_equal(await task, np.full((i % 3 + 1, 3), 2.0 * i))
    assert model.batches[0] == 1
    assert sum(model.batches) == 1 + sum(i % 3 + 1 for i in range(6))
    assert max(model.batches[1:]) <= 8 and len(model.batches) <= 3
    await batcher.close()


async def test_a_full_queue_sheds_at_once(executor: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor, max_queue_rows=4)
    model.gate.clear()
    in_model = asyncio.ensure_future(batcher.submit(np.ones((2, 3))))
    await asyncio.sleep(0.05)  # taken by the model, so no longer queued
    queued = [asyncio.ensure_future(batcher.submit(np.ones((2, 3)))) for _ in range(2)]
    await asyncio.sleep(0)
    assert batcher.queued_rows == 4
    with pytest.raises(Overloaded, match="at capacity"):
        await batcher.submit(np.ones((1, 3)))
    model.gate.set()
    await asyncio.gather(in_model, *queued)
    await batcher.close()


async def test_a_slow_model_times_out_the_request(executor: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor, timeout_s=0.05)
    model.gate.clear()
    with pytest.raises(Timeout, match="within 0.05s"):
        await batcher.submit(np.ones((1, 3)))
    model.gate.set()
    assert np.array_equal(await batcher.submit(np.ones((1, 3))), np.full((1, 3), 2.0))
    await batcher.close()


async def test_close_finishes_every_accepted_request(executor: ThreadPoolExecutor) -> None:
    model = RecordingModel()
    batcher = _batcher(model, executor)
    model.gate.clear()
    tasks = [asyncio.ensure_future(batcher.submit(np.full((1, 3), float(i)))) for i in range(20)]
    await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(batcher.close())
    model.gate.set()
    await closing
    assert [float((await t)[0, 0]) for t in tasks] == [2.0 * i for i in range(20)]


async def test_a_closed_batcher_refuses_with_503(executor: ThreadPoolExecutor) -> None:
    batcher = _batcher(RecordingModel(), executor)
    await batcher.close()
    with pytest.raises(NotReady, match="being unloaded"):
        await batcher.submit(np.ones((1, 3)))


async def test_a_model_error_fails_only_that_batch(executor: ThreadPoolExecutor) -> None:
    calls = []

    def flaky(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if len(calls) == 1:
            raise ValueError("boom")
        return x

    batcher = DynamicBatcher(flaky, executor, max_rows=8, max_wait_s=0, max_queue_rows=10, timeout_s=5)
    with pytest.raises(ValueError, match="boom"):
        await batcher.submit(np.ones((1, 3)))
    assert np.array_equal(await batcher.submit(np.ones((1, 3))), np.ones((1, 3)))
    await batcher.close()
