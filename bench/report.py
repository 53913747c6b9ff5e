"""BENCHMARKS.md: the machine, the command, one table row per server and concurrency, and the ratios."""

import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lineup import OURS
from bench.loads import Result


@dataclass(frozen=True)
class Measured:
    cold_start_s: float
    rss_mib: float
    results: list[Result]

    def at(self, concurrency: int) -> Result:
        return next(r for r in self.results if r.concurrency == concurrency)


def report(measured: dict[str, Measured], *, command: str, duration: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores of {_cpu()}, "
        f"{_mem_gib():.0f} GiB, Python {platform.python_version()}, Linux {platform.release()}. The load "
        "generators share the machine with the server: `hey` for HTTP, `h2load` (nghttp2) for gRPC, each "
        "connection with one request in flight. One 784-pixel image per request.",
        "",
        f"Command: `{command}` ({duration:g} s of load per cell; `make bench` installs MLServer into "
        "bench/.venv-mlserver and runs `python -m bench`). Access logs off for every server; MLServer with its "
        "defaults plus adaptive batching (max 64 rows, 1 ms).",
        "",
        "| server | cold start | RSS | c | requests | errors | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in measured.items():
        for i, r in enumerate(m.results):
            head = f"| {name} | {m.cold_start_s:.1f} s | {m.rss_mib:.0f} MiB" if i == 0 else "| | |"
            cells = (r.concurrency, r.requests, r.errors, f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}")
            lines.append(f"{head} | " + " | ".join(map(str, cells)) + " |")
    return "\n".join([*lines, "", *_ratios(measured), ""])


def _ratios(measured: dict[str, Measured]) -> list[str]:
    ours = measured.get(f"{OURS} (/predict)")
    if ours is None:
        return []
    lines = ["## Ratios within this run", ""]
    raw = measured.get("raw ASGI + orjson, no model (limit)")
    for c in (16, 64):
        parts = [f"{ours.at(c).rps:,.0f} req/s"]
        if raw:
            parts.append(f"{ours.at(c).rps / raw.at(c).rps:.0%} of the raw ASGI limit")
        for other in ("FastAPI + SavedModel per request", "MLServer 1.7, adaptive batching"):
            if other in measured:
                parts.append(f"{ours.at(c).rps / measured[other].at(c).rps:.1f}x {other}")
        lines.append(f"- /predict at c={c}: " + "; ".join(parts) + f"; errors {ours.at(c).errors}.")
    if raw:
        p50 = ours.at(1).p50_ms
        lines.append(f"- /predict at c=1: p50 {p50:.2f} ms, {p50 / raw.at(1).p50_ms:.1f}x the raw limit's.")
    lines += _grpc_ratios(measured, ours)
    return lines


def _grpc_ratios(measured: dict[str, Measured], rest: Measured) -> list[str]:
    lines = []
    for name in (f"{OURS} (gRPC v2 ModelInfer)", f"{OURS} (gRPC TF Serving Predict)"):
        grpc = measured.get(name)
        if grpc is None:
            continue
        for c in (16, 64):
            verdict = "meets" if grpc.at(c).rps >= rest.at(c).rps else "misses"
            parts = [
                f"{grpc.at(c).rps / rest.at(c).rps:.0%} of /predict's throughput ({verdict} the goal of at least 100%)"
            ]
            noop = measured.get("no-op grpc.aio server (gRPC limit)")
            if noop:
                parts.append(f"{grpc.at(c).rps / noop.at(c).rps:.0%} of the no-op grpc.aio limit")
            mlserver = measured.get("MLServer 1.7 gRPC, adaptive batching")
            if mlserver:
                parts.append(f"{grpc.at(c).rps / mlserver.at(c).rps:.1f}x MLServer's gRPC")
            lines.append(f"- {name.removeprefix(OURS).strip(' ()')} at c={c}: " + "; ".join(parts) + ".")
    return lines


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _mem_gib() -> float:
    match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    return int(match.group(1)) / 1024 / 1024 if match else float("nan")
