"""`python -m bench`: this service side by side with the servers a user would pick instead.

Every server runs on 127.0.0.1 in turn, with one process or worker. `hey` sends one 784-pixel image
per HTTP request and `h2load` one per gRPC call, at each concurrency. Peers run from virtualenvs the
bench builds once (bench/.venv-*), each with its batching wait window swept. Then the per-request time
budget (bench/budget.py) and the scaling figures (bench/scaling.py). Results, machine and command go to
BENCHMARKS.md, with a plot. Timings are compared only as ratios within one run.
"""

import argparse
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import budget, loads, scaling
from bench.lineup import OURS, ROOT, Server, servers
from bench.process import ServerFailed, rss_mib, running
from bench.report import PREDICT, Measured, plot, report
from bench.venvs import VenvFailed, ensure

CONCURRENCY = (1, 16, 64)
KEPT_SECTION = "\n## Image preprocessing"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per concurrency (default 8)")
    parser.add_argument("--only", nargs="*", help="run only these servers (names as in the table)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="report path")
    parser.add_argument(
        "--no-peers", action="store_true", help="skip MLServer, LitServe, BentoML, Ray Serve and KServe (own venvs)"
    )
    parser.add_argument(
        "--no-budget",
        action="store_true",
        help="skip the per-request time budget (its stage clock needs Python 3.12 or later)",
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1- and 2-worker scaling figures")
    args = parser.parse_args()
    if not args.no_budget and sys.version_info < (3, 12):
        sys.exit("the time budget's stage clock uses sys.monitoring (Python 3.12 and later); pass --no-budget")
    for tool in ("hey", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs `{tool}` (Debian: apt-get install hey nghttp2-client)")
    table = [s for s in servers(with_peers=not args.no_peers) if not args.only or s.name in args.only]
    measured: dict[str, Measured] = {}
    for server in table:
        print(f"== {server.name}", flush=True)
        measured[server.name] = _measure_best(server, args.duration)
    command = " ".join(["python -m bench", *sys.argv[1:]])
    costs = _model_costs(measured)
    extra = [] if args.no_budget else budget.run(args.duration)
    if not args.no_scaling:
        extra += scaling.lines(scaling.measure(args.duration), scaling.memory_stages())
    text = report(measured, table, command=command, duration=args.duration, model_costs=costs, extra=extra)
    (args.out.parent / "docs").mkdir(exist_ok=True)
    plot(measured, args.out.parent / "docs" / "benchmarks.png")
    args.out.write_text(text + _kept(args.out))
    print(text)
    return 0


def _model_costs(measured: dict[str, Measured]) -> dict[str, Any] | None:
    """The serving runtime's bare calls at the batches /predict formed under load, for the composed limit."""
    ours = measured.get(PREDICT)
    if ours is None or ours.failure or not ours.mean_batches:
        return None
    batches = sorted({budget.formed_batch(b) for b in ours.mean_batches if math.isfinite(b)})
    return budget.measure_model_costs(batches)


def _kept(out: Path) -> str:
    """The sections other commands keep in the report (`python -m bench.images`'s), from KEPT_SECTION on."""
    old = out.read_text() if out.exists() else ""
    return old[old.index(KEPT_SECTION) :] if KEPT_SECTION in old else ""


def _measure_best(server: Server, duration: float) -> Measured:
    """The server measured once per wait window; at each concurrency, the window with the most req/s."""
    try:
        python = str(ensure(server.venv)) if server.venv else sys.executable
    except VenvFailed as e:
        return Measured.failed(str(e))
    runs = []
    for window in server.windows_ms or (0.0,):
        try:
            runs.append(_measure(server, python, duration, window))
        except ServerFailed as e:
            if server.venv is None:
                raise  # one of ours, or a baseline in this environment: a bug to fix, not a row
            print(f"   {server.name} failed: {e}", flush=True)
            return Measured.failed(str(e).splitlines()[0])
    return Measured.best(runs)


def _measure(server: Server, python: str, duration: float, window_ms: float) -> Measured:
    """Each concurrency in turn; for ours, also the mean batch it formed (rows per model call)."""
    ours = server.name.startswith(OURS)
    with running(server, python=python, window_ms=window_ms) as live:
        port = live.grpc_port if server.load.protocol == "grpc" else live.port
        results, batches = [], []
        try:
            loads.run(server.load, port, 1, 1.0)  # warm-up
            for c in CONCURRENCY:
                before = budget.batch_totals(live.port) if ours else (0.0, 0.0)
                results.append(loads.run(server.load, port, c, duration))
                if ours:
                    batches.append(budget.mean_batch_since(live.port, before))
        except subprocess.CalledProcessError as e:
            raise ServerFailed(f"{server.name}: the load generator failed: {e.stderr or e}") from e
        rss = rss_mib(live.pid)
    setting = f"{window_ms:g} ms" if server.windows_ms else ""
    return Measured(live.cold_start_s, rss, results, [setting] * len(results), mean_batches=batches)


if __name__ == "__main__":
    sys.exit(main())
