"""The bench's own logic: the time budget's tables and check, the verdicts, and how a swept peer's best is chosen."""

import math

from bench.budget import (
    BARE_CALL,
    CLOCKED,
    DECODE,
    OUTSIDE,
    UNCLOCKED,
    Budget,
    Window,
    adds_up,
    per_row,
    table,
)
from bench.clock import Totals, code_of
from bench.lineup import OURS, RAW_LIMIT
from bench.loads import Result
from bench.report import PREDICT, Measured, composed_limit, grpc_ratios


def test_every_function_the_clock_is_told_to_watch_exists():
    for stages in CLOCKED.values():
        for targets in stages.values():
            for target in targets:
                assert code_of(target).co_name == target.rpartition(".")[2].rpartition(":")[2]


def _window(concurrency: int, requests: int, seconds: float, us_by_stage: dict[str, float]) -> Window:
    ns = {stage: round(us * 1000 * requests) for stage, us in us_by_stage.items()}
    return Window(concurrency, Totals(ns, requests, round(seconds * 1e9), 0), mean_batch=float(concurrency))


def test_the_budget_adds_up_when_the_unclocked_time_is_what_the_raw_limit_leaves_unclocked():
    # 1,000 requests in 1 s: 1,000 µs each, of which the stages hold 700; the raw limit leaves 300 unclocked.
    ours = _window(1, 1000, 1.0, {"model call": 500, DECODE: 200})
    raw = _window(1, 2500, 1.0, {"the raw app": 100})
    assert ours.us_by_stage()[UNCLOCKED] == 300
    assert raw.us_by_stage()[UNCLOCKED] == 300
    assert adds_up(ours, raw) == 1.0
    # Had the raw limit left only 100 unclocked, 200 µs of this service's would be in no stage: 80%.
    assert adds_up(ours, _window(1, 5000, 1.0, {"the raw app": 100})) == 0.8


def test_the_section_gives_each_check_its_verdict_and_the_micro_benchmarks_beside_the_clock():
    stages = {"body read": 10, DECODE: 20, "queueing and futures": 30, "model call": 100}
    stages |= {"response build and encode": 20, "middleware: ids, metrics, logs": 20}
    stages |= {"routing: Starlette and FastAPI": 20}
    ours = [_window(1, 1000, 1.0, stages), _window(16, 2000, 1.0, stages)]  # 1,000 and 500 µs a request
    raw = [_window(1, 4000, 1.0, {"the raw app": 50}), _window(16, 8000, 1.0, {"the raw app": 25})]
    micro = {"body read": 5, DECODE: 10, "response build and encode": 10, "middleware: ids, metrics, logs": 10}
    micro |= {"model call, as the batcher makes it": 80, "infer: batcher and model": 100}
    micro |= {"whole app, in process": 180, "raw ASGI app, in process": 30, BARE_CALL: 70}
    micro |= {BARE_CALL + ", caches flushed": 170}
    text = "\n".join(table(Budget(ours, raw, [1250, 2500], [3900, 7900], micro)))
    # c=1: 220 clocked + the raw limit's 200 unclocked = 420 of 1,000 µs; c=16: 220 + 100 of 500.
    assert "come to 42% of the time a request took (1,000): outside the goal of 10%." in text
    assert "come to 64% of the time a request took (500): outside the goal of 10%." in text
    assert "Under the clock a request took 1,000 µs at c=1 and 500 at c=16; without it, 800 and 400" in text
    assert "| model call | 80 | 100 | 1.2x |" in text
    # Outside the app: the raw limit's 256 µs a request less its app's 30; clocked, all 780 µs unclocked.
    assert f"| {OUTSIDE} | 226 | 780 | 3.4x |" in text
    assert "| routing: Starlette and FastAPI | 45 | 20 | 0.4x |" in text  # 180 less the other stages' 135
    # The micro-benchmarks: the whole app's 180 in-process and 226 outside it, against 800 without the clock.
    assert "the micro-benchmarks add up to 51% of the time a request took without the clock (800 µs" in text


def _result(c: int, rps: float) -> Result:
    return Result(concurrency=c, requests=int(rps), errors=0, rps=rps, p50_ms=1.0, p99_ms=2.0)


def test_a_sweep_keeps_each_concurrencys_best_window_and_says_which():
    fast_alone = Measured(5.0, 300.0, [_result(1, 900), _result(16, 1000)], ["1 ms", "1 ms"])
    fast_loaded = Measured(4.0, 350.0, [_result(1, 500), _result(16, 3000)], ["20 ms", "20 ms"])
    best = Measured.best([fast_alone, fast_loaded])
    assert [r.rps for r in best.results] == [900, 3000]
    assert best.settings == ["1 ms", "20 ms"]
    assert (best.cold_start_s, best.rss_mib) == (4.0, 350.0)
    assert math.isnan(Measured.failed("no wheel").rss_mib)


def test_the_composed_limit_adds_the_raw_limits_cost_and_the_runtimes_per_row_cost_at_the_batch_formed():
    raw = Measured(1.0, 50.0, [_result(1, 2000), _result(16, 10_000), _result(64, 8_000)], ["", "", ""])
    ours = Measured(
        5.0, 800.0, [_result(1, 700), _result(16, 4_000), _result(64, 6_000)], ["", "", ""], mean_batches=[1, 15.6, 40]
    )
    costs = {"engine": "litert", BARE_CALL: 250.0, per_row(16): 25.0, per_row(40): 25.0}
    text = "\n".join(composed_limit({PREDICT: ours, RAW_LIMIT: raw}, costs))
    # c=16: 100 µs + 25 µs per request is 8,000 req/s, of which 4,000 is half; c=64: 125 + 25 µs, 6,667 req/s.
    assert "| 16 | 100 µs per request | 15.6 | 25 µs | 8,000 req/s | 4,000 req/s | 50% |" in text
    assert "c=16: 50% of the composed limit (misses" in text
    assert "c=64: 90% of the composed limit (meets" in text
    # c=1: a p50 of 1.0 ms against the raw limit's 1.0 ms plus 0.25 ms is 0.80x.
    assert "0.80x the composed limit's (meets" in text


def test_a_sweep_keeps_the_mean_batch_of_the_run_it_keeps():
    slow = Measured(5.0, 300.0, [_result(16, 1000)], ["1 ms"], mean_batches=[4.0])
    fast = Measured(4.0, 350.0, [_result(16, 3000)], ["20 ms"], mean_batches=[12.0])
    assert Measured.best([slow, fast]).mean_batches == [12.0]


def test_grpc_is_held_to_the_no_op_grpc_servers_req_s_with_a_verdict():
    runs = {
        f"{OURS} (gRPC v2 ModelInfer)": Measured(1.0, 1.0, [_result(16, 790), _result(64, 850)], ["", ""]),
        "no-op grpc.aio server (gRPC limit)": Measured(1.0, 1.0, [_result(16, 1000), _result(64, 1000)], ["", ""]),
    }
    rest = Measured(1.0, 1.0, [_result(16, 1000), _result(64, 800)], ["", ""])
    text = "\n".join(grpc_ratios(runs, rest))
    assert "at c=16: 79% of /predict's throughput (misses" in text
    assert "79% of the no-op grpc.aio limit (misses the goal of at least 80%)" in text
    assert "at c=64: 106% of /predict's throughput (meets" in text
    assert "85% of the no-op grpc.aio limit (meets the goal of at least 80%)" in text
