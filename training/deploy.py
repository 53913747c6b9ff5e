"""`python -m training deploy`: train, verify, gate, publish, and see the new version serve traffic.

Each step prints what it found; the first failure exits non-zero with a message, and the version the
server was serving before stays served: a refused model is never published, and a published one
that the server refuses never takes traffic.
"""

import argparse
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

DEFAULT_MIN_ACCURACY = 0.96
DEFAULT_TOLERANCE = 0.005
DEFAULT_WAIT_S = 180.0
POLL_S = 0.5


class DeployError(Exception):
    pass


def add_deploy_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from training.cli import _add_training_arguments

    parser = commands.add_parser(
        "deploy",
        help="train, verify, gate, publish, and wait until the server at --server serves the new version",
        description=__doc__,
    )
    _add_training_arguments(parser)
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="URL of the running server")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=DEFAULT_MIN_ACCURACY,
        help=f"held-out accuracy floor (default: {DEFAULT_MIN_ACCURACY})",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"how far below the served version's accuracy a new one may be (default: {DEFAULT_TOLERANCE})",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        help=f"seconds to wait for the server (default: {DEFAULT_WAIT_S:g})",
    )
    parser.add_argument(
        "--admin-token",
        default=os.environ.get("MNIST_ADMIN_TOKEN"),
        help="bearer token to ask the server to rescan at once (default: $MNIST_ADMIN_TOKEN); without it, "
        "the server's own polling picks the version up",
    )
    parser.set_defaults(handler=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    from training.cli import CliError

    try:
        return _deploy(args)
    except DeployError as e:
        raise CliError(f"deploy stopped: {e}") from e


def _deploy(args: argparse.Namespace) -> int:
    from training.cli import stage, train_from_args
    from training.export import ExportError

    started = time.monotonic()
    server = args.server.rstrip("/")
    http = httpx.Client(base_url=server, timeout=10)
    served = _served_version(http, args.name)
    print(f"[1/7] server {server} serves {args.name} version {served if served else '(none)'}")

    trained = train_from_args(args)
    accuracy = trained.result.metrics["test_accuracy"]
    print(f"[2/7] trained {trained.network.name}: held-out accuracy {accuracy:.4f}")
    try:
        with stage(args, trained) as staged:
            print(f"[3/7] export verified: {', '.join(c.name for c in staged.checks)}")
            _gate(accuracy, served, args, trained.splits.test.x, trained.splits.test.y)
            version = staged.publish()
            probe, expected_digit = staged.metadata.probes.inputs[7], 7
    except ExportError as e:
        raise DeployError(f"{e}; nothing was published") from e
    print(f"[5/7] published {args.name} version {version} at {args.models_dir / args.name / str(version)}")

    if args.admin_token:
        http.post("/admin/reload", headers={"authorization": f"Bearer {args.admin_token}"}).raise_for_status()
    waited = _wait_available(http, args.name, version, args.wait)
    print(f"[6/7] server reports version {version} AVAILABLE after {waited:.1f}s")

    answer = http.post("/predict", json={"image": probe, "model": args.name, "version": version})
    body = answer.json()
    if answer.status_code != 200 or body.get("version") != version:
        raise DeployError(f"smoke prediction failed: HTTP {answer.status_code} {body}")
    digit = body["predictions"][0]["digit"]
    if digit != expected_digit:
        raise DeployError(f"smoke prediction: a held-out {expected_digit} came back as {digit}")
    print(f"[7/7] smoke prediction through /predict: {digit} from version {body['version']}")
    print(
        f"deployed {args.name} version {version} (was {served or 'none'}): accuracy {accuracy:.4f}, "
        f"{time.monotonic() - started:.0f}s in all"
    )
    return 0


def _gate(accuracy: float, served: int | None, args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> None:
    """Refuse a model under the floor, or worse than the served one on the same held-out digits."""
    from training.export import load_signature
    from training.train import score

    floor_ok = accuracy >= args.min_accuracy
    print(f"[4/7] gate: accuracy {accuracy:.4f} vs floor {args.min_accuracy:.4f}: {'pass' if floor_ok else 'FAIL'}")
    if not floor_ok:
        raise DeployError(f"gate refused: accuracy {accuracy:.4f} is below the floor {args.min_accuracy:.4f}")
    if served is None:
        return
    served_dir = Path(args.models_dir) / args.name / str(served)
    if not served_dir.is_dir():
        raise DeployError(f"served version {served} is not in {served_dir.parent}; is --models-dir the server's?")
    _, serve = load_signature(served_dir)
    served_accuracy, _ = score(serve(x), y)
    ok = accuracy >= served_accuracy - args.tolerance
    print(
        f"      vs served version {served} on the same digits: {served_accuracy:.4f} "
        f"(tolerance {args.tolerance:.4f}): {'pass' if ok else 'FAIL'}"
    )
    if not ok:
        raise DeployError(
            f"gate refused: accuracy {accuracy:.4f} is more than {args.tolerance:.4f} below "
            f"the served version {served} ({served_accuracy:.4f})"
        )


def _served_version(http: httpx.Client, name: str) -> int | None:
    try:
        response = http.get(f"/v1/models/{name}")
    except httpx.HTTPError as e:
        raise DeployError(f"cannot reach the server: {e}") from e
    if response.status_code == 404:
        return None
    response.raise_for_status()
    available = [int(s["version"]) for s in response.json()["model_version_status"] if s["state"] == "AVAILABLE"]
    return max(available, default=None)


def _wait_available(http: httpx.Client, name: str, version: int, timeout: float) -> float:
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout:
        response = http.get(f"/v1/models/{name}/versions/{version}")
        if response.status_code == 200:
            status = response.json()["model_version_status"][0]
            last = status
            if status["state"] == "AVAILABLE":
                return time.monotonic() - started
            if status["status"]["error_code"] != "OK":
                raise DeployError(
                    f"the server refused version {version}: {status['status']['error_message']}; "
                    "it keeps serving the previous version"
                )
        time.sleep(POLL_S)
    raise DeployError(f"version {version} not AVAILABLE after {timeout:g}s (last status: {last})")
