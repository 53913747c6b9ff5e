"""Traces, in-process with the SDK's in-memory exporter: a request's span joins the caller's trace, with its
decode, queue and response stages; each model call is a batch span linked to every request it served; and
the OTEL_* environment alone turns tracing on, or leaves it off."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.config import Settings
from service.tracing import Tracing, TracingSetupError
from tests.helpers import DEFAULT_VERSION, serving

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
ROW = [0.0] * 784


@pytest.fixture(scope="module")
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(
    exported: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    root = tmp_path_factory.mktemp("models")
    (root / "mnist").mkdir()
    (root / "mnist" / "1").symlink_to(DEFAULT_VERSION, target_is_directory=True)
    settings = Settings(model_dir=root, poll_interval_s=0, watch_repository=False, self_check_repeats=2)
    async with serving(settings, Tracing(provider)) as (_, http):
        yield http


@IN_MODULE_LOOP
async def test_a_global_tracer_provider_gets_no_second_span_of_each_request(
    client: httpx.AsyncClient, exported: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI (0.142 on) traces every request to the global provider by itself; the service's own span is
    the one trace of a request, wherever a global provider comes from (auto-instrumentation, a library)."""
    from opentelemetry import trace

    global_spans = InMemorySpanExporter()
    global_provider = TracerProvider()
    global_provider.add_span_processor(SimpleSpanProcessor(global_spans))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", global_provider)  # as trace.set_tracer_provider() would
    exported.clear()
    assert (await client.post("/predict", json={"image": ROW})).status_code == 200
    assert (await client.get("/v2/health/ready")).status_code == 200
    assert global_spans.get_finished_spans() == ()
    assert len(_named(exported.get_finished_spans(), "POST /predict")) == 1


def _traceparent(trace_id: int, span_id: int) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01"}


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


@IN_MODULE_LOOP
async def test_each_request_joins_its_callers_trace_with_its_stages_and_batches_link_them(
    client: httpx.AsyncClient, exported: InMemorySpanExporter
) -> None:
    exported.clear()
    callers = [(0xA0 + i, 0xB0 + i) for i in range(3)]
    answers = await asyncio.gather(
        *(client.post("/predict", json={"image": ROW}, headers=_traceparent(*c)) for c in callers)
    )
    assert [a.status_code for a in answers] == [200] * 3
    spans = exported.get_finished_spans()
    requests = _named(spans, "POST /predict")
    assert sorted((s.context.trace_id, s.parent.span_id) for s in requests) == callers
    for request in requests:
        assert request.attributes["http.route"] == "/predict" and request.attributes["http.response.status_code"] == 200
        assert request.attributes["mnist.model"] == "mnist" and request.attributes["mnist.version"] == 1
        children = {s.name for s in spans if s.parent is not None and s.parent.span_id == request.context.span_id}
        assert {"decode", "queue", "response"} <= children, children
    batches = _named(spans, "batch")
    linked = {link.context.span_id for batch in batches for link in batch.links}
    assert linked == {s.context.span_id for s in requests}
    assert sum(batch.attributes["mnist.batch.requests"] for batch in batches) == 3
    for batch in batches:
        calls = [s for s in _named(spans, "model call") if s.parent.span_id == batch.context.span_id]
        assert len(calls) == 1 and calls[0].attributes["mnist.batch.rows"] == batch.attributes["mnist.batch.rows"]
        assert batch.context.trace_id in {trace for trace, _ in callers}  # in a caller's trace, not a new one


@IN_MODULE_LOOP
async def test_a_request_without_traceparent_starts_a_trace_and_an_error_is_marked(
    client: httpx.AsyncClient, exported: InMemorySpanExporter
) -> None:
    exported.clear()
    bad = await client.post("/predict", json={"image": ROW[:-1]})
    assert bad.status_code == 422
    (request,) = _named(exported.get_finished_spans(), "POST /predict")
    assert request.parent is None and request.attributes["http.response.status_code"] == 422
    assert not _named(exported.get_finished_spans(), "batch")  # refused before any model call


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ],
)
def test_only_the_otel_environment_turns_tracing_on(environ: dict[str, str], on: bool) -> None:
    tracing = Tracing.from_environment(environ)
    assert (tracing is not None) == on
    if tracing is not None:
        tracing.shutdown()


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "not one this server has"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
    ],
)
def test_what_the_server_cannot_do_is_refused_with_a_sentence(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(TracingSetupError, match=problem):
        Tracing.from_environment(environ)
