"""`python -m bench`: this service side by side with the servers a user would pick instead.

Every server runs on 127.0.0.1 in turn, with one process (MLServer with its defaults). `hey` sends one
784-pixel image per HTTP request and `h2load` one per gRPC call, at each concurrency. Results, machine
and command go to BENCHMARKS.md. Timings are compared only as ratios within one run.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import loads
from bench.lineup import MLSERVER_VENV, MODEL, ROOT, Server, servers
from bench.report import Measured, report

CONCURRENCY = (1, 16, 64)
READY_S = 180
KEPT_SECTION = "\n## Image preprocessing"


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
    for tool in ("hey", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs `{tool}` (Debian: apt-get install hey nghttp2-client)")
    mlserver = None if args.no_mlserver else args.mlserver_venv
    if mlserver is not None and not (mlserver / "bin" / "mlserver").exists():
        sys.exit(f"MLServer is not installed in {mlserver}; run `make bench`, or pass --no-mlserver")
    table = [s for s in servers(mlserver) if not args.only or s.name in args.only]
    measured: dict[str, Measured] = {}
    for server in table:
        print(f"== {server.name}", flush=True)
        measured[server.name] = _measure(server, args.duration)
    text = report(measured, command=" ".join(["python -m bench", *sys.argv[1:]]), duration=args.duration)
    args.out.write_text(text + _kept(args.out))
    print(text)
    return 0


def _kept(out: Path) -> str:
    """The sections other commands keep in the report (`python -m bench.images`'s), from KEPT_SECTION on."""
    old = out.read_text() if out.exists() else ""
    return old[old.index(KEPT_SECTION) :] if KEPT_SECTION in old else ""


def _measure(server: Server, duration: float) -> Measured:
    ports = {"port": _free_port(), "grpc_port": _free_port()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _write_mlserver_settings(workdir, **ports)
        fill = {**ports, "workdir": workdir}
        command = [part.format(**fill) for part in server.command]
        env = {
            **os.environ,
            "MNIST_PORT": str(ports["port"]),
            "MNIST_ACCESS_LOG": "false",
            "PYTHONPATH": str(ROOT),
            **{k: v.format(**fill) for k, v in server.env.items()},
        }
        started = time.monotonic()
        with (workdir / "server.log").open("wb") as log:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        port = ports["grpc_port"] if server.load.protocol == "grpc" else ports["port"]
        try:
            cold_start = _wait_ready(server, ports, proc, started)
            loads.run(server.load, port, 1, 1.0)  # warm-up
            results = [loads.run(server.load, port, c, duration) for c in CONCURRENCY]
            rss = _rss_mib(proc.pid)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            raise RuntimeError(f"{server.name}: {e}\n{(workdir / 'server.log').read_text()[-2000:]}") from e
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return Measured(cold_start, rss, results)


def _write_mlserver_settings(workdir: Path, *, port: int, grpc_port: int) -> None:
    settings = {"http_port": port, "grpc_port": grpc_port, "metrics_port": _free_port(), "debug": False}
    (workdir / "settings.json").write_text(json.dumps(settings))
    shutil.copy(ROOT / "bench" / "mlserver_runtime" / "runtime.py", workdir / "runtime.py")
    model = {
        "name": "mnist",
        "implementation": "runtime.SavedModelRuntime",
        "max_batch_size": 64,
        "max_batch_time": 0.001,
        "parameters": {"uri": str(MODEL)},
    }
    (workdir / "model-settings.json").write_text(json.dumps(model))


def _wait_ready(server: Server, ports: dict[str, int], proc: subprocess.Popen[bytes], started: float) -> float:
    while time.monotonic() - started < READY_S:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before it was ready")
        if _ready(server, ports):
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"not ready after {READY_S} s")


def _ready(server: Server, ports: dict[str, int]) -> bool:
    try:
        if server.ready is None:
            socket.create_connection(("127.0.0.1", ports["grpc_port"]), timeout=1).close()
            return True
        return httpx.get(f"http://127.0.0.1:{ports['port']}{server.ready}", timeout=1).status_code == 200
    except (OSError, httpx.HTTPError):
        return False


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


if __name__ == "__main__":
    sys.exit(main())
