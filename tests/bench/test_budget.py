"""The bench's own logic: how py-spy's samples are put in stages, and how a swept peer's best is chosen."""

import math

from bench.budget import BARE_CALL, DECODE, LOOP, OUTSIDE, main_thread_stages, per_row, stage_of
from bench.lineup import RAW_LIMIT
from bench.loads import Result
from bench.report import PREDICT, Measured, composed_limit

ROOT_FRAMES = [
    "_run_module_as_main (<frozen runpy>:198)",
    "main (service/__main__.py:33)",
    "_run_loop (service/server.py:136)",
    "Runner.run (asyncio/runners.py:118)",
]


def test_the_innermost_frame_a_rule_claims_names_the_stage():
    endpoint = [
        "RequestContextMiddleware.__call__ (service/rest/middleware.py:50)",
        "FastRoute._answer (service/rest/routing.py:42)",
        "PredictApi.predict (service/rest/predict.py:52)",
    ]
    assert stage_of([*ROOT_FRAMES, *endpoint, "parse_json (service/rest/codec.py:43)"]) == DECODE
    assert stage_of([*ROOT_FRAMES, *endpoint, "predict_integers (service/inputs/__init__.py:73)"]) == DECODE
    assert stage_of([*endpoint, "_record (service/rest/middleware.py:70)"]) == "middleware: ids, metrics, logs"
    model = ["DynamicBatcher._compute (service/core/batcher.py:154)", "serve (contract/signature.py:77)"]
    assert stage_of([*ROOT_FRAMES, "DynamicBatcher._run (service/core/batcher.py:116)", *model]) == "model call"
    assert stage_of([*ROOT_FRAMES, "HttpToolsProtocol.data_received (uvicorn/protocols/http/h.py:1)"]) == OUTSIDE


def test_a_stack_of_only_the_loop_runner_is_the_loop_and_a_bare_task_step_is_queueing():
    assert stage_of(ROOT_FRAMES) == LOOP
    assert stage_of([*ROOT_FRAMES, "Task.__step (asyncio/tasks.py:293)"]) == "queueing and futures"
    assert stage_of(["something (elsewhere.py:1)"]) == "other Python"


def test_only_the_main_threads_samples_are_counted():
    raw = "\n".join(
        [
            "thread (1): MainThread;" + ";".join(ROOT_FRAMES) + " 7",
            "thread (1): MainThread;parse_json (service/rest/codec.py:43) 3",
            "thread (2): Thread-1 (_poll_wrapper);Thread.run (threading.py:992) 90",
        ]
    )
    assert main_thread_stages(raw) == {LOOP: 7, DECODE: 3}


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
