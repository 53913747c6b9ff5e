"""Prometheus metrics, in a registry of the app's own (so several apps can live in one process)."""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
VERSION_STATES = ("LOADING", "AVAILABLE", "UNLOADING", "FAILED", "END")


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mnist_requests",
            "HTTP requests by route and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mnist_request_duration_seconds",
            "Time from request start to response end",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mnist_batch_size", "Rows per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.shed = Counter("mnist_shed_requests", "Requests refused with 503 at capacity", registry=self.registry)
        self.version_state = Gauge(
            "mnist_model_version_state",
            "1 for the state each model version is in",
            ["model", "version", "state"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, rows: int) -> None:
        self.batch_size.observe(rows)

    def set_version_state(self, model: str, version: int, state: str) -> None:
        for candidate in VERSION_STATES:
            self.version_state.labels(model, str(version), candidate).set(1 if candidate == state else 0)

    def render(self) -> bytes:
        """The exposition text; with several workers (PROMETHEUS_MULTIPROC_DIR), all of them combined."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return bytes(generate_latest(combined))
        return bytes(generate_latest(self.registry))
