"""A server from the lineup, started on free ports for the length of a `with`, and stopped with
everything it started (Ray's raylet, MLServer's and LitServe's workers)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.lineup import MODEL, READY_BY_POST, ROOT, Server

READY_S = 240


class ServerFailed(RuntimeError):
    """The server exited or never became ready; the message ends with its log's tail."""


@dataclass(frozen=True)
class Running:
    pid: int
    port: int  # HTTP
    grpc_port: int
    cold_start_s: float  # from the process's start to its first ready answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running(
    server: Server,
    *,
    python: str = sys.executable,
    window_ms: float = 0.0,
    env: dict[str, str] | None = None,
    root: Path = ROOT,
) -> Iterator[Running]:
    """`server` started, its code imported from `root` (another checkout of this project, for an A/B)."""
    ports = {"port": free_port(), "grpc_port": free_port()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _write_mlserver_settings(workdir, **ports, window_ms=window_ms)
        fill = {
            **ports,
            "workdir": workdir,
            "python": python,
            "bin": Path(python).parent,
            "window_ms": f"{window_ms:g}",
        }
        command = [part.format(**fill) for part in server.command]
        full_env = {
            **os.environ,
            "MNIST_PORT": str(ports["port"]),
            "MNIST_ACCESS_LOG": "false",
            "PYTHONPATH": str(root),
            **{k: v.format(**fill) for k, v in server.env.items()},
            **(env or {}),
        }
        started = time.monotonic()
        log = workdir / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            try:
                cold_start = _wait_ready(server, ports, proc, started)
            except ServerFailed as e:
                raise ServerFailed(f"{server.name}: {e}\n{log.read_text()[-2000:]}") from None
            yield Running(proc.pid, ports["port"], ports["grpc_port"], cold_start)
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for signal, wait_s in (("TERM", 30), ("KILL", 10)):
        subprocess.run(["pkill", f"-{signal}", "-s", str(proc.pid)], check=False)
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _write_mlserver_settings(workdir: Path, *, port: int, grpc_port: int, window_ms: float) -> None:
    settings = {
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": free_port(),
        "parallel_workers": 1,
        "debug": False,
    }
    (workdir / "settings.json").write_text(json.dumps(settings))
    shutil.copy(ROOT / "bench" / "mlserver_runtime" / "runtime.py", workdir / "runtime.py")
    model = {
        "name": "mnist",
        "implementation": "runtime.SavedModelRuntime",
        "max_batch_size": 64,
        "max_batch_time": window_ms / 1000,
        "parameters": {"uri": str(MODEL)},
    }
    (workdir / "model-settings.json").write_text(json.dumps(model))


def _wait_ready(server: Server, ports: dict[str, int], proc: subprocess.Popen[bytes], started: float) -> float:
    while time.monotonic() - started < READY_S:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with {proc.returncode} before it was ready")
        if _ready(server, ports):
            return time.monotonic() - started
        time.sleep(0.05)
    raise ServerFailed(f"not ready after {READY_S} s")


def _ready(server: Server, ports: dict[str, int]) -> bool:
    try:
        if server.ready is None:
            socket.create_connection(("127.0.0.1", ports["grpc_port"]), timeout=1).close()
            return True
        url = f"http://127.0.0.1:{ports['port']}"
        if server.ready == READY_BY_POST:
            headers = {"content-type": "application/json"}
            answer = httpx.post(url + server.load.path, content=server.load.body, headers=headers, timeout=5)
        else:
            answer = httpx.get(url + server.ready, timeout=1)
        return answer.status_code == 200
    except (OSError, httpx.HTTPError):
        return False


def rss_mib(pid: int) -> float:
    """Resident memory of the server and every process in its session, in MiB."""
    return (
        sum(
            _rss_kib(p)
            for p in subprocess.run(["pgrep", "-s", str(pid)], capture_output=True, text=True).stdout.split()
        )
        / 1024
    )


def _rss_kib(pid: str) -> int:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:  # it exited meanwhile
        return 0
    return int(match.group(1)) if match else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
