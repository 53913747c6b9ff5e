"""A fleet on one machine: N `mnist-serve` replicas of one model repository behind HAProxy.

    python scripts/fleet.py [--replicas 3] [--port 8080] [--models-dir models] [--admin-token TOKEN]

(`make fleet` runs it.) Each replica is its own process, on its own port, reading the same repository:
as Kubernetes runs the Deployment's pods, or `docker run -v` containers on one host. HAProxy (Debian's
`haproxy`) balances requests between them, checks each one's `/readyz` every 500 ms, and retries a
request that failed for want of a replica (connection refused or reset, no answer, 503) on another
one: every route here is a pure function of its body, so a retry is safe. Ctrl-C stops it all.

The tests (`tests/e2e/test_fleet.py`) use the same `Fleet` to promote a canary, kill -9 a replica and
restart every replica in turn, all under load through the balancer.
"""

import argparse
import contextlib
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120
HEALTH_CHECK_MS = 500

HAPROXY_CONFIG = """\
global
    maxconn 4096
    log stderr format short local0 warning

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 10s
    # A request that found no replica able to answer goes to another one. The body is buffered so that it
    # can be sent again; every route is a pure function of its body, so a second send is safe.
    option http-buffer-request
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response response-timeout 503

frontend mnist
    bind {host}:{port}
    default_backend replicas

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats

backend replicas
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {check_ms}ms fastinter {check_ms}ms downinter {check_ms}ms fall 2 rise 1
{servers}
"""


def _wait_ready(url: str, timeout_s: float, what: str, proc: "subprocess.Popen[bytes] | None") -> None:
    """Until `url` answers /readyz with 200; an error naming `what` if `proc` exits or time runs out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready on {url} after {timeout_s:g}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Replica:
    """One `python -m service` process of the fleet, on its own ports, with its own log."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        _wait_ready(self.url, timeout_s, f"replica {self.name} (see {self.log_path})", self.proc)

    def signal(self, signum: int) -> None:
        """Send `signum` and wait for the process to end (it drains first on SIGTERM)."""
        assert self.proc is not None
        self.proc.send_signal(signum)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)


@dataclass
class Fleet:
    """`replicas` servers of `model_dir` behind HAProxy on `port`; a context manager."""

    model_dir: Path
    replicas: int = 3
    port: int = 0  # 0: a free one
    host: str = "127.0.0.1"
    settings: dict[str, str] = field(default_factory=dict)  # MNIST_* for every replica
    workdir: Path | None = None  # for the logs and haproxy.cfg (default: a temporary folder)
    members: list[Replica] = field(init=False, default_factory=list)
    stats_port: int = field(init=False, default=0)  # HAProxy's statistics page, /stats
    _haproxy: subprocess.Popen[bytes] | None = field(init=False, default=None)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "Fleet":
        haproxy = shutil.which("haproxy") or next(
            (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
        )
        if haproxy is None:
            raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy; scripts/system-deps.sh)")
        self.workdir = self.workdir or Path(tempfile.mkdtemp(prefix="fleet-"))
        self.port = self.port or free_port()
        self.stats_port = free_port()
        base = {**os.environ, "MNIST_MODEL_DIR": str(self.model_dir.resolve()), "MNIST_HOST": "127.0.0.1"}
        base.update({"MNIST_GRPC_ENABLED": "false", "MNIST_WATCH_REPOSITORY": "true"})
        # Every connection comes from the balancer: the per-client cap is its job (docs/configuration.md).
        base.update({"MNIST_MAX_CONNECTIONS_PER_CLIENT": "0", **self.settings})
        for i in range(1, self.replicas + 1):
            port = free_port()
            env = {**base, "MNIST_PORT": str(port)}
            self.members.append(Replica(f"r{i}", port, env, self.workdir / f"r{i}.log"))
        try:
            for replica in self.members:
                replica.start()
            for replica in self.members:
                replica.wait_ready()
            servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in self.members)
            config = self.workdir / "haproxy.cfg"
            text = HAPROXY_CONFIG.format(
                host=self.host, port=self.port, stats_port=self.stats_port, check_ms=HEALTH_CHECK_MS, servers=servers
            )
            config.write_text(text)
            with (self.workdir / "haproxy.log").open("ab") as log:
                self._haproxy = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=log, stderr=log)
            self.wait_balanced()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def wait_balanced(self, timeout_s: float = 30) -> None:
        """Until the balancer answers /readyz with 200."""
        _wait_ready(self.url, timeout_s, f"haproxy (see {self.workdir}/haproxy.log)", self._haproxy)

    def states(self) -> dict[str, str]:
        """Each replica's state as the balancer sees it: UP, DOWN, or a transition such as "UP 1/2"."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        rows = list(csv.reader(text.lstrip("# ").splitlines()))
        column = rows[0].index("status")
        return {row[1]: row[column] for row in rows[1:] if row and row[0] == "replicas" and row[1].startswith("r")}

    def wait_state(self, name: str, state: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while (seen := self.states().get(name)) != state:
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {name} is {seen} to the balancer, not {state}, after {timeout_s:g}s")
            time.sleep(0.05)

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._haproxy is not None and self._haproxy.poll() is None:
            self._haproxy.terminate()
            self._haproxy.wait(timeout=30)
        for replica in self.members:
            replica.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python scripts/fleet.py", description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3, help="replicas to start (default: 3)")
    parser.add_argument("--port", type=int, default=8080, help="the balancer's port (default: 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="the balancer's address (default: 127.0.0.1)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models", help="the shared repository")
    parser.add_argument("--admin-token", help="turn the admin API on, on every replica")
    args = parser.parse_args()
    settings = {"MNIST_ADMIN_TOKEN": args.admin_token} if args.admin_token else {}
    with Fleet(args.models_dir, args.replicas, args.port, args.host, settings) as fleet:
        print(f"{args.replicas} replicas of {args.models_dir} behind haproxy on {fleet.url}:", flush=True)
        for replica in fleet.members:
            print(f"  {replica.name}: {replica.url} (log: {replica.log_path})", flush=True)
        print(f"  haproxy: {fleet.workdir}/haproxy.cfg; Ctrl-C stops everything", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # the replicas were started
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
