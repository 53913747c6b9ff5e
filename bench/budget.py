"""Where a /predict request's time goes, in µs per request, by stage: two methods side by side.

1. **Sampling** (`py-spy record --idle --nonblocking`): the live server under `hey` at c=1 and c=16.
   Each sample of the event loop's thread is put in one stage by the innermost frame that a rule in
   STAGES claims (TensorFlow's own threads are C++ and never sampled: the loop waits for them inside
   the model call). A stage's µs per request = its share of the samples x the wall time / the requests.
   Samples with nothing but the loop's runner on the stack are the loop waiting in epoll, or uvloop's
   own C (reading sockets, waking tasks); py-spy cannot tell these apart.
2. **Micro-benchmarks**: each stage's own code, called in-process on the same request (median of many
   calls), and the whole app called in-process as uvicorn would call it. What HTTP, uvicorn, the kernel
   and the client add is the raw ASGI limit's measured latency less the raw app's in-process time.

The check: at c=1, the micro-benchmarks' sum against the latency `hey` measured; at c=16, against the
event loop's time per request (1 / req/s, since the one loop is what saturates).
"""

import asyncio
import functools
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import hey
from bench.lineup import OURS, RAW_LIMIT, ROOT, servers
from bench.loads import IMAGE
from bench.process import running

OUTSIDE = "outside the app: HTTP parsing, uvicorn, kernel and client"
# NOTE: one stage: the common body is decoded straight into its types (`inputs.predict_integers`), in C.
DECODE = "JSON decode and validation"
LOOP = "event loop: waiting in epoll, or uvloop's own C"
# (stage, what a frame's "function (file:line)" text contains); the innermost frame that matches wins.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("model call", ("tensorflow/", "contract/signature.py", "service/core/model.py", "service/runtimes/")),
    ("response build and encode", ("_predictions ", "json_response ", "dumps (service", "starlette/responses.py")),
    ("body read", ("starlette/requests.py", "_LimitedReceive", "RequestResponseCycle.receive")),
    (DECODE, ("service/inputs/", "service/rest/codec.py", "service/rest/predict.py")),
    ("queueing and futures", ("service/core/batcher.py", "service/core/dataplane.py", "service/core/manager.py")),
    (
        "middleware: ids, metrics, logs",
        ("service/rest/middleware.py", "prometheus_client/", "service/metrics.py", "logging/", "service/logs.py"),
    ),
    ("routing: Starlette and FastAPI", ("starlette/", "fastapi/", "service/rest/routing.py")),
    (OUTSIDE, ("uvicorn/", "httptools")),
]
_RUNNER = ("asyncio/runners.py", "asyncio/base_events.py", "service/server.py", "<frozen runpy>", "service/__main__.py")


def stage_of(frames: list[str]) -> str:
    """The stage a sampled stack (outermost frame first) was in."""
    for frame in reversed(frames):
        for stage, marks in STAGES:
            if any(mark in frame for mark in marks):
                return stage
    if all(any(mark in f for mark in _RUNNER) for f in frames):
        return LOOP
    if any("asyncio/" in f for f in frames):  # a task's step, a future's callback
        return "queueing and futures"
    return "other Python"


def main_thread_stages(raw: str) -> Counter[str]:
    """Samples by stage, from py-spy's raw (collapsed) output with --threads: the main thread's only."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        thread, *frames = stack.split(";")
        if "MainThread" in thread:
            counts[stage_of(frames)] += int(n)
    return counts


@dataclass(frozen=True)
class Sampled:
    concurrency: int
    rps: float
    mean_ms: float
    mean_batch: float
    us_by_stage: dict[str, float]


def sample(pid: int, port: int, body: bytes, concurrency: int, seconds: float, py_spy: str) -> Sampled:
    """py-spy on the server while `hey` holds `concurrency` requests in flight; hey runs a second longer
    on each side, so the sampled window is steady load."""
    url = f"http://127.0.0.1:{port}/predict"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body").write_bytes(body)
        before = batch_totals(port)
        load = subprocess.Popen(
            hey.command(url, Path(tmp) / "body", concurrency, seconds + 2), stdout=subprocess.PIPE, text=True
        )
        time.sleep(1)
        out = Path(tmp) / "raw.txt"
        record = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--duration", str(int(seconds))]
        record += ["--format", "raw", "--idle", "--nonblocking", "--threads", "-o", str(out)]
        subprocess.run(record, check=True, capture_output=True)
        summary = load.communicate()[0]
        counts = main_thread_stages(out.read_text())
    rps, mean_ms = hey.requests_per_second(summary), hey.mean_ms(summary)
    total = sum(counts.values())
    per_request_us = 1e6 / rps
    return Sampled(
        concurrency, rps, mean_ms, mean_batch_since(port, before),
        {stage: n / total * per_request_us for stage, n in counts.items()},
    )  # fmt: skip


def batch_totals(port: int) -> tuple[float, float]:
    """(rows, model calls) so far, from the server's mnist_batch_size histogram."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = dict(re.findall(r"^mnist_batch_size_(sum|count) ([\d.e+]+)$", text, re.MULTILINE))
    return float(found.get("sum", 0)), float(found.get("count", 0))


def mean_batch_since(port: int, before: tuple[float, float]) -> float:
    """Rows per model call since `before` (`batch_totals` then); NaN if the model was not called."""
    rows, calls = (now - then for now, then in zip(batch_totals(port), before, strict=True))
    return rows / calls if calls else float("nan")


def formed_batch(mean_batch: float) -> int:
    """The batch size a mean batch stands for, in the bare calls timed at it."""
    return max(1, round(mean_batch))


# -- micro-benchmarks --------------------------------------------------------------------------------


def _median_us(call: Callable[[], object], n: int = 3000, before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(n):
        if before is not None:  # untimed
            before()
        t = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1000


async def _amedian_us(call: Callable[[], Awaitable[object]], n: int = 3000) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await call()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1000


def _scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/predict", "raw_path": b"/predict", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    }  # fmt: skip


def _receiver(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _discard(message: dict[str, Any]) -> None:
    return None


class _LoneClient:
    def possible(self) -> bool:
        return False


@asynccontextmanager
async def _serving_core(model_dir: Path) -> AsyncIterator[tuple[Any, Any, Any, Any]]:
    """(settings, metrics, manager, plane) as the server wires them, with one lone client connected."""
    from service.config import Settings
    from service.core.arrivals import Arrivals
    from service.core.dataplane import DataPlane
    from service.core.manager import ModelManager
    from service.metrics import Metrics
    from service.runtimes import default_accelerators, default_runtimes

    settings = Settings(model_dir=model_dir, poll_interval_s=0, access_log=False)
    metrics = Metrics()
    lone = Arrivals((_LoneClient(),))  # as under `hey -c 1`: one connection, its request in the app
    manager = ModelManager(
        settings,
        runtimes=default_runtimes(settings),
        accelerators=default_accelerators(settings),
        metrics=metrics,
        arrivals=lone.possible,
    )
    await manager.start()
    try:
        yield settings, metrics, manager, DataPlane(manager, default_model=settings.default_model)
    finally:
        await manager.stop()


async def micro(model_dir: Path, body: bytes, batch: int) -> dict[str, float]:
    """µs per call of each stage's own code, and of the whole app, in this process; the bare model
    call (the runtime that serves, as the default settings choose it) also per row at `batch` rows."""
    from starlette.requests import Request

    from bench.servers import raw_asgi
    from service import inputs
    from service.core.arrivals import HttpArrivals
    from service.core.dataplane import ModelRef
    from service.rest import codec
    from service.rest.app import create_app
    from service.rest.middleware import RequestContextMiddleware, _LimitedReceive
    from service.rest.predict import _predictions

    async with _serving_core(model_dir) as (settings, metrics, manager, plane):
        default = ModelRef(None)
        app = create_app(settings, plane, manager=manager, metrics=metrics, arrivals=HttpArrivals())
        scope, read = _scope(body), inputs.predict_integers(body, max_images=settings.max_request_images)
        assert read is not None, "the bench's body is the common one"
        x = read[0]
        result = await plane.infer(default, x)
        served = manager.resolve(settings.default_model).model

        async def noop_app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        wrapped = RequestContextMiddleware(
            noop_app, metrics=metrics, max_body_bytes=settings.max_body_bytes,
            body_timeout_s=settings.body_timeout_s, access_log=False, arrivals=HttpArrivals(),
        )  # fmt: skip
        limited = settings.max_body_bytes, settings.body_timeout_s
        stages = {
            "body read": await _amedian_us(lambda: Request(scope, _LimitedReceive(_receiver(body), *limited)).body()),
            DECODE: _median_us(lambda: inputs.predict_integers(body, max_images=settings.max_request_images)),
            "model call, as the batcher makes it": _median_us(lambda: served.predict(x)),
            "infer: batcher and model": await _amedian_us(lambda: plane.infer(default, x)),
            "response build and encode": await _amedian_us(
                lambda: codec.json_response({"predictions": _predictions(result)})(scope, _receiver(b""), _discard)
            ),
            "middleware: ids, metrics, logs": (
                await _amedian_us(lambda: wrapped(scope, _receiver(body), _discard))
                - await _amedian_us(lambda: noop_app(scope, _receiver(body), _discard))
            ),
            "whole app, in process": await _amedian_us(lambda: app(scope, _receiver(body), _discard)),
            "raw ASGI app, in process": await _amedian_us(lambda: raw_asgi.app(scope, _receiver(body), _discard)),
        }
        return stages | _bare_calls(served.runtime, x, [batch])


def _bare_calls(runtime: Any, x: Any, batches: list[int]) -> dict[str, float]:
    """The runtime's own predict, without the batcher's padding and checks: µs at two rows (warm, and with
    the weights flushed from the caches before each call), and µs per row at each of `batches` rows."""
    import numpy as np

    two = np.repeat(x, 2, axis=0)
    flush = np.ones(CACHE_FLUSH_BYTES // 8)  # read through before each call: the weights leave the caches
    costs = {
        BARE_CALL: _median_us(lambda: runtime.predict(two)),
        f"{BARE_CALL}, caches flushed": _median_us(lambda: runtime.predict(two), n=500, before=flush.sum),
    }
    for batch in batches:
        rows = np.repeat(x, batch, axis=0)
        call = functools.partial(runtime.predict, rows)
        costs[per_row(batch)] = _median_us(call, n=max(200, 3000 // batch)) / batch
    return costs


def per_row(batch: int) -> str:
    return f"model call per row, bare runtime, at {batch} rows"


async def model_costs(model_dir: Path, batches: list[int]) -> dict[str, Any]:
    """The engine that serves the default model under the default settings, and its bare calls."""
    import numpy as np

    async with _serving_core(model_dir) as (settings, _, manager, _):
        runtime = manager.resolve(settings.default_model).model.runtime
        x = np.asarray([IMAGE], dtype=np.float32)
        return {"engine": runtime.engine, **_bare_calls(runtime, x, batches)}


def measure_model_costs(batches: list[int]) -> dict[str, Any]:
    """`model_costs` in a fresh process (its TensorFlow and threads apart from the bench's)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.budget", "costs", *map(str, batches)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- the report section --------------------------------------------------------------------------------

BODY = json.dumps({"image": IMAGE}).encode()
CACHE_FLUSH_BYTES = 64 * 2**20  # twice this machine's L3
BARE_CALL = "model call (bare runtime, batch of 2)"
ROWS = [
    OUTSIDE,
    "body read",
    DECODE,
    "queueing and futures",
    "model call",
    "response build and encode",
    "middleware: ids, metrics, logs",
    "routing: Starlette and FastAPI",
    LOOP,
    "other Python",
]


def run(seconds: float) -> list[str]:
    """Sample /predict at c=1 and c=16, time the raw limit at c=1 and 16, then the micro-benchmarks: the
    report's section."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    by_name = {s.name: s for s in servers(with_peers=False)}
    with running(by_name[f"{OURS} (/predict)"]) as live:
        _hey(live.port, 1, 1.0)  # warm-up
        alone = _hey(live.port, 1, seconds)  # unsampled: what the micro-benchmarks must add up to
        sampled = [sample(live.pid, live.port, BODY, c, seconds, py_spy) for c in (1, 16)]
    with running(by_name[RAW_LIMIT]) as live:
        raw = [_hey(live.port, c, seconds) for c in (1, 16)]
    batch = formed_batch(sampled[1].mean_batch)
    done = subprocess.run(
        [sys.executable, "-m", "bench.budget", str(batch)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    timed = json.loads(done.stdout.strip().splitlines()[-1])
    return _table(sampled, alone, raw, timed, batch)


def _hey(port: int, concurrency: int, seconds: float) -> tuple[float, float]:
    """(req/s, mean latency in µs) of `hey` against /predict."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body").write_bytes(BODY)
        command = hey.command(f"http://127.0.0.1:{port}/predict", Path(tmp) / "body", concurrency, seconds)
        summary = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return hey.requests_per_second(summary), hey.mean_ms(summary) * 1000


def _micro_column(timed: dict[str, float], raw_c1: tuple[float, float]) -> dict[str, float]:
    """The micro-benchmarks, in the table's stages, for one request alone (c=1)."""
    model = timed["model call, as the batcher makes it"]
    infer = timed["infer: batcher and model"]
    own = ("body read", DECODE, "response build and encode", "middleware: ids, metrics, logs")
    column = {stage: timed[stage] for stage in own}
    column |= {
        OUTSIDE: raw_c1[1] - timed["raw ASGI app, in process"],
        "model call": model,
        "queueing and futures": infer - model,
    }
    column["routing: Starlette and FastAPI"] = timed["whole app, in process"] - sum(column.values()) + column[OUTSIDE]
    return column


def _table(
    sampled: list[Sampled],
    alone: tuple[float, float],
    raw: list[tuple[float, float]],
    timed: dict[str, float],
    batch: int,
) -> list[str]:
    c1, c16 = sampled
    alone_us = alone[1]
    micro_c1 = _micro_column(timed, raw[0])
    # At c=16 one request costs the loop: what it costs uvicorn at saturation (the raw limit's 1/req/s, less
    # its app), the app's own stages without the model, and the model's cost per row at the mean batch.
    app_without_model = timed["whole app, in process"] - timed["infer: batcher and model"]
    row_cost = timed[per_row(batch)]
    estimate_c16 = 1e6 / raw[1][0] - timed["raw ASGI app, in process"] + app_without_model + row_cost
    lines = [
        "## Where a request's time goes",
        "",
        "µs per /predict request, one image, by stage (method: bench/budget.py's docstring). Sampled: py-spy "
        "on the server's event loop under `hey`; its rows add up to the wall time per request by construction. "
        "Micro: each stage's code timed alone in-process (median), plus what the raw ASGI limit shows outside "
        "the app; they are measured apart from the total, so their sum checks it.",
        "",
        "| stage | c=1, sampled | c=16, sampled | c=1, micro-benchmarks |",
        "|---|---|---|---|",
    ]
    for stage in ROWS:
        cells = [c1.us_by_stage.get(stage, 0.0), c16.us_by_stage.get(stage, 0.0)]
        micro = f"{micro_c1[stage]:,.0f}" if stage in micro_c1 else "–"
        lines.append(f"| {stage} | {cells[0]:,.0f} | {cells[1]:,.0f} | {micro} |")
    micro_sum = sum(micro_c1.values())
    lines += [
        f"| **sum** | {sum(c1.us_by_stage.values()):,.0f} | {sum(c16.us_by_stage.values()):,.0f} | {micro_sum:,.0f} |",
        f"| **measured** (mean latency at c=1, 1 / req/s at c=16) | {c1.mean_ms * 1000:,.0f} "
        f"| {1e6 / c16.rps:,.0f} | {alone_us:,.0f} (unsampled) |",
        "",
        f"- At c=1 the micro-benchmarks add up to {micro_sum / alone_us:.0%} of the mean latency `hey` measured "
        f"without the profiler ({alone[0]:,.0f} req/s). Their routing row is derived: the whole app in-process "
        "less its measured stages. The sampler slows the server it samples: at c=1 it measured "
        f"{c1.rps:,.0f} req/s, so read the sampled columns as shares rather than as absolute times.",
        f"- At c=16 the mean batch was {c16.mean_batch:.1f} rows ({c16.rps:,.0f} req/s). Estimated from the "
        f"micro-benchmarks, a request costs the loop {estimate_c16:,.0f} µs: uvicorn at saturation "
        f"{1e6 / raw[1][0] - timed['raw ASGI app, in process']:,.0f} (the raw limit's 1 / req/s, "
        f"{raw[1][0]:,.0f} req/s, less its app), the app without the model {app_without_model:,.0f}, and the "
        f"model's {row_cost:,.0f} per row at {batch} rows; that is {estimate_c16 * c16.rps / 1e6:.0%} of the "
        "measured 1 / req/s.",
        f"- The bare model call (the serving runtime's predict on two rows, in-process): "
        f"{timed[BARE_CALL]:,.0f} µs; as the batcher makes it (padding one row to "
        f"two, checking the output is finite): {timed['model call, as the batcher makes it']:,.0f} µs. With "
        f"{CACHE_FLUSH_BYTES // 2**20} MiB read before each call, so that the weights come from memory again: "
        f"{timed[BARE_CALL + ', caches flushed']:,.0f} µs. A serving process touches "
        "other memory between requests, which is why its sampled model call costs more than the warm one.",
        "",
    ]
    return lines


def _main() -> None:
    """`python -m bench.budget BATCH`: the micro-benchmarks on uvloop, as one JSON line;
    `python -m bench.budget costs BATCH...`: the serving runtime's engine and bare calls."""
    import uvloop

    if sys.argv[1] == "costs":
        print(json.dumps(uvloop.run(model_costs(ROOT / "models", [int(b) for b in sys.argv[2:]]))))
        return
    print(json.dumps(uvloop.run(micro(ROOT / "models", BODY, int(sys.argv[1])))))


if __name__ == "__main__":
    _main()
