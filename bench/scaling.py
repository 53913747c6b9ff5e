"""Scaling on one machine: /predict with 1 and 2 worker processes, the CPU each request costs (what a
Kubernetes replica with a 1-CPU limit, as in deploy/base, gets per core), and what a worker's memory is
made of (`python -m bench.scaling memory` prints it stage by stage, in a fresh process)."""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import loads
from bench.lineup import MODEL, OURS, ROOT, servers
from bench.process import running

CONCURRENCY = (16, 64)
_TICK_S = 0.01  # /proc/<pid>/stat counts CPU time in clock ticks of 1/100 s (USER_HZ)


@dataclass(frozen=True)
class Run:
    workers: int
    concurrency: int
    rps: float
    cpu_s_per_request: float  # every process of the server, user + system
    pss_mib_per_worker: float


def measure(seconds: float) -> list[Run]:
    server = next(s for s in servers(with_peers=False) if s.name == f"{OURS} (/predict)")
    runs = []
    for workers in (1, 2):
        with running(server, env={"MNIST_WORKERS": str(workers)}) as live:
            loads.run(server.load, live.port, 1, 1.0)  # warm-up
            for c in CONCURRENCY:
                before = _cpu_s(live.pid)
                result = loads.run(server.load, live.port, c, seconds)
                used = _cpu_s(live.pid) - before
                pss = _pss_mib(_session(live.pid)) / workers
                runs.append(Run(workers, c, result.rps, used / max(1, result.requests), pss))
    return runs


def _session(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-s", str(pid)], capture_output=True, text=True).stdout.split()


def _cpu_s(pid: int) -> float:
    ticks = 0
    for p in _session(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * _TICK_S


def _pss_mib(pids: list[str]) -> float:
    """Proportional set size: shared pages (TensorFlow's library, mostly) split among the processes."""
    total = 0
    for p in pids:
        try:
            match = re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{p}/smaps_rollup").read_text(), re.MULTILINE)
        except OSError:
            continue
        total += int(match.group(1)) if match else 0
    return total / 1024


def memory_stages() -> list[tuple[str, float]]:
    """RSS in MiB after each stage of a worker's start, from a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scaling", "memory"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [tuple(row) for row in json.loads(done.stdout.strip().splitlines()[-1])]  # type: ignore[misc]


def lines(runs: list[Run], stages: list[tuple[str, float]]) -> list[str]:
    by = {(r.workers, r.concurrency): r for r in runs}
    out = [
        "## Scaling: workers, cores and memory",
        "",
        "`MNIST_WORKERS` processes share one port; each has its own event loop and its own copy of the models. "
        "CPU is every server process's user + system time during the run, per request; a replica with a "
        "1-CPU limit (deploy/base) gets at most 1 / that many requests per second.",
        "",
        "| workers | c | req/s | x 1 worker | CPU ms per request | req/s per busy core | PSS per worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        single = by[(1, r.concurrency)].rps
        out.append(
            f"| {r.workers} | {r.concurrency} | {r.rps:,.0f} | {r.rps / single:.2f} | {r.cpu_s_per_request * 1000:.3f} "
            f"| {1 / r.cpu_s_per_request:,.0f} | {r.pss_mib_per_worker:.0f} MiB |"
        )
    out += [
        "",
        "What one worker's resident memory is made of (RSS after each stage, in a fresh process):",
        "",
        "| stage | RSS | added |",
        "|---|---|---|",
    ]
    previous = 0.0
    for stage, rss in stages:
        out.append(f"| {stage} | {rss:.0f} MiB | {rss - previous:+.0f} MiB |")
        previous = rss
    out += [
        "",
        "PSS per worker includes a share of the supervisor process when there are 2. On this machine's 2 "
        "cores the load generator takes a share of the second core, so 2 workers cannot "
        "double the throughput here; the per-core column is what a replica of its own would see.",
        "",
    ]
    return out


def _rss_mib() -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def _memory() -> None:
    stages = [("Python", _rss_mib())]
    import numpy as np
    import tensorflow as tf

    stages.append(("+ import tensorflow", _rss_mib()))
    import service.rest.app
    import service.server  # noqa: F401  (FastAPI, uvicorn, grpcio, prometheus-client, Pillow)

    stages.append(("+ import the service (FastAPI, uvicorn, gRPC...)", _rss_mib()))
    loaded = tf.saved_model.load(str(MODEL))
    stages.append((f"+ load the SavedModel ({MODEL.parent.name}/{MODEL.name})", _rss_mib()))
    signature = loaded.signatures["serving_default"]
    for rows in (1, 2, 64):
        signature(pixels=tf.constant(np.zeros((rows, 784), np.float32)))
    stages.append(("+ first calls (batches of 1, 2 and 64)", _rss_mib()))
    print(json.dumps(stages))


if __name__ == "__main__" and sys.argv[1:] == ["memory"]:
    _memory()
