"""Payload logging on a real server process, to real HTTP sinks run by the test: each sampled inference
request and its response arrive as a pair of CloudEvents in binary mode (KServe's logger format), over
REST and gRPC; a dead sink and a stalled one cost no request anything, and their events are counted."""

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from contract.protos import open_inference_grpc_pb2 as pb
from tests.e2e.server import REPO_ROOT, ServerProcess, free_port
from tests.helpers import DEFAULT_VERSION, wait_for

pytestmark = pytest.mark.e2e
WAIT_S = 60.0  # a guard against a hang, not a speed limit
SEVEN = json.loads((REPO_ROOT / "docs" / "examples" / "seven.json").read_text())["image"]


@dataclass
class Sink:
    """An HTTP server that keeps every event it is sent; while `held`, it takes them but does not answer."""

    url: str
    events: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.events) >= count, WAIT_S), self.events
            return list(self.events)


@pytest.fixture
def sink() -> Iterator[Sink]:
    yield from _sink(held=False)


def _sink(*, held: bool) -> Iterator[Sink]:
    port = free_port()
    state = Sink(f"http://127.0.0.1:{port}/events")
    if not held:
        state.released.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            with state.arrived:
                state.events.append(({k.lower(): v for k, v in self.headers.items()}, body))
                state.arrived.notify_all()
            state.released.wait(WAIT_S)
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()


def _events_counted(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {k: float(v) for k, v in re.findall(r'^mnist_payload_events_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}


def _server(tmp_path: Path, sink_url: str, **settings: object) -> ServerProcess:
    return ServerProcess(
        REPO_ROOT / "models",
        tmp_path / "server.log",
        poll_interval_s=0,
        versions_to_keep=1,
        payload_log_url=sink_url,
        payload_log_sample=1,
        **settings,
    )


def test_a_rest_request_and_its_response_arrive_as_a_pair_of_cloudevents(tmp_path: Path, sink: Sink) -> None:
    with _server(tmp_path, sink.url) as server:
        body = json.dumps({"image": SEVEN}).encode()
        answer = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": "application/json"})
        httpx.get(f"{server.url}/readyz")  # not inference: never logged
        (request_headers, request_body), (response_headers, response_body) = sink.wait_for(2)
    assert answer.status_code == 200
    assert request_body == body and response_body == answer.content
    rid = answer.headers["x-request-id"]
    for headers, kind in ((request_headers, "request"), (response_headers, "response")):
        assert headers["ce-specversion"] == "1.0" and headers["ce-id"] == rid
        assert headers["ce-type"] == f"org.kubeflow.serving.inference.{kind}"
        assert headers["ce-source"].endswith(f":{server.port}/") and headers["ce-time"].endswith("Z")
        assert headers["ce-modelname"] == headers["ce-inferenceservicename"] == "mnist"
        assert headers["ce-modelversion"] == DEFAULT_VERSION.name and headers["ce-endpoint"] == "/predict"
        assert headers["content-type"] == "application/json"
    assert len(sink.events) == 2


def test_a_grpc_call_arrives_as_its_protobuf_messages_and_a_failed_one_with_its_status(
    tmp_path: Path, sink: Sink
) -> None:
    with _server(tmp_path, sink.url) as server, grpc.insecure_channel(server.grpc_target) as channel:
        tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=[1, 784])
        request = pb.ModelInferRequest(
            model_name="mnist", inputs=[tensor], raw_input_contents=[np.asarray([SEVEN], "<f4").tobytes()]
        )
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        infer(request.SerializeToString(), timeout=30)
        (request_headers, request_body), (response_headers, response_body) = sink.wait_for(2)
        short = pb.ModelInferRequest(model_name="mnist", inputs=[tensor], raw_input_contents=[b"\0" * 12])
        with pytest.raises(grpc.RpcError) as refused:
            infer(short.SerializeToString(), timeout=30)
        (_, failed_request), (failed_headers, failed_response) = sink.wait_for(4)[2:]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert pb.ModelInferRequest.FromString(failed_request) == short
    assert failed_headers["content-type"] == "application/json"
    assert json.loads(failed_response) == {"code": "INVALID_ARGUMENT", "error": refused.value.details()}
    assert pb.ModelInferRequest.FromString(request_body) == request
    assert pb.ModelInferResponse.FromString(response_body).model_version == DEFAULT_VERSION.name
    assert request_headers["ce-id"] == response_headers["ce-id"]
    assert request_headers["ce-endpoint"] == "/inference.GRPCInferenceService/ModelInfer"
    assert response_headers["content-type"] == "application/x-protobuf; messageType=inference.ModelInferResponse"


def test_a_dead_sink_fails_no_request_and_is_counted(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/events"  # nothing listens there
    with _server(tmp_path, dead) as server:
        statuses = [httpx.post(f"{server.url}/predict", json={"image": SEVEN}).status_code for _ in range(20)]
        wait_for(lambda: _events_counted(server.url).get("failed", 0) >= 40, "40 failed events")
        counted = _events_counted(server.url)
    assert statuses == [200] * 20
    assert counted.get("failed") == 40 and counted.get("sent", 0) == 0


def test_a_stalled_sink_makes_no_request_wait_and_drops_what_does_not_fit(tmp_path: Path) -> None:
    stalled_sink = _sink(held=True)
    sink = next(stalled_sink)
    try:
        with _server(tmp_path, sink.url, payload_log_max_queued=4, payload_log_timeout_s=60) as server:
            first = httpx.post(f"{server.url}/predict", json={"image": SEVEN})
            sink.wait_for(1)  # the sender is now stuck on the sink, which will not answer until released
            # Each of these finishes while the sink is stalled: none waits for it.
            statuses = [httpx.post(f"{server.url}/predict", json={"image": SEVEN}).status_code for _ in range(30)]
            held = _events_counted(server.url)
            sink.released.set()
            sink.wait_for(2 + 4)  # the stuck pair, then the two pairs the queue held
            after = httpx.post(f"{server.url}/predict", json={"image": SEVEN})
            sink.wait_for(2 + 4 + 2)
    finally:
        sink.released.set()
        next(stalled_sink, None)
    assert first.status_code == 200 and statuses == [200] * 30 and after.status_code == 200
    assert held.get("dropped") == 2 * (30 - 2)  # the queue holds 4 events: two pairs
