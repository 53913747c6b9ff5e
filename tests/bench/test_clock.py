"""The stage clock (bench/clock.py) on small programs, with a time that moves only when they say so."""

import asyncio
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is Python 3.12 and later")

HERE = __name__


class FakeTime:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance(self, ns: int) -> None:
        self.ns += ns


TIME = FakeTime()


def handle(n: int) -> None:
    TIME.advance(3)
    parse(n)
    TIME.advance(2)


def parse(n: int) -> None:
    TIME.advance(n)


def refuse() -> None:
    TIME.advance(7)
    raise ValueError("refused")


async def serve(turns: int) -> None:
    TIME.advance(1)
    await work(turns)
    TIME.advance(1)


async def work(turns: int) -> None:
    for _ in range(turns):
        TIME.advance(10)
        await asyncio.sleep(0)  # the other requests, and `elsewhere`, run meanwhile
        TIME.advance(10)


async def elsewhere(turns: int) -> None:
    """Unclocked code that takes its time while the clocked coroutines wait."""
    for _ in range(turns):
        TIME.advance(1000)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> Iterator[object]:
    from bench.clock import Clock

    stages = {
        "outer": (f"{HERE}:handle", f"{HERE}:serve", f"{HERE}:refuse"),
        "inner": (f"{HERE}:parse", f"{HERE}:work"),
    }
    clock = Clock(stages, now=TIME)
    clock.start()
    try:
        yield clock
    finally:
        clock.stop()


def test_a_stage_is_charged_its_own_time_less_the_clocked_calls_inside_it(clock):
    before = clock.totals()
    handle(40)
    handle(60)
    taken = clock.totals().since(before)
    assert taken.ns_by_stage == {"outer": 10, "inner": 100}
    assert taken.requests == 2  # returns from the first function named
    assert taken.at_ns == 110
    assert taken.us_per_request() == {"outer": 0.005, "inner": 0.05}
    assert taken.unbalanced == 0


def test_an_exception_ends_the_clock_of_each_frame_it_leaves(clock):
    before = clock.totals()
    with pytest.raises(ValueError):
        refuse()
    handle(5)
    taken = clock.totals().since(before)
    assert taken.ns_by_stage == {"outer": 12, "inner": 5}
    assert taken.unbalanced == 0


def test_coroutines_are_charged_only_while_they_run_even_interleaved(clock):
    async def two_at_once() -> None:
        await asyncio.gather(serve(3), elsewhere(4), serve(2))

    before = clock.totals()
    asyncio.run(two_at_once())
    taken = clock.totals().since(before)
    # Each turn runs 10 + 10 in `work`, and each `serve` 2 of its own; the 4,000 that passes in `elsewhere`
    # while they wait is nobody's.
    assert taken.ns_by_stage == {"outer": 4, "inner": 5 * 20}
    assert taken.at_ns == 4 + 100 + 4000
    assert taken.unbalanced == 0
    assert taken.requests == 0  # the entry is `handle`, the first function named, which did not run


@pytest.mark.e2e
def test_the_clock_times_a_live_server_it_runs_and_counts_its_requests(tmp_path):
    import httpx

    from bench.budget import BODY, CLOCKED, clocked, read_clock
    from bench.lineup import RAW_LIMIT, servers
    from bench.process import running

    raw = next(s for s in servers(with_peers=False) if s.name == RAW_LIMIT)
    out = tmp_path / "clock.json"
    with running(clocked(raw, "raw", out)) as live, httpx.Client(base_url=live.url) as client:
        before = read_clock(live.pid, out)
        for _ in range(20):
            client.post("/predict", content=BODY, headers={"content-type": "application/json"}).raise_for_status()
        taken = read_clock(live.pid, out).since(before)
    assert taken.requests == 20
    assert taken.unbalanced == 0
    assert all(taken.ns_by_stage[stage] > 0 for stage in CLOCKED["raw"]), taken.ns_by_stage
