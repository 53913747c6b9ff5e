"""`python -m bench`: this service side by side with the servers a user would pick instead.

Every server runs on 127.0.0.1 in turn, with one uvicorn worker (MLServer with its defaults), and
`hey` sends one 784-pixel image per request at each concurrency. Results, machine and command go to
BENCHMARKS.md. Timings are compared only as ratios within one run.
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import hey

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "mnist" / "1"
IMAGE = json.loads((ROOT / "docs" / "examples" / "seven.json").read_text())["image"]
MLSERVER_VENV = ROOT / "bench" / ".venv-mlserver"
CONCURRENCY = (1, 16, 64)


@dataclass
class Server:
    name: str
    command: list[str]
    path: str
    body: dict[str, object]
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT


@dataclass
class Result:
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per concurrency (default 8)")
    parser.add_argument("--only", nargs="*", help="run only these servers (names as in the table)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="report path")
    parser.add_argument("--no-mlserver", action="store_true", help="skip MLServer (it needs its own virtualenv)")
    parser.add_argument(
        "--mlserver-venv", type=Path, default=MLSERVER_VENV, help="virtualenv with mlserver 1.7 and tensorflow"
    )
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("bench needs `hey` (Debian: apt-get install hey)")

    servers = _servers(None if args.no_mlserver else args.mlserver_venv)
    if args.only:
        servers = [s for s in servers if s.name in args.only]
    results: dict[str, tuple[float, float, list[Result]]] = {}
    for server in servers:
        print(f"== {server.name}", flush=True)
        results[server.name] = _measure(server, args.duration)
    report = _report(results, args)
    args.out.write_text(report)
    print(report)
    return 0


def _servers(mlserver_venv: Path | None) -> list[Server]:
    python = sys.executable
    single = {"image": IMAGE}
    v2 = {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": IMAGE}]}
    servers = [
        Server(
            "this service (/predict)",
            [python, "-m", "service"],
            "/predict",
            single,
            "/readyz",
            env={"MNIST_POLL_INTERVAL_S": "0", "MNIST_MODEL_DIR": str(ROOT / "models")},
        ),
        Server(
            "this service (/predict, model thread)",
            [python, "-m", "service"],
            "/predict",
            single,
            "/readyz",
            env={"MNIST_POLL_INTERVAL_S": "0", "MNIST_MODEL_DIR": str(ROOT / "models"), "MNIST_MODEL_THREAD": "true"},
        ),
        Server(
            "this service (v2 infer)",
            [python, "-m", "service"],
            "/v2/models/mnist/infer",
            v2,
            "/readyz",
            env={"MNIST_POLL_INTERVAL_S": "0", "MNIST_MODEL_DIR": str(ROOT / "models")},
        ),
        Server(
            "FastAPI + Keras model.predict",
            _uvicorn(python, "bench.servers.keras_predict:app"),
            "/predict",
            single,
            "/ready",
        ),
        Server(
            "FastAPI + SavedModel per request",
            _uvicorn(python, "bench.servers.savedmodel_direct:app"),
            "/predict",
            single,
            "/ready",
        ),
        Server(
            "raw ASGI + orjson, no model (limit)",
            _uvicorn(python, "bench.servers.raw_asgi:app"),
            "/predict",
            single,
            "/",
        ),
    ]
    if mlserver_venv is not None:
        mlserver = mlserver_venv / "bin" / "mlserver"
        if not mlserver.exists():
            sys.exit(
                f"MLServer is not installed; run: python3.11 -m venv {mlserver_venv} && "
                f"{mlserver_venv}/bin/pip install 'mlserver==1.7.*' tensorflow==2.21.0 'uvloop<0.22' "
                "(or pass --no-mlserver)"
            )
        servers.insert(
            5,
            Server(
                "MLServer 1.7, adaptive batching",
                [str(mlserver), "start", "{workdir}"],
                "/v2/models/mnist/infer",
                v2,
                "/v2/health/ready",
            ),
        )
    return servers


def _uvicorn(python: str, app: str) -> list[str]:
    return [python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]


def _measure(server: Server, duration: float) -> tuple[float, float, list[Result]]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _write_mlserver_settings(workdir, port)
        body = workdir / "body.json"
        body.write_text(json.dumps(server.body))
        command = [part.format(port=port, workdir=workdir) for part in server.command]
        env = {
            **os.environ,
            "MNIST_PORT": str(port),
            "MNIST_ACCESS_LOG": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": str(ROOT),
            **server.env,
        }
        started = time.monotonic()
        log = (workdir / "server.log").open("wb")
        proc = subprocess.Popen(command, cwd=server.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            cold_start = _wait_ready(url + server.ready_path, proc, started)
            _load(url + server.path, body, 1, 1.0)  # warm-up
            results = [_load(url + server.path, body, c, duration) for c in CONCURRENCY]
            rss = _rss_mib(proc.pid)
        except RuntimeError as e:
            raise RuntimeError(f"{server.name}: {e}\n{(workdir / 'server.log').read_text()[-2000:]}") from e
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return cold_start, rss, results


def _write_mlserver_settings(workdir: Path, port: int) -> None:
    (workdir / "settings.json").write_text(
        json.dumps({"http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port(), "debug": False})
    )
    shutil.copy(ROOT / "bench" / "mlserver_runtime" / "runtime.py", workdir / "runtime.py")
    (workdir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "mnist",
                "implementation": "runtime.SavedModelRuntime",
                "max_batch_size": 64,
                "max_batch_time": 0.001,
                "parameters": {"uri": str(MODEL)},
            }
        )
    )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], started: float) -> float:
    while time.monotonic() - started < 180:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("not ready after 180 s")


def _load(url: str, body: Path, concurrency: int, duration: float) -> Result:
    out = subprocess.run(hey.command(url, body, concurrency, duration), capture_output=True, text=True, check=True)
    by_status, failed = hey.statuses(out.stdout), sum(hey.errors(out.stdout).values())
    return Result(
        concurrency=concurrency,
        requests=sum(by_status.values()) + failed,
        errors=sum(n for code, n in by_status.items() if code != 200) + failed,
        rps=by_status.get(200, 0) / duration,
        p50_ms=hey.percentile_ms(out.stdout, 50),
        p99_ms=hey.percentile_ms(out.stdout, 99),
    )


def _rss_mib(pid: int) -> float:
    """Resident memory of the server and its children (MLServer's workers), in MiB."""
    total = 0
    pids = [pid, *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split())]
    for p in pids:
        status = Path(f"/proc/{p}/status")
        if status.exists():
            match = re.search(r"VmRSS:\s+(\d+) kB", status.read_text())
            total += int(match.group(1)) if match else 0
    return total / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _report(results: dict[str, tuple[float, float, list[Result]]], args: argparse.Namespace) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores of {cpu}, "
        f"{_mem_gib():.0f} GiB, Python {platform.python_version()}, Linux {platform.release()}. "
        "The load generator (`hey`) shares the machine with the server. One 784-pixel image per request.",
        "",
        f"Command: `{' '.join(['python -m bench', *sys.argv[1:]])}` ({args.duration:g} s of load per cell; "
        "`make bench` installs MLServer into bench/.venv-mlserver and runs `python -m bench`). Access logs off "
        "for every server; MLServer with its defaults plus adaptive batching (max 64 rows, 1 ms).",
        "",
        "| server | cold start | RSS | c | requests | errors | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (cold, rss, rows) in results.items():
        for i, r in enumerate(rows):
            head = f"| {name} | {cold:.1f} s | {rss:.0f} MiB" if i == 0 else "| | |"
            lines.append(
                f"{head} | {r.concurrency} | {r.requests} | {r.errors} | {r.rps:,.0f} | "
                f"{r.p50_ms:.2f} | {r.p99_ms:.2f} |"
            )
    lines += ["", *_verdicts(results), ""]
    return "\n".join(lines)


def _verdicts(results: dict[str, tuple[float, float, list[Result]]]) -> list[str]:
    ours = results.get("this service (/predict)")
    raw = results.get("raw ASGI + orjson, no model (limit)")
    direct = results.get("FastAPI + SavedModel per request")
    mlserver = results.get("MLServer 1.7, adaptive batching")
    if not (ours and raw):
        return []
    lines = ["## Against the bar (ratios within this run)", ""]
    by_c = {r.concurrency: r for r in ours[2]}
    raw_c = {r.concurrency: r for r in raw[2]}
    for c in (16, 64):
        parts = [f"c={c}: {by_c[c].rps / raw_c[c].rps:.0%} of the raw limit (bar 60%)"]
        if direct:
            parts.append(
                f"{by_c[c].rps / {r.concurrency: r for r in direct[2]}[c].rps:.1f}x the per-request "
                "SavedModel server (bar 4x)"
            )
        if mlserver:
            parts.append(f"{by_c[c].rps / {r.concurrency: r for r in mlserver[2]}[c].rps:.1f}x MLServer (bar >1x)")
        lines.append("- " + "; ".join(parts) + f"; errors {by_c[c].errors}.")
    lines.append(
        f"- c=1: p50 {by_c[1].p50_ms:.2f} ms is {by_c[1].p50_ms / raw_c[1].p50_ms:.1f}x the raw limit's "
        f"{raw_c[1].p50_ms:.2f} ms (bar 2x)."
    )
    return lines


def _mem_gib() -> float:
    match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    return int(match.group(1)) / 1024 / 1024 if match else float("nan")


if __name__ == "__main__":
    sys.exit(main())
