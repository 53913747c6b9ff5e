"""`python -m bench.ab REV`: one of our routes served by the code at REV and by the working tree, in turn.

For a change's before and after, in one run on one machine: each round starts the server from a
checkout of REV (a temporary git worktree), then from the working tree, and loads each at every
concurrency. The report gives each side's median over the rounds, and their ratio. Both sides serve
the working tree's models/.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import loads
from bench.lineup import OURS, ROOT, servers
from bench.process import running

CONCURRENCY = (1, 16, 64)
SIDES = ("before", "after")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare the working tree with, e.g. HEAD~1")
    parser.add_argument("--route", default="/predict", help="one of our rows, as the bench names it (default /predict)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both sides, in turn (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per concurrency (default 5)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=CONCURRENCY, help="connections to load with (default 1 16 64)"
    )
    args = parser.parse_args()
    name = f"{OURS} ({args.route})"
    server = next((s for s in servers(with_peers=False) if s.name == name), None)
    if server is None:
        sys.exit(f"no row named {name!r} in bench/lineup.py")
    rps: dict[str, dict[int, list[float]]] = {side: {c: [] for c in args.concurrency} for side in SIDES}
    p50: dict[str, dict[int, list[float]]] = {side: {c: [] for c in args.concurrency} for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.rev], cwd=ROOT, check=True)
        try:
            for _ in range(args.rounds):
                for side, root in zip(SIDES, (before, ROOT), strict=True):
                    with running(server, root=root) as live:
                        port = live.grpc_port if server.load.protocol == "grpc" else live.port
                        loads.run(server.load, port, 1, 1.0)  # warm-up
                        for c in args.concurrency:
                            result = loads.run(server.load, port, c, args.duration)
                            rps[side][c].append(result.rps)
                            p50[side][c].append(result.p50_ms)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    print(f"{name}: {args.rev} (before) against the working tree (after), median of {args.rounds} rounds")
    print("| c | req/s before | req/s after | after / before | p50 ms before | p50 ms after |")
    print("|---|---|---|---|---|---|")
    for c in args.concurrency:
        r = [statistics.median(rps[side][c]) for side in SIDES]
        p = [statistics.median(p50[side][c]) for side in SIDES]
        print(f"| {c} | {r[0]:,.0f} | {r[1]:,.0f} | {r[1] / r[0]:.2f} | {p[0]:.2f} | {p[1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
