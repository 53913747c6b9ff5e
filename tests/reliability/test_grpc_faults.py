"""gRPC under faults, against real server processes: hostile messages, expired deadlines and cancelled
calls under load, and kill -9 of a worker under gRPC load, with figures for RELIABILITY.md."""

import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.protos import open_inference_grpc_pb2 as pb
from contract.protos.tensorflow_serving.apis import predict_pb2
from tests.e2e.server import REPO_ROOT, ServerProcess
from tests.helpers import wait_for
from tests.reliability.load import HEY_MAX_S, grpc_load_command, grpc_summary, server_grpc_answers
from tests.reliability.test_reliability import LOAD_BEGUN, _workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
Record = Callable[..., None]
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
PREDICT = "/tensorflow.serving.PredictionService/Predict"
SERVER_ERRORS = {"UNKNOWN", "INTERNAL", "DATA_LOSS"}


def _infer_request(pixels: np.ndarray, *, shape: list[int] | None = None, model: str = "mnist") -> bytes:
    tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=shape or list(pixels.shape))
    request = pb.ModelInferRequest(
        model_name=model, inputs=[tensor], raw_input_contents=[pixels.astype("<f4").tobytes()]
    )
    return request.SerializeToString()


def _call(channel: grpc.Channel, method: str, body: bytes, timeout: float = 30) -> grpc.StatusCode:
    try:
        channel.unary_unary(method)(body, timeout=timeout)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def _grpc_answers_by_code(url: str) -> Counter[str]:
    return Counter(server_grpc_answers(url))


def test_hostile_grpc_messages_get_their_code_and_never_a_server_error(
    default_repo: Path, tmp_path: Path, record: Record
) -> None:
    row = np.zeros((1, 784), np.float32)
    garbage = np.random.default_rng(0).bytes(4096)
    cases: list[tuple[str, str, bytes, grpc.StatusCode]] = [
        ("random bytes as ModelInfer", MODEL_INFER, garbage, grpc.StatusCode.INVALID_ARGUMENT),
        ("random bytes as Predict", PREDICT, garbage, grpc.StatusCode.INVALID_ARGUMENT),
        ("truncated message", MODEL_INFER, _infer_request(row)[:-7], grpc.StatusCode.INVALID_ARGUMENT),
        ("empty message", MODEL_INFER, b"", grpc.StatusCode.INVALID_ARGUMENT),
        ("783 pixels", MODEL_INFER, _infer_request(row[:, :-1]), grpc.StatusCode.INVALID_ARGUMENT),
        ("NaN pixels", MODEL_INFER, _infer_request(np.full((1, 784), np.nan)), grpc.StatusCode.INVALID_ARGUMENT),
        (
            "shape promising 10^9 rows",
            MODEL_INFER,
            _infer_request(row, shape=[10**9, 784]),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ("unknown model", MODEL_INFER, _infer_request(row, model="../../etc/passwd"), grpc.StatusCode.NOT_FOUND),
        ("message over the size limit", MODEL_INFER, b"\0" * (4 * 1024 * 1024 + 1), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (
            "Predict without a model",
            PREDICT,
            predict_pb2.PredictRequest().SerializeToString(),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ("unknown method", "/inference.GRPCInferenceService/Nope", b"", grpc.StatusCode.UNIMPLEMENTED),
    ]
    with (
        ServerProcess(default_repo, tmp_path / "log", poll_interval_s=0) as server,
        grpc.insecure_channel(server.grpc_target) as channel,
    ):
        codes = []
        for name, method, body, expected in cases:
            codes.append(_call(channel, method, body))
            assert codes[-1] == expected, name
            assert _call(channel, MODEL_INFER, _infer_request(row)) == grpc.StatusCode.OK, f"after {name}"
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert server.proc is not None and server.proc.poll() is None
        logs = server.logs()
    assert "Traceback" not in logs and "DecodeError" not in logs
    record(
        "every hostile gRPC message gets its documented code, never UNKNOWN or INTERNAL; the next valid call "
        "gets OK; health stays SERVING",
        cases=len(cases),
        server_errors=sum(code.name in SERVER_ERRORS for code in codes),
    )


def _cancel_in_flight(target: str, calls: int) -> Counter[str]:
    """`calls` ModelInfer calls at once, each cancelled by the client a moment after it was sent."""
    body = _infer_request(np.zeros((1, 784), np.float32))
    codes: Counter[str] = Counter()
    with grpc.insecure_channel(target) as channel:
        infer = channel.unary_unary(MODEL_INFER)
        sent = [infer.future(body, timeout=30) for _ in range(calls)]
        time.sleep(0.002)
        for call in sent:
            call.cancel()
        for call in sent:
            if call.cancelled():
                codes["CANCELLED"] += 1
            else:
                codes[call.code().name] += 1
    return codes


def test_expired_deadlines_and_cancelled_calls_leave_nothing_behind(
    default_repo: Path, tmp_path: Path, record: Record
) -> None:
    with ServerProcess(default_repo, tmp_path / "log", poll_interval_s=0, access_log="false") as server:
        command = grpc_load_command(server.grpc_target, 16, 4)
        expiring = subprocess.run(
            [*command, "--timeout", "0.002"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
        )
        deadlines = grpc_summary(expiring.stdout)["codes"]
        cancelled = _cancel_in_flight(server.grpc_target, 64)
        wait_for(lambda: _queued_rows(server.url) == 0, "the queue to be empty")
        with grpc.insecure_channel(server.grpc_target) as channel:
            assert _call(channel, MODEL_INFER, _infer_request(np.zeros((1, 784), np.float32))) == grpc.StatusCode.OK
        seen = _grpc_answers_by_code(server.url)
        assert server.proc is not None and server.proc.poll() is None
    assert deadlines.get("DEADLINE_EXCEEDED", 0) > 0, deadlines
    # UNAVAILABLE: gRPC core refuses a stream (RST_STREAM REFUSED_STREAM, never processed, safe to retry) while
    # too many that clients reset are still open on the server: its guard against a flood of resets.
    assert set(deadlines) <= {"OK", "DEADLINE_EXCEEDED", "UNAVAILABLE"}, deadlines
    assert cancelled.get("CANCELLED", 0) > 0 and set(cancelled) <= {"OK", "CANCELLED", "UNAVAILABLE"}, cancelled
    assert not set(seen) & SERVER_ERRORS, seen
    record(
        "calls with a 2 ms deadline at 16 callers on two connections, then 64 calls cancelled in flight: each "
        "ends OK, DEADLINE_EXCEEDED, CANCELLED, or UNAVAILABLE when gRPC refuses a stream under the flood of "
        "resets (never processed, safe to retry); the server never errs, its queue empties, the next call gets OK",
        deadline_calls=sum(deadlines.values()),
        deadline_exceeded=deadlines.get("DEADLINE_EXCEEDED", 0),
        refused_streams=deadlines.get("UNAVAILABLE", 0),
        cancelled=cancelled.get("CANCELLED", 0),
        cancelled_after_answer=cancelled.get("OK", 0),
        cancelled_refused=cancelled.get("UNAVAILABLE", 0),
        server_errors=sum(seen[code] for code in SERVER_ERRORS),
    )


def _queued_rows(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(n) for n in re.findall(r"^mnist_queued_rows\{[^}]*\} ([\d.e+]+)$", text, flags=re.M))


def _connections(pid: int, port: int) -> int:
    """Established TCP connections to local `port` that process `pid` holds (read from /proc, as ss does)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            held += local_port == port and state == "01" and inode in sockets
    return held


def test_kill_9_of_one_worker_under_grpc_load_fails_only_its_calls(
    default_repo: Path, tmp_path: Path, record: Record
) -> None:
    with ServerProcess(default_repo, tmp_path / "log", poll_interval_s=0, workers=2, access_log="false") as server:
        wait_for(lambda: server.logs().count('"msg":"serving"') >= 2, "both workers to serve")
        workers = _workers(server)
        before = sum(server_grpc_answers(server.url).values())
        load = subprocess.Popen(
            grpc_load_command(server.grpc_target, 16, HEY_MAX_S), stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
        )
        try:
            wait_for(lambda: sum(server_grpc_answers(server.url).values()) >= before + LOAD_BEGUN, "the gRPC load")
            # The worker that holds the callers' connections (the kernel spreads them over both, or not).
            victim = max(workers, key=lambda pid: _connections(pid, server.grpc_port))
            assert _connections(victim, server.grpc_port) > 0
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: server.logs().count('"msg":"serving"') >= 3, "the supervisor's new worker to serve")
            after_replaced = sum(server_grpc_answers(server.url).values())
            wait_for(lambda: sum(server_grpc_answers(server.url).values()) >= after_replaced + LOAD_BEGUN, "more calls")
        finally:
            load.send_signal(signal.SIGINT)
        codes: dict[str, Any] = grpc_summary(load.communicate(timeout=120)[0])["codes"]
        with grpc.insecure_channel(server.grpc_target) as channel:
            after = [_call(channel, MODEL_INFER, _infer_request(np.zeros((1, 784), np.float32))) for _ in range(20)]
        replaced = _workers(server)
    failed = sum(n for code, n in codes.items() if code != "OK")
    assert codes.get("OK", 0) > 0 and set(codes) <= {"OK", "UNAVAILABLE"}, codes
    assert victim not in replaced, replaced
    assert after == [grpc.StatusCode.OK] * 20
    record(
        "kill -9 of the worker holding the connections of 16 gRPC callers on two channels: only the calls in flight on "
        "its connections, or sent before the channels reconnect, fail, all with UNAVAILABLE (what a client's retry "
        "policy retries); the load goes on through the other worker and then its replacement",
        answered=codes.get("OK", 0),
        failed=failed,
        callers=16,
        errors_after=sum(code != grpc.StatusCode.OK for code in after),
    )
