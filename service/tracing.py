"""OpenTelemetry traces, configured by the standard `OTEL_*` environment alone.

Off unless `OTEL_TRACES_EXPORTER` names an exporter: `otlp` (OTLP over HTTP/protobuf, to
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; the `otlp` extra installs it) or
`console`. Off, the server holds no `Tracing` at all, and each stage pays one `is None` test. On, the
SDK reads the rest: `OTEL_SERVICE_NAME` (default `bn-mnist-serving`), `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER` and its argument, `OTEL_PROPAGATORS` (W3C `traceparent`/`tracestate` by
default), and `OTEL_BSP_*`. Spans are exported in batches by the SDK's own thread, off the event loop;
a collector that is down or slow only makes that thread drop spans.

The spans of an inference request, in the caller's trace when it sent `traceparent` (HTTP header or gRPC
metadata):
- the request (SERVER): route or RPC, status, the model and version that answered;
- `decode`: from the request's start until its pixels reach the data plane;
- `queue`: its wait in the version's batcher;
- `batch`: one per model call, with its row and request counts, in the trace of the first sampled
  request it served and *linked* to every request span it served; its child `model call`;
- `response`: from the answer until the response is sent.
"""

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode

import service
from service.logs import Answered, answered_by

__all__ = ["BatchTracing", "Span", "Tracing", "TracingSetupError", "failed"]

DEFAULT_SERVICE_NAME = "bn-mnist-serving"
EXPORTERS = ("otlp", "console", "none")

logger = logging.getLogger(__name__)


class TracingSetupError(Exception):
    """The OTEL_* environment asks for what this server cannot do; the message says what to change."""


class Tracing:
    def __init__(self, provider: Any) -> None:
        self._provider = provider
        self.tracer = provider.get_tracer("bn-mnist-serving", service.__version__)
        # The headers the configured propagators read (traceparent, tracestate, baggage by default): a
        # request's other headers need not be decoded.
        self.fields = frozenset(name.encode("latin-1") for name in propagate.get_global_textmap().fields)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Tracing | None":
        """Tracing as `OTEL_*` configures it, or None when no exporter is named (or the SDK is disabled)."""
        name = environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
        if name == "none" or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = _exporter(name, environ)
        resource = Resource.create({SERVICE_NAME: environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME})
        provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def shutdown(self) -> None:
        """Export what is buffered (the SDK bounds how long) and stop."""
        self._provider.shutdown()

    @contextmanager
    def serving(self, name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[Span]:
        """The span of one request, current while it is served, in the trace `carrier` propagates; with its
        `decode` and `response` children once a version has answered."""
        started = time.time_ns()
        parent = propagate.extract(carrier)
        span = self.tracer.start_span(name, parent, SpanKind.SERVER, attributes, start_time=started)
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            yield span
        finally:
            context.detach(token)
            answered = answered_by.get()
            if answered is not None and span.is_recording():
                self._stages(span, started, answered)
            span.end()

    def _stages(self, span: Span, started: int, answered: Answered) -> None:
        span.set_attributes({"mnist.model": answered.model, "mnist.version": answered.version})
        within = trace.set_span_in_context(span)
        self.tracer.start_span("decode", within, start_time=started).end(answered.started_ns)
        self.tracer.start_span("response", within, start_time=answered.finished_ns).end()

    def batch_tracer(self, model: str, version: int) -> "BatchTracing":
        return BatchTracing(self.tracer, {"mnist.model": model, "mnist.version": version})


def failed(span: Span, description: str) -> None:
    span.set_status(Status(StatusCode.ERROR, description))


@dataclass(frozen=True)
class _Caller:
    span: SpanContext
    queued_ns: int


class BatchTracing:
    """A version's batcher's spans (a `service.core.batcher.BatchTracer`)."""

    def __init__(self, tracer: Any, attributes: dict[str, Any]) -> None:
        self._tracer = tracer
        self._attributes = attributes

    def enqueued(self) -> _Caller:
        return _Caller(trace.get_current_span().get_span_context(), time.time_ns())

    @contextmanager
    def model_call(self, callers: Sequence[Any], rows: int) -> Iterator[None]:
        sampled = [c.span for c in callers if c.span.is_valid and c.span.trace_flags.sampled]
        if not sampled:
            yield
            return
        now = time.time_ns()
        for caller in callers:
            if caller.span in sampled:
                waited = trace.set_span_in_context(NonRecordingSpan(caller.span))
                self._tracer.start_span("queue", waited, start_time=caller.queued_ns).end(now)
        attributes = {**self._attributes, "mnist.batch.rows": rows, "mnist.batch.requests": len(callers)}
        first = trace.set_span_in_context(NonRecordingSpan(sampled[0]))
        links = [Link(span) for span in sampled]
        batch = self._tracer.start_as_current_span("batch", first, attributes=attributes, links=links, start_time=now)
        with batch, self._tracer.start_as_current_span("model call", attributes=attributes):
            yield


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingSetupError(f"OTEL_TRACES_EXPORTER={name} is not one this server has: {', '.join(EXPORTERS)}")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if (protocol or "http/protobuf") != "http/protobuf":
        raise TracingSetupError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: this server exports http/protobuf only")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TracingSetupError(
            "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install 'bn-mnist-serving[otlp]'"
        ) from None
    return OTLPSpanExporter()
