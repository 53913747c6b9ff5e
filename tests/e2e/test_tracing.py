"""Traces from a real server process to a real OTLP/HTTP receiver run by the test (the requests decoded with
`opentelemetry-proto`): a REST request and a gRPC call each join the caller's trace, configured by the
OTEL_* environment alone; and a collector that is down fails no request."""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from contract.protos import open_inference_grpc_pb2 as pb
from tests.e2e.server import REPO_ROOT, ServerProcess, free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e
WAIT_S = 60.0  # a guard against a hang, not a speed limit
SEVEN = json.loads((REPO_ROOT / "docs" / "examples" / "seven.json").read_text())["image"]


@dataclass(frozen=True)
class Received:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    links: list[str]
    service: str


@dataclass
class Collector:
    endpoint: str
    spans: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def find(self, condition: Callable[[Received], bool]) -> list[Received]:
        with self.lock:
            return [s for s in self.spans if condition(s)]


@pytest.fixture
def collector() -> Iterator[Collector]:
    port = free_port()
    state = Collector(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(
                self.rfile.read(int(self.headers["content-length"]))
            )
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    with state.lock:
                        state.spans.extend(_received(span, resource["service.name"]) for span in scope_spans.spans)
            body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _received(span: object, service: str) -> Received:
    attributes = {}
    for a in span.attributes:  # type: ignore[attr-defined]
        value = a.value
        attributes[a.key] = getattr(value, value.WhichOneof("value"))
    return Received(
        span.name,  # type: ignore[attr-defined]
        span.trace_id.hex(),  # type: ignore[attr-defined]
        span.span_id.hex(),  # type: ignore[attr-defined]
        span.parent_span_id.hex(),  # type: ignore[attr-defined]
        attributes,
        [link.span_id.hex() for link in span.links],  # type: ignore[attr-defined]
        service,
    )


def _traced_server(tmp_path: Path, endpoint: str) -> ServerProcess:
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "mnist-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export soon, so the test need not wait
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",  # s
    }
    return ServerProcess(REPO_ROOT / "models", tmp_path / "server.log", env=env, poll_interval_s=0, versions_to_keep=1)


REST_TRACE, GRPC_TRACE = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "b7ad6b7169203331"


def test_rest_and_grpc_requests_join_their_callers_traces_at_the_collector(
    tmp_path: Path, collector: Collector
) -> None:
    with _traced_server(tmp_path, collector.endpoint) as server:
        rest = httpx.post(
            f"{server.url}/predict",
            json={"image": SEVEN},
            headers={"traceparent": f"00-{REST_TRACE}-{CALLER_SPAN}-01"},
        )
        tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=[1, 784])
        request = pb.ModelInferRequest(
            model_name="mnist", inputs=[tensor], raw_input_contents=[np.asarray([SEVEN], "<f4").tobytes()]
        )
        with grpc.insecure_channel(server.grpc_target) as channel:
            channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
                request.SerializeToString(),
                metadata=(("traceparent", f"00-{GRPC_TRACE}-{CALLER_SPAN}-01"),),
                timeout=30,
            )
        for trace in (REST_TRACE, GRPC_TRACE):
            wait_for(
                lambda t=trace: (
                    {"decode", "queue", "response", "batch", "model call"}
                    <= {s.name for s in collector.find(lambda s, t=t: s.trace_id == t)}
                ),
                f"every span of trace {trace}",
            )
    assert rest.status_code == 200
    (rest_span,) = collector.find(lambda s: s.trace_id == REST_TRACE and s.name == "POST /predict")
    (grpc_span,) = collector.find(lambda s: s.trace_id == GRPC_TRACE and s.name.endswith("/ModelInfer"))
    for span in (rest_span, grpc_span):
        assert span.parent_span_id == CALLER_SPAN and span.service == "mnist-under-test"
        assert span.attributes["mnist.model"] == "mnist"
        (batch,) = collector.find(lambda s, span=span: s.trace_id == span.trace_id and s.name == "batch")
        assert span.span_id in batch.links
    assert rest_span.attributes["http.route"] == "/predict" and grpc_span.attributes["rpc.grpc.status_code"] == 0


def test_a_collector_that_is_down_fails_no_request(tmp_path: Path) -> None:
    with _traced_server(tmp_path, f"http://127.0.0.1:{free_port()}") as server:  # nothing listens there
        statuses = [httpx.post(f"{server.url}/predict", json={"image": SEVEN}).status_code for _ in range(50)]
        wait_for(lambda: "export" in server.logs().lower(), "the SDK to report that exporting failed")
        after = httpx.post(f"{server.url}/predict", json={"image": SEVEN}).status_code
    assert statuses == [200] * 50 and after == 200
