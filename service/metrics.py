"""Prometheus metrics, in a registry of the server's own (so several servers can live in one process)."""

import os
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from service.core.status import VersionState

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mnist_requests",
            "Requests by protocol, endpoint and status",
            ["protocol", "endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mnist_request_duration_seconds",
            "Time from request start to response end",
            ["protocol", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mnist_batch_size", "Rows per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.shed = Counter(
            "mnist_shed_requests",
            "Requests refused at capacity because the version's queue was full",
            ["model", "version"],
            registry=self.registry,
        )
        self.queued_rows = Gauge(
            "mnist_queued_rows",
            "Rows waiting for a model call",
            ["model", "version"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.version_state = Gauge(
            "mnist_model_version_state",
            "1 for the state each model version is in",
            ["model", "version", "state"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def observe_request(self, protocol: str, endpoint: str, method: str, status: str, seconds: float) -> None:
        self.requests.labels(protocol, endpoint, method, status).inc()
        self.latency.labels(protocol, endpoint).observe(seconds)

    def batcher_observer(self, model: str, version: int) -> "BatcherMetrics":
        labels = (model, str(version))
        return BatcherMetrics(self.batch_size, self.shed.labels(*labels), self.queued_rows.labels(*labels))

    def set_version_state(self, model: str, version: int, state: VersionState) -> None:
        for candidate in VersionState:
            self.version_state.labels(model, str(version), candidate.value).set(1 if candidate is state else 0)

    def render(self) -> bytes:
        """The exposition text; with several workers (PROMETHEUS_MULTIPROC_DIR), all of them combined."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return bytes(generate_latest(combined))
        return bytes(generate_latest(self.registry))


@dataclass(frozen=True)
class BatcherMetrics:
    """One version's batcher, reporting to the server's metrics (a `BatchObserver`)."""

    batch_size: Any
    shed: Any
    queued: Any

    def on_batch(self, rows: int) -> None:
        self.batch_size.observe(rows)

    def on_shed(self) -> None:
        self.shed.inc()

    def on_queue(self, rows: int) -> None:
        self.queued.set(rows)
