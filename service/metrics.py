"""Prometheus metrics, in a registry of the server's own (so several servers can live in one process)."""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contract import CONFIDENT_NAME, OUTPUT_NAME
from service.core.runtime import Outputs
from service.core.status import VersionState

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
TOP_PROBABILITY_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LabelVersions = dict[str, dict[str, tuple[int, int | None]]]  # model -> label -> (wanted, served here)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._traffic()
        self._models()
        self._request_children: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}

    def _traffic(self) -> None:
        """What arrives, and what becomes of it."""
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
        self.payload_events = Counter(
            "mnist_payload_events",
            "Payload-log events (CloudEvents) by outcome: sent, failed (the sink erred), dropped (queue full)",
            ["outcome"],
            registry=self.registry,
        )
        self.refused_connections = Counter(
            "mnist_refused_connections",
            "Connections closed before a request reached the app: header_timeout, header_limit, per_client_cap",
            ["reason"],
            registry=self.registry,
        )

    def _models(self) -> None:
        """The model calls, their answers, the queues and the versions."""
        self.batch_size = Histogram(
            "mnist_batch_size", "Rows per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.top_probability = Histogram(
            "mnist_top_probability",
            "Each answer's calibrated top probability, by version: drift shows here before any label arrives",
            ["model", "version"],
            buckets=TOP_PROBABILITY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "mnist_answers",
            "Rows answered, by version and `confident` flag (`unknown` for a version without one)",
            ["model", "version", "confident"],
            registry=self.registry,
        )
        self.shed = Counter(
            "mnist_shed_requests",
            "Requests refused at capacity because the version's queue was full",
            ["model", "version"],
            registry=self.registry,
        )
        self.queues = QueueCollector()
        self.registry.register(self.queues)
        self.label_versions = LabelCollector()
        self.registry.register(self.label_versions)
        self.version_state = Gauge(
            "mnist_model_version_state",
            "1 for the state each model version is in",
            ["model", "version", "state"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.version_runtime = Gauge(
            "mnist_model_version_runtime",
            "1 for the runtime that computes each available model version (tensorflow, litert, litert-int8)",
            ["model", "version", "runtime"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def observe_request(self, protocol: str, endpoint: str, method: str, status: str, seconds: float) -> None:
        # NOTE: the labelled children are looked up once per label set: labels() validates and locks.
        key = (protocol, endpoint, method if method in METHODS else "other", status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.latency.labels(protocol, endpoint))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def refuse_connection(self, reason: str) -> None:
        self.refused_connections.labels(reason).inc()

    def batcher_observer(self, model: str, version: int) -> "BatcherMetrics":
        labels = (model, str(version))
        return BatcherMetrics(
            self.batch_size,
            self.shed.labels(*labels),
            self.top_probability.labels(*labels),
            {flag: self.answers.labels(*labels, flag) for flag in ("true", "false", "unknown")},
        )

    def set_version_runtime(self, model: str, version: int, runtime: str, serving: bool) -> None:
        self.version_runtime.labels(model, str(version), runtime).set(1 if serving else 0)

    def set_version_state(self, model: str, version: int, state: VersionState) -> None:
        for candidate in VersionState:
            self.version_state.labels(model, str(version), candidate.value).set(1 if candidate is state else 0)

    def render(self) -> bytes:
        """The exposition text; with several workers (PROMETHEUS_MULTIPROC_DIR), all of them combined."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
            combined.register(self.queues)  # this worker's queues and labels: they live in its memory only
            combined.register(self.label_versions)
            return bytes(generate_latest(combined))
        return bytes(generate_latest(self.registry))


@dataclass(frozen=True)
class BatcherMetrics:
    """One version's batcher, reporting to the server's metrics (a `BatchObserver`): each model call's size,
    and its answers' top probabilities and `confident` flags, the drift signals that need no labels."""

    batch_size: Histogram
    shed: Counter
    top_probability: Histogram
    answers: dict[str, Counter]  # by flag: true, false, unknown

    def on_batch(self, outputs: Outputs) -> None:
        probabilities = outputs[OUTPUT_NAME]
        self.batch_size.observe(len(probabilities))
        for top in probabilities.max(axis=1).tolist():
            self.top_probability.observe(top)
        confident = outputs.get(CONFIDENT_NAME)
        if confident is None:
            self.answers["unknown"].inc(len(probabilities))
            return
        sure = int(np.count_nonzero(confident))
        if sure:
            self.answers["true"].inc(sure)
        if sure < len(confident):
            self.answers["false"].inc(len(confident) - sure)

    def on_shed(self) -> None:
        self.shed.inc()


class QueueCollector(Collector):
    """`mnist_queued_rows`, read from the batchers when scraped rather than set on every request."""

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], Callable[[], int]] = {}

    def watch(self, model: str, version: int, queued_rows: Callable[[], int]) -> None:
        self._queues[(model, str(version))] = queued_rows

    def forget(self, model: str, version: int) -> None:
        self._queues.pop((model, str(version)), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("mnist_queued_rows", "Rows waiting for a model call", labels=["model", "version"])
        for labels, queued_rows in list(self._queues.items()):
            family.add_metric(labels, queued_rows())
        yield family


class LabelCollector(Collector):
    """`mnist_label_version`: per label, the version labels.json names (`wanted`) and the one that answers
    here (`served`); they differ while this replica loads a label's new version. Read when scraped."""

    def __init__(self) -> None:
        self._source: Callable[[], LabelVersions] = dict

    def watch(self, source: Callable[[], LabelVersions]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mnist_label_version",
            "The version a label names (role=wanted) and the version answering it here (role=served)",
            labels=["model", "label", "role"],
        )
        for model, labels in self._source().items():
            for label, (wanted, served) in labels.items():
                family.add_metric([model, label, "wanted"], wanted)
                if served is not None:
                    family.add_metric([model, label, "served"], served)
        yield family
