"""The bench's own logic: how py-spy's samples are put in stages, and how a swept peer's best is chosen."""

import math

from bench.budget import LOOP, OUTSIDE, main_thread_stages, stage_of
from bench.loads import Result
from bench.report import Measured

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
    assert stage_of([*ROOT_FRAMES, *endpoint, "parse_json (service/rest/codec.py:43)"]) == "JSON decode"
    assert stage_of([*ROOT_FRAMES, *endpoint, "json_image (service/inputs/__init__.py:73)"]) == "validation"
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
    assert main_thread_stages(raw) == {LOOP: 7, "JSON decode": 3}


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
