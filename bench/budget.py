"""Where a /predict request's time goes, in µs per request, by stage: two methods side by side.

1. **The stage clock** (bench/clock.py): the live server under `hey` at c=1 and c=16, with sys.monitoring
   timing the functions CLOCKED names as the server runs them, each stage less the clocked calls inside
   it and less its time waiting at an await. What no stage holds is the event loop's own C (reading
   sockets, waking tasks, epoll), the kernel and, at c=1, the wait for the client. The raw ASGI limit
   runs under the same clock (its app and uvicorn's stages), so what it leaves unclocked is what any
   server on uvicorn leaves.
2. **Micro-benchmarks**: each stage's own code, called in-process on the same request (median of many
   calls), and the whole app called in-process as uvicorn would call it. What HTTP, uvicorn, the kernel
   and the client add is the raw ASGI limit's time per request less the raw app's in-process time.

The check, at c=1 and c=16: the clocked stages plus what the raw limit leaves unclocked, against the time
a request takes (1 / req/s: at c=1 one request at a time, at c=16 the one event loop is what saturates).
The micro-benchmarks are checked the same way, against the server run without the clock.
"""

import asyncio
import dataclasses
import functools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import hey
from bench.clock import Totals
from bench.lineup import OURS, RAW_LIMIT, ROOT, Server, servers
from bench.loads import IMAGE
from bench.process import running

OUTSIDE = "outside the app: HTTP parsing, uvicorn, kernel and client"
# NOTE: one stage: the common body is decoded straight into its types (`inputs.predict_integers`), in C.
DECODE = "JSON decode and validation"
PARSING = "uvicorn: HTTP parsing, and the connection's guards"
CALLING = "uvicorn: calling the app, writing the response"
UNCLOCKED = "in no stage: the event loop's C, the kernel, the client"
_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl:"
_UVICORN = {
    PARSING: (_HTTPTOOLS + "HttpToolsProtocol.data_received", _HTTPTOOLS + "HttpToolsProtocol.on_response_complete"),
    CALLING: (
        _HTTPTOOLS + "RequestResponseCycle.run_asgi",
        _HTTPTOOLS + "RequestResponseCycle.send",
        "uvicorn.middleware.proxy_headers:ProxyHeadersMiddleware.__call__",
    ),
}
# The functions each stage is clocked in, by server; the first named is where a request ends (bench/clock.py).
CLOCKED: dict[str, dict[str, tuple[str, ...]]] = {
    "service": {
        "middleware: ids, metrics, logs": (
            "service.rest.middleware:RequestContextMiddleware.__call__",
            "service.rest.middleware:RequestContextMiddleware._serve",
            "service.rest.middleware:_TaggedSend.__call__",
            "service.metrics:BatcherMetrics.on_batch",
        ),
        "routing: Starlette and FastAPI": (
            "fastapi.applications:FastAPI.__call__",
            "starlette.applications:Starlette.__call__",
            "service.rest.routing:FastRoutesFirst.__call__",
            "service.rest.routing:FastRoute._answer",
            "service.rest.predict:PredictApi.predict",
        ),
        "body read": (
            "starlette.requests:Request.body",
            "service.rest.middleware:_LimitedReceive.__call__",
            _HTTPTOOLS + "RequestResponseCycle.receive",
        ),
        DECODE: ("service.rest.predict:PredictApi._json_body", "service.inputs:predict_integers"),
        "queueing and futures": (
            "service.core.dataplane:DataPlane.infer",
            "service.core.batcher:DynamicBatcher.submit",
            "service.core.batcher:DynamicBatcher._alone",
            "service.core.batcher:DynamicBatcher._run",
            "service.core.batcher:DynamicBatcher._compute",
        ),
        "model call": ("service.core.model:BatchInvariantPredict.__call__",),
        "response build and encode": (
            "service.rest.predict:_predictions",
            "service.rest.codec:json_response",
            "starlette.responses:Response.__call__",
        ),
        **_UVICORN,
    },
    "raw": {"the raw app": ("bench.servers.raw_asgi:app",), **_UVICORN},
}
READ_TIMEOUT_S = 10


def clocked(server: Server, table: str, out: Path) -> Server:
    """`server` (run as `python -m MODULE ...`) under the stage clock, writing its readings to `out`."""
    python, flag, *module = server.command
    assert flag == "-m", f"{server.name} is not run as a module"
    return dataclasses.replace(server, command=[python, "-m", "bench.clock", table, str(out), *module])


def read_clock(pid: int, out: Path) -> Totals:
    """The clock's totals now: it writes them to `out` when told (SIGUSR1)."""
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + READ_TIMEOUT_S
    while not out.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stage clock in process {pid} wrote nothing to {out}")
        time.sleep(0.01)
    return Totals.read(out)


@dataclass(frozen=True)
class Window:
    """A stretch of steady load on a clocked server: the clock's totals over it, and the batches formed."""

    concurrency: int
    totals: Totals
    mean_batch: float

    def us_by_stage(self) -> dict[str, float]:
        """µs per request by stage, with what no stage holds: the rest of the time per request."""
        return self.totals.us_per_request() | {UNCLOCKED: self.us_per_request() - self.clocked_us()}

    def clocked_us(self) -> float:
        """µs per request in all the clocked stages together."""
        return sum(self.totals.us_per_request().values())

    def us_per_request(self) -> float:
        return 1e6 / self.totals.requests_per_second()


def clock_windows(server: Server, table: str, seconds: float, concurrencies: tuple[int, ...]) -> list[Window]:
    """`server` under the clock, read at the start and end of `seconds` of load at each concurrency; the load
    runs a second longer on each side, so the window is steady."""
    with tempfile.TemporaryDirectory() as tmp:
        out, body = Path(tmp) / "clock.json", Path(tmp) / "body"
        body.write_bytes(BODY)
        with running(clocked(server, table, out)) as live:
            url = f"http://127.0.0.1:{live.port}/predict"
            subprocess.run(hey.command(url, body, 1, 1), capture_output=True, check=True)  # warm-up
            windows = []
            for concurrency in concurrencies:
                with _load(hey.command(url, body, concurrency, seconds + 2)):
                    time.sleep(1)
                    before, batches = read_clock(live.pid, out), batch_totals(live.port) if table == "service" else None
                    time.sleep(seconds)
                    totals = read_clock(live.pid, out).since(before)
                    if totals.unbalanced:  # some clocked frame left unseen: its time went to the wrong stage
                        raise RuntimeError(f"the stage clock lost track of {totals.unbalanced} exits in {server.name}")
                    mean_batch = mean_batch_since(live.port, batches) if batches else float("nan")
                windows.append(Window(concurrency, totals, mean_batch))
            return windows


@contextmanager
def _load(command: list[str]) -> Iterator[None]:
    load = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        if load.wait() != 0:
            raise RuntimeError(f"{command[0]} failed: {load.returncode}")


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


async def micro(model_dir: Path, body: bytes) -> dict[str, float]:
    """µs per call of each stage's own code, and of the whole app, in this process; and the bare model call
    (the runtime that serves, as the default settings choose it)."""
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
        return stages | _bare_calls(served.runtime, x, [])


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
APP_STAGES = [
    "body read",
    DECODE,
    "queueing and futures",
    "model call",
    "response build and encode",
    "middleware: ids, metrics, logs",
    "routing: Starlette and FastAPI",
]
ROWS = [PARSING, *APP_STAGES, "the raw app", CALLING, UNCLOCKED]


@dataclass(frozen=True)
class Budget:
    """What `run` measured: the clocked windows at c=1 and c=16, the same servers' req/s at c=1 and c=16 without
    the clock, and the micro-benchmarks (`micro`)."""

    ours: list[Window]
    raw: list[Window]
    ours_rps: list[float]
    raw_rps: list[float]
    micro: dict[str, float]


def run(seconds: float) -> list[str]:
    """This service's /predict and the raw limit, each at c=1 and c=16 without the clock and then under it,
    then the micro-benchmarks: the report's section."""
    by_name = {s.name: s for s in servers(with_peers=False)}
    ours, raw = by_name[f"{OURS} (/predict)"], by_name[RAW_LIMIT]
    unclocked = {}
    for server in (ours, raw):
        with running(server) as live:
            _hey(live.port, 1, 1.0)  # warm-up
            unclocked[server.name] = [_hey(live.port, c, seconds) for c in (1, 16)]
    ours_windows = clock_windows(ours, "service", seconds, (1, 16))
    raw_windows = clock_windows(raw, "raw", seconds, (1, 16))
    done = subprocess.run(
        [sys.executable, "-m", "bench.budget", "micro"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    micro = json.loads(done.stdout.strip().splitlines()[-1])
    return table(Budget(ours_windows, raw_windows, unclocked[ours.name], unclocked[raw.name], micro))


def _hey(port: int, concurrency: int, seconds: float) -> float:
    """The req/s of `hey` against /predict."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body").write_bytes(BODY)
        command = hey.command(f"http://127.0.0.1:{port}/predict", Path(tmp) / "body", concurrency, seconds)
        summary = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return hey.requests_per_second(summary)


def micro_column(micro: dict[str, float], raw_us: float) -> dict[str, float]:
    """The micro-benchmarks in the app's stages for one request alone (c=1), and what is outside the app: the
    raw limit's time per request (`raw_us`, at c=1) less its app's in-process time."""
    model = micro["model call, as the batcher makes it"]
    own = ("body read", DECODE, "response build and encode", "middleware: ids, metrics, logs")
    column = {stage: micro[stage] for stage in own}
    column |= {"model call": model, "queueing and futures": micro["infer: batcher and model"] - model}
    column["routing: Starlette and FastAPI"] = micro["whole app, in process"] - sum(column.values())
    return column | {OUTSIDE: raw_us - micro["raw ASGI app, in process"]}


def adds_up(ours: Window, raw: Window) -> float:
    """The clocked stages plus what the raw limit leaves unclocked, as a share of the time a request took."""
    return (ours.clocked_us() + raw.us_by_stage()[UNCLOCKED]) / ours.us_per_request()


def table(budget: Budget) -> list[str]:
    """The report's section: the clocked table, its check, and the micro-benchmarks beside the clock."""
    ours, raw, micro = budget.ours, budget.raw, budget.micro
    lines = [
        "## Where a request's time goes",
        "",
        "µs per /predict request, one image, by stage, timed in the live server by the stage clock "
        "(bench/clock.py; the method is in bench/budget.py's docstring), under `hey` at c=1 and c=16; the raw "
        "ASGI limit under the same clock beside it. Each stage is the time its functions ran, less the "
        "clocked functions inside them and less any wait at an await. The last row is what no stage holds.",
        "",
        "| stage | c=1 | c=16 | raw limit, c=1 | raw limit, c=16 |",
        "|---|---|---|---|---|",
    ]
    columns = [w.us_by_stage() for w in (*ours, *raw)]
    for stage in ROWS:
        cells = (f"{c[stage]:,.0f}" if stage in c else "–" for c in columns)
        lines.append(f"| {stage} | {' | '.join(cells)} |")
    lines += [
        "| **time per request** (1 / req/s) | "
        + " | ".join(f"{w.us_per_request():,.0f}" for w in (*ours, *raw))
        + " |",
        "| req/s under the clock, and without it | "
        + " | ".join(f"{w.totals.requests_per_second():,.0f}, {rps:,.0f}" for w, rps in zip(
            (*ours, *raw), (*budget.ours_rps, *budget.raw_rps), strict=True))
        + " |",
        "",
    ]  # fmt: skip
    for ours_c, raw_c in zip(ours, raw, strict=True):
        share = adds_up(ours_c, raw_c)
        verdict = "within" if abs(share - 1) <= 0.10 else "outside"
        lines.append(
            f"- c={ours_c.concurrency}: the clocked stages ({ours_c.clocked_us():,.0f} µs) plus what the raw limit "
            f"leaves unclocked ({raw_c.us_by_stage()[UNCLOCKED]:,.0f}) come to {share:.0%} of the time a request took "
            f"({ours_c.us_per_request():,.0f}): {verdict} the goal of 10%."
        )
    without = [1e6 / rps for rps in budget.ours_rps]
    lines += [
        "- The clock's own cost is inside these figures: each clocked call costs two Python callbacks, about 1 µs. "
        f"Under the clock a request took {ours[0].us_per_request():,.0f} µs at c=1 and "
        f"{ours[1].us_per_request():,.0f} at c=16; without it, {without[0]:,.0f} and {without[1]:,.0f} (this "
        "machine's noise moves both). The check compares the clocked server with itself, so the clock's cost "
        "cancels there; the stage figures each carry a share of it.",
        f"- At c=16 the mean batch was {ours[1].mean_batch:.1f} rows.",
        "",
        "The micro-benchmarks beside it: each stage's own code called in-process in a loop (median), the "
        "routing row the whole app in-process less the other stages, and outside the app the raw limit's time "
        "per request less its app's. Clocked: the c=1 column above, outside the app being uvicorn's two stages "
        "and what no stage holds.",
        "",
        "| stage | micro-benchmark | clocked, c=1 | clocked / micro |",
        "|---|---|---|---|",
    ]
    micro_c1 = micro_column(micro, 1e6 / budget.raw_rps[0])
    live = dict(ours[0].us_by_stage())
    live[OUTSIDE] = sum(live.pop(stage, 0.0) for stage in (PARSING, CALLING, UNCLOCKED))
    for stage in [*APP_STAGES, OUTSIDE]:
        ratio = live[stage] / micro_c1[stage]
        lines.append(f"| {stage} | {micro_c1[stage]:,.0f} | {live[stage]:,.0f} | {ratio:.1f}x |")
    micro_sum, measured = sum(micro_c1.values()), 1e6 / budget.ours_rps[0]
    lines += [
        f"| **sum** | {micro_sum:,.0f} | {sum(live.values()):,.0f} | |",
        "",
        f"- At c=1 the micro-benchmarks add up to {micro_sum / measured:.0%} of the time a request took without "
        f"the clock ({measured:,.0f} µs, {budget.ours_rps[0]:,.0f} req/s).",
        f"- The bare model call (the serving runtime's predict on two rows, in-process): "
        f"{micro[BARE_CALL]:,.0f} µs; as the batcher makes it (padding one row to "
        f"two, checking the output is finite): {micro['model call, as the batcher makes it']:,.0f} µs. With "
        f"{CACHE_FLUSH_BYTES // 2**20} MiB read before each call, so that the weights come from memory again: "
        f"{micro[BARE_CALL + ', caches flushed']:,.0f} µs.",
        "",
    ]
    return lines


def _main() -> None:
    """`python -m bench.budget micro`: the micro-benchmarks on uvloop, as one JSON line;
    `python -m bench.budget costs BATCH...`: the serving runtime's engine and bare calls."""
    import uvloop

    if sys.argv[1] == "costs":
        print(json.dumps(uvloop.run(model_costs(ROOT / "models", [int(b) for b in sys.argv[2:]]))))
        return
    if sys.argv[1:] != ["micro"]:
        sys.exit(_main.__doc__)
    print(json.dumps(uvloop.run(micro(ROOT / "models", BODY))))


if __name__ == "__main__":
    _main()
