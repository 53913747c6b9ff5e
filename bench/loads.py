"""Load on one server at one concurrency, by the load generator that speaks its protocol."""

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import h2load, hey

IMAGE = json.loads((Path(__file__).resolve().parent.parent / "docs" / "examples" / "seven.json").read_text())["image"]


@dataclass(frozen=True)
class Load:
    """What to send: an HTTP POST of a JSON body (hey), or a unary gRPC call (h2load)."""

    protocol: str  # "http" or "grpc"
    path: str  # the HTTP path, or the gRPC method
    body: bytes

    @classmethod
    def http(cls, path: str, body: object) -> "Load":
        return cls("http", path, json.dumps(body).encode())

    @classmethod
    def grpc(cls, api: str) -> "Load":
        return cls("grpc", h2load.METHODS[api], h2load.grpc_body(api))


@dataclass(frozen=True)
class Result:
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


def run(load: Load, port: int, concurrency: int, duration: float) -> Result:
    url = f"http://127.0.0.1:{port}{load.path}"
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body"
        body.write_bytes(load.body)
        if load.protocol == "http":
            return _hey(url, body, concurrency, duration)
        return _h2load(url, body, concurrency, duration, Path(tmp) / "calls.log")


def _hey(url: str, body: Path, concurrency: int, duration: float) -> Result:
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


def _h2load(url: str, body: Path, concurrency: int, duration: float, log: Path) -> Result:
    command = h2load.command(url, body, concurrency, duration, log)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    ok, failed = h2load.succeeded(out), h2load.failed(out)
    return Result(
        concurrency=concurrency,
        requests=ok + failed,
        errors=failed,
        rps=ok / duration,
        p50_ms=h2load.percentile_ms(log, 50),
        p99_ms=h2load.percentile_ms(log, 99),
    )
