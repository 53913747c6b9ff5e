"""A real `python -m service` process on 127.0.0.1, for end-to-end tests."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).parent / "clients"  # scripts run by other clients' Pythons
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(
    url: str, timeout_s: float, *, alive: Callable[[], bool] = lambda: True, verify: ssl.SSLContext | bool = True
) -> bool:
    """Poll GET {url}/readyz until it answers 200 (True), or time runs out or `alive()` turns false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}/readyz", timeout=1, verify=verify).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


class ServerProcess:
    """`python -m service` (or another entry point, `module`) with MNIST_* settings and `env` besides, on a
    free port; over HTTPS when `tls` is given, the context its clients trust the server (and, under mTLS,
    identify) with."""

    def __init__(
        self,
        model_dir: Path,
        log_path: Path,
        *,
        module: str = "service",
        tls: ssl.SSLContext | None = None,
        env: Mapping[str, str] | None = None,
        **settings: object,
    ) -> None:
        self.module = module
        self.port = free_port()
        self.grpc_port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log_path
        environment = {
            # The suite compares served outputs with the SavedModel's own, bit for bit; the tests of LiteRT
            # and of the defaults ask for their runtime.
            "MNIST_RUNTIME": "savedmodel",
            **os.environ,
            **(env or {}),
            "MNIST_MODEL_DIR": str(model_dir),
            "MNIST_PORT": str(self.port),
            "MNIST_GRPC_PORT": str(self.grpc_port),
            "MNIST_HOST": "127.0.0.1",
        }
        environment.update({f"MNIST_{k.upper()}": str(v) for k, v in settings.items()})
        self._env = environment
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "ServerProcess":
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=REPO_ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        proc = self.proc
        assert proc is not None
        verify = self.tls or True
        if not wait_ready(self.url, START_TIMEOUT_S, alive=lambda: proc.poll() is None, verify=verify):
            state = (
                f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {START_TIMEOUT_S}s"
            )
            raise RuntimeError(f"server {state}:\n{self.logs()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")
