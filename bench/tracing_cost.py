"""What tracing costs: `python -m bench.tracing_cost [--seconds 8] [--rounds 3]`.

The same server three ways, one after another, in rounds (off, sampled at 1%, sampled at 100%), each under
`hey -c 16` on `/predict` with the README's seven; spans go by OTLP/HTTP to a receiver in this process
that accepts and discards them. Prints one JSON line per run, and writes the medians, as ratios to "off"
within the run, into BENCHMARKS.md between markers: the machine is shared and noisy, so only the ratios
mean anything.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import hey
from bench.images import _between_markers
from tests.e2e.server import REPO_ROOT, ServerProcess, free_port

SEVEN = REPO_ROOT / "docs" / "examples" / "seven.json"
MODES = {
    "off": {},
    "sampled 1%": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "sampled 100%": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


class _Discard(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _log(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "server.log"


def run(mode: str, collector: str, seconds: float, folder: Path) -> dict[str, object]:
    env = {} if mode == "off" else {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector}
    env |= MODES[mode]
    with ServerProcess(
        REPO_ROOT / "models", _log(folder), env=env, poll_interval_s=0, versions_to_keep=1, access_log="false"
    ) as server:
        summary = subprocess.run(
            hey.command(f"{server.url}/predict", SEVEN, 16, seconds), capture_output=True, text=True, check=True
        ).stdout
    return {
        "mode": mode,
        "rps": round(hey.requests_per_second(summary), 1),
        "p50_ms": round(hey.percentile_ms(summary, 50), 3),
        "p99_ms": round(hey.percentile_ms(summary, 99), 3),
        "non_200": sum(n for status, n in hey.statuses(summary).items() if status != 200),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="of load per run")
    parser.add_argument("--rounds", type=int, default=3, help="of the three modes, interleaved")
    parser.add_argument("--benchmarks", type=Path, default=REPO_ROOT / "BENCHMARKS.md", help="gets the table")
    args = parser.parse_args(argv)
    receiver = ThreadingHTTPServer(("127.0.0.1", free_port()), _Discard)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    collector = f"http://127.0.0.1:{receiver.server_port}"
    runs: dict[str, list[dict[str, object]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for mode in MODES:
                result = run(mode, collector, args.seconds, Path(tmp) / f"{round_}-{len(runs[mode])}")
                runs[mode].append(result)
                print(json.dumps(result), flush=True)
    receiver.shutdown()
    command = f"python -m bench.tracing_cost --seconds {args.seconds:g} --rounds {args.rounds}"
    _between_markers(args.benchmarks, [*_table(runs), "", f"`{command}`: {__doc__.split(chr(10) * 2)[1]}"],
                     begin=BEGIN, end=END, title="Tracing")  # fmt: skip
    return 0


BEGIN, END = "<!-- tracing:begin -->", "<!-- tracing:end -->"


def _table(runs: dict[str, list[dict[str, object]]]) -> list[str]:
    """Medians; throughput as each round's ratio to that round's "off", the machine's drift between rounds
    cancelled, and the median of those ratios."""

    def values(mode: str, key: str) -> list[float]:
        return [float(str(r[key])) for r in runs[mode]]

    lines = ["| tracing | requests/s | vs off | each round vs off | p50 | p99 |", "|---|---|---|---|---|---|"]
    for mode in runs:
        ratios = [rps / off for rps, off in zip(values(mode, "rps"), values("off", "rps"), strict=True)]
        rps, ratio = statistics.median(values(mode, "rps")), statistics.median(ratios)
        p50, p99 = statistics.median(values(mode, "p50_ms")), statistics.median(values(mode, "p99_ms"))
        each = ", ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"| {mode} | {rps:,.0f} | {ratio:.2f} | {each} | {p50:.1f} ms | {p99:.1f} ms |")
        print(json.dumps({"mode": mode, "median_rps": rps, "median_ratio_to_off": round(ratio, 3)}))
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
