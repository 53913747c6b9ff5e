"""What tracing costs: `python -m bench.tracing_cost [--seconds 8] [--rounds 3]`.

The same server three ways, one after another, in rounds (off, sampled at 1%, sampled at 100%), each under
`hey -c 16` on `/predict` with the README's seven; spans go by OTLP/HTTP to a receiver in this process
that accepts and discards them. Prints one JSON line per run and the medians, as ratios to "off" within
the run: the machine is shared and noisy, so only the ratios mean anything.
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
    off = statistics.median(float(r["rps"]) for r in runs["off"])  # type: ignore[arg-type]
    for mode, results in runs.items():
        rps = statistics.median(float(r["rps"]) for r in results)  # type: ignore[arg-type]
        p50 = statistics.median(float(r["p50_ms"]) for r in results)  # type: ignore[arg-type]
        print(json.dumps({"mode": mode, "median_rps": rps, "rps_vs_off": round(rps / off, 3), "median_p50_ms": p50}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
