"""Load from `hey`, and the server's own count of what it answered, to find anything lost between."""

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import hey

SEVEN = Path(__file__).resolve().parents[2] / "docs" / "examples" / "seven.json"
HEY_MAX_S = 600  # for a load that ends when the test sends hey SIGINT


@dataclass
class Load:
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: dict[int, list[float]] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        """Answers other than 200 and 503, plus connection-level errors."""
        return sum(n for s, n in self.statuses.items() if s not in (200, 503)) + sum(self.errors.values())

    def percentile(self, status: int, q: float) -> float:
        values = self.latencies_ms.get(status, [])
        return float(np.percentile(values, q)) if values else float("nan")


def hey_command(url: str, concurrency: int, seconds: float, *, csv: bool = False) -> list[str]:
    return hey.command(f"{url}/predict", SEVEN, concurrency, seconds, csv=csv)


def parse_summary(out: str) -> Load:
    return Load(statuses=hey.statuses(out), errors=hey.errors(out))


def parse_csv(out: str) -> Load:
    load = Load()
    for line in out.splitlines()[1:]:
        parts = line.split(",")
        if len(parts) < 8:
            continue
        status = int(parts[6])
        load.statuses[status] = load.statuses.get(status, 0) + 1
        load.latencies_ms.setdefault(status, []).append(float(parts[0]) * 1000)
    return load


def run_hey(url: str, concurrency: int, seconds: float) -> Load:
    return parse_summary(_hey(hey_command(url, concurrency, seconds), seconds))


def run_hey_csv(url: str, concurrency: int, seconds: float) -> str:
    """Every answer, one CSV line each, for latency percentiles by status."""
    return _hey(hey_command(url, concurrency, seconds, csv=True), seconds)


def _hey(command: list[str], seconds: float) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout


def server_answers(url: str) -> dict[int, int]:
    """Responses to POST /predict the server itself counted, by status."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = r'mnist_requests_total\{endpoint="/predict",method="POST",protocol="rest",status="(\d+)"\} ([\d.e+]+)'
    return {int(s): int(float(n)) for s, n in re.findall(pattern, text)}


def grpc_load_command(target: str, concurrency: int, seconds: float) -> list[str]:
    """bench.grpc_load: Open Inference Protocol ModelInfer calls, raw FP32, until SIGINT or `seconds`."""
    return [sys.executable, "-m", "bench.grpc_load", target, "--api", "v2", "-c", str(concurrency), "-z", str(seconds)]


def grpc_summary(out: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def server_grpc_answers(url: str) -> dict[str, int]:
    """ModelInfer calls the server itself counted, by status code."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = (
        r'mnist_requests_total\{endpoint="/inference.GRPCInferenceService/ModelInfer",method="POST",'
        r'protocol="grpc",status="(\w+)"\} ([\d.e+]+)'
    )
    return {s: int(float(n)) for s, n in re.findall(pattern, text)}


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")
