"""BENCHMARKS.md: the machine, the command, one table row per server and concurrency, the goals' verdicts,
and a plot of throughput by concurrency."""

import math
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.budget import BARE_CALL, formed_batch, per_row
from bench.lineup import OURS, RAW_LIMIT, SAVEDMODEL_RUNTIME, Server
from bench.loads import Result

PREDICT = f"{OURS} (/predict)"
PEER_GOAL_CONCURRENCY = (1, 16, 64)


@dataclass(frozen=True)
class Measured:
    cold_start_s: float
    rss_mib: float
    results: list[Result]
    settings: list[str] = field(default_factory=list)  # per result: the wait window it was measured with
    failure: str | None = None  # why the server could not be measured
    mean_batches: list[float] = field(default_factory=list)  # per result, for ours: rows per model call

    @classmethod
    def failed(cls, why: str) -> "Measured":
        return cls(math.nan, math.nan, [], [], why)

    @classmethod
    def best(cls, runs: list["Measured"]) -> "Measured":
        """One run per setting, combined: at each concurrency, the result with the most req/s."""
        results, settings, batches = [], [], []
        for i in range(len(runs[0].results)):
            best = max(runs, key=lambda m: m.results[i].rps)
            results.append(best.results[i])
            settings.append(best.settings[i])
            batches += best.mean_batches[i : i + 1]
        cold_start = min(m.cold_start_s for m in runs)
        return cls(cold_start, max(m.rss_mib for m in runs), results, settings, mean_batches=batches)

    def at(self, concurrency: int) -> Result:
        return next(r for r in self.results if r.concurrency == concurrency)


def report(
    measured: dict[str, Measured],
    servers: list[Server],
    *,
    command: str,
    duration: float,
    model_costs: dict[str, Any] | None,
    extra: list[str],
) -> str:
    """The whole report: `model_costs` are the serving runtime's bare calls (`bench.budget.model_costs`), for
    the composed limit; `extra` is the sections after the ratios (the time budget, the scaling figures)."""
    lines = [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores of {_cpu()}, "
        f"{_mem_gib():.0f} GiB, Python {platform.python_version()}, Linux {platform.release()}. The load "
        "generators share the machine with the server: `hey` for HTTP, `h2load` (nghttp2) for gRPC, each "
        "connection with one request in flight. One 784-pixel image per request, in each server's own JSON "
        "form (the same pixels). Every server runs one process or worker, with access logs off.",
        "",
        f"Command: `{command}` ({duration:g} s of load per cell). Peers run from virtualenvs the bench builds "
        "once (bench/.venv-*, Python 3.11, tensorflow-cpu 2.21.0), each with its batching at most 64 rows and "
        "its wait window swept; a row's `window` is the one that gave that concurrency its best req/s, and "
        "cold start and RSS are the best and worst over the sweep. RSS counts every process the server "
        "started.",
        "",
        "![req/s by concurrency, one line per server](docs/benchmarks.png)",
        "",
        "| server | cold start | RSS | c | window | requests | errors | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in measured.items():
        if m.failure is not None:
            lines.append(f"| {name} | – | – | – | – | – | – | did not run: {_cell(m.failure)} | | |")
            continue
        for i, r in enumerate(m.results):
            head = f"| {name} | {m.cold_start_s:.1f} s | {m.rss_mib:.0f} MiB" if i == 0 else "| | |"
            cells = (r.concurrency, m.settings[i] or "–", r.requests, r.errors, f"{r.rps:,.0f}")
            cells += (f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}")
            lines.append(f"{head} | " + " | ".join(map(str, cells)) + " |")
    lines += ["", "Settings:", ""]
    lines += [f"- {s.name}: {s.settings}." for s in servers if s.settings and s.name in measured]
    peers = [s.name for s in servers if s.venv is not None and s.name in measured]
    ratios = _ratios(measured, peers)
    composed = composed_limit(measured, model_costs) if ratios and model_costs else []
    return "\n".join([*lines, "", *ratios, "", *composed, *extra, ""])


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")[:300]


def _ratios(measured: dict[str, Measured], peers: list[str]) -> list[str]:
    ours = measured.get(PREDICT)
    if ours is None or ours.failure:
        return []
    lines = ["## Ratios within this run", "", *_peer_verdicts(measured, ours, peers), ""]
    raw = measured.get(RAW_LIMIT)
    for c in (16, 64):
        parts = [f"{ours.at(c).rps:,.0f} req/s"]
        if raw:
            share = ours.at(c).rps / raw.at(c).rps
            parts.append(f"{share:.0%} of the raw ASGI limit ({_verdict(share >= 0.5)} the goal of at least 50%)")
        for other in ("FastAPI + SavedModel per request", "MLServer 1.7, adaptive batching"):
            if other in measured and not measured[other].failure:
                parts.append(f"{ours.at(c).rps / measured[other].at(c).rps:.1f}x {other}")
        lines.append(f"- /predict at c={c}: " + "; ".join(parts) + f"; errors {ours.at(c).errors}.")
    lines += grpc_ratios(measured, ours)
    lines += _runtime_ratios(measured)
    return lines


def _runtime_ratios(measured: dict[str, Measured]) -> list[str]:
    """The default runtime (LiteRT, where it serves) against the SavedModel's, on the same route in this run:
    the goal is a c=1 p50 at least 40% lower."""
    lines = []
    for route in ("/predict", "gRPC v2 ModelInfer"):
        default, saved = measured.get(f"{OURS} ({route})"), measured.get(f"{OURS} ({SAVEDMODEL_RUNTIME.format(route)})")
        if default is None or saved is None or default.failure or saved.failure:
            continue
        cut = 1 - default.at(1).p50_ms / saved.at(1).p50_ms
        throughput = ", ".join(f"c={c} {default.at(c).rps / saved.at(c).rps:.2f}x" for c in (16, 64))
        lines.append(
            f"- {route} on the default runtime against the SavedModel runtime: c=1 p50 {default.at(1).p50_ms:.2f} "
            f"against {saved.at(1).p50_ms:.2f} ms, {cut:.0%} lower ({_verdict(cut >= 0.4)} the goal of at least "
            f"40%); req/s {throughput}."
        )
    return lines


def composed_limit(measured: dict[str, Measured], costs: dict[str, Any]) -> list[str]:
    """/predict against the physical limit for this model on this machine: what the raw ASGI limit costs per
    request, plus what the serving runtime's bare call costs per row at the batch the server formed."""
    ours, raw = measured.get(PREDICT), measured.get(RAW_LIMIT)
    if ours is None or raw is None or ours.failure or raw.failure or not ours.mean_batches:
        return []
    engine, two_rows_ms = costs["engine"], costs[BARE_CALL] / 1000
    floor = raw.at(1).p50_ms + two_rows_ms
    p50 = ours.at(1).p50_ms
    lines = [
        "## The composed limit",
        "",
        f"The raw ASGI limit's cost per request plus the serving runtime's ({engine}) bare call, measured in this "
        "run (bench/budget.py, `model_costs`): at c=1 its call on two rows, as a batch of one is padded; under "
        "load its cost per row at the mean batch this service formed at that concurrency. `hey` prints latencies "
        "in steps of 0.1 ms, so each p50 at c=1 is rounded to the nearest step.",
        "",
        "| c | raw limit | mean batch | model per row | composed limit | /predict | share |",
        "|---|---|---|---|---|---|---|",
        f"| 1 | p50 {raw.at(1).p50_ms:.3f} ms | 1 | {two_rows_ms:.3f} ms per call | p50 {floor:.3f} ms "
        f"| p50 {p50:.3f} ms | {p50 / floor:.2f}x |",
    ]
    verdicts = [
        f"- c=1: /predict's p50 is {p50 / floor:.2f}x the composed limit's ({_verdict(p50 <= 1.25 * floor)} the goal "
        "of at most 1.25x)."
    ]
    batches = {r.concurrency: b for r, b in zip(ours.results, ours.mean_batches, strict=True)}
    for c in (c for c in (16, 64) if math.isfinite(batches.get(c, math.nan))):
        batch = batches[c]
        row_us = costs[per_row(formed_batch(batch))]
        limit = 1e6 / (1e6 / raw.at(c).rps + row_us)
        share = ours.at(c).rps / limit
        lines.append(
            f"| {c} | {1e6 / raw.at(c).rps:,.0f} µs per request | {batch:.1f} | {row_us:,.0f} µs "
            f"| {limit:,.0f} req/s | {ours.at(c).rps:,.0f} req/s | {share:.0%} |"
        )
        verdicts.append(f"- c={c}: {share:.0%} of the composed limit ({_verdict(share >= 0.75)} the goal of 75%).")
    return [*lines, "", *verdicts, ""]


def _peer_verdicts(measured: dict[str, Measured], ours: Measured, peers: list[str]) -> list[str]:
    """The peers' goal: more req/s and a lower p99 than every peer that runs, at every concurrency."""
    lines = []
    for name in peers:
        peer = measured[name]
        if peer.failure:
            lines.append(f"- {name}: did not run, so no comparison (see the table).")
            continue
        parts, ahead = [], []
        for c in PEER_GOAL_CONCURRENCY:
            mine, theirs = ours.at(c), peer.at(c)
            ahead.append(mine.rps > theirs.rps and mine.p99_ms < theirs.p99_ms)
            parts.append(
                f"c={c} {mine.rps / theirs.rps:.1f}x the req/s, p99 {mine.p99_ms:.2f} against {theirs.p99_ms:.2f} ms"
                f" ({'ahead' if ahead[-1] else 'NOT ahead'})"
            )
        lines.append(f"- /predict against {name}: " + "; ".join(parts) + f"; {_verdict(all(ahead))} the goal.")
    return lines


def _verdict(met: bool) -> str:
    return "meets" if met else "misses"


def grpc_ratios(measured: dict[str, Measured], rest: Measured) -> list[str]:
    """gRPC's goals at c=16 and 64: as many req/s as /predict (`rest`), and 80% of the no-op grpc.aio server's."""
    lines = []
    for name in (f"{OURS} (gRPC v2 ModelInfer)", f"{OURS} (gRPC TF Serving Predict)"):
        grpc = measured.get(name)
        if grpc is None:
            continue
        for c in (16, 64):
            parts = [
                f"{grpc.at(c).rps / rest.at(c).rps:.0%} of /predict's throughput "
                f"({_verdict(grpc.at(c).rps >= rest.at(c).rps)} the goal of at least 100%)"
            ]
            noop = measured.get("no-op grpc.aio server (gRPC limit)")
            if noop:
                share = grpc.at(c).rps / noop.at(c).rps
                verdict = f"{_verdict(share >= 0.80)} the goal of at least 80%"
                parts.append(f"{share:.0%} of the no-op grpc.aio limit ({verdict})")
            mlserver = measured.get("MLServer 1.7 gRPC, adaptive batching")
            if mlserver and not mlserver.failure:
                parts.append(f"{grpc.at(c).rps / mlserver.at(c).rps:.1f}x MLServer's gRPC")
            lines.append(f"- {name.removeprefix(OURS).strip(' ()')} at c={c}: " + "; ".join(parts) + ".")
    return lines


def plot(measured: dict[str, Measured], out: Path) -> None:
    """req/s by concurrency, one line per HTTP or gRPC server that ran; ours solid, the rest dashed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # one colour per server, up to 20
    for name, m in measured.items():
        if m.failure:
            continue
        style = "-" if name.startswith(OURS) else ":" if "limit" in name else "--"
        ax.plot([r.concurrency for r in m.results], [r.rps for r in m.results], style, marker="o", ms=3, label=name)
    ax.set(xscale="log", xlabel="concurrency (connections, one request in flight each)", ylabel="req/s")
    ax.set_xticks([1, 16, 64], labels=["1", "16", "64"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _mem_gib() -> float:
    match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    return int(match.group(1)) / 1024 / 1024 if match else float("nan")
