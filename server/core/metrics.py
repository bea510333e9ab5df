"""Prometheus metrics of one server, on a registry passed in (never the global one), so
each server and each test has its own; and the server's tracer (server/core/tracing.py),
which travels with them to everything that records a request.

With several worker processes (server/workers.py sets PROMETHEUS_MULTIPROC_DIR for them),
prometheus_client keeps every value in files of that directory, and `exposition()` sums the
workers' values, so a scrape that reaches any worker sees the whole server."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from model.types import Prediction
from server.core.tracing import Tracing

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# An answer's confidence is at least 1 / labels; its uncertainties lie in [0, ln labels] nats.
_CONFIDENCE_BUCKETS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
_NATS_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0, 1.5)
_ANSWER_LABELS = ("protocol", "model_version")


class Metrics:
    def __init__(self, registry: CollectorRegistry, tracing: Tracing | None = None) -> None:
        self.registry = registry
        self.tracing = tracing or Tracing()
        self.requests = Counter(
            "bet_requests", "Requests answered, by protocol, method and outcome.",
            ("protocol", "method", "outcome"), registry=registry,
        )
        self.latency = Histogram(
            "bet_request_latency_seconds", "Time from request to answer.",
            ("protocol", "method"), buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.queue_wait = Histogram(
            "bet_queue_wait_seconds", "Time a text waited in the batcher's queue.",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.forward = Histogram(
            "bet_forward_seconds", "Time of one batched forward pass.",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.batch_size = Histogram(
            "bet_batch_size", "Texts per forward pass.", buckets=_BATCH_BUCKETS, registry=registry,
        )
        self.queue_depth = Gauge(
            "bet_queue_depth", "Texts waiting in the batcher's queue.", registry=registry,
            multiprocess_mode="livesum",  # several workers: the sum over the live ones
        )
        self.dropped = Counter(
            "bet_dropped", "Texts dropped before computing, by reason.", ("reason",),
            registry=registry,
        )
        self.model = Info("bet_model", "The serving model.", registry=registry)
        self.model_requests = Counter(
            "bet_model_requests", "Prediction requests answered, by the model version that "
            "answered and outcome.", ("model_version", "outcome"), registry=registry,
        )
        self.reloads = Counter(
            "bet_model_reloads", "Model reloads, by outcome (ok, model_not_found, model_load_failed).",
            ("outcome",), registry=registry,
        )
        # What the model says of the incoming texts, per door and version: a drift in the
        # traffic (other languages, other domains) shows here before it shows in complaints.
        self.confidence = Histogram(
            "bet_answer_confidence", "Confidence of each answered text.", _ANSWER_LABELS,
            buckets=_CONFIDENCE_BUCKETS, registry=registry,
        )
        self.total_uncertainty = Histogram(
            "bet_answer_uncertainty_total_nats", "Total uncertainty of each answered text (nats).",
            _ANSWER_LABELS, buckets=_NATS_BUCKETS, registry=registry,
        )
        self.epistemic = Histogram(
            "bet_answer_uncertainty_epistemic_nats", "Epistemic uncertainty of each answered text "
            "(nats): how unlike the training data the model finds it.", _ANSWER_LABELS,
            buckets=_NATS_BUCKETS, registry=registry,
        )
        self.below_threshold = Counter(
            "bet_answers_below_threshold", "Answered texts whose confidence was below the caller's "
            "confidence_threshold.", _ANSWER_LABELS, registry=registry,
        )
        self.unfamiliar = Counter(
            "bet_answers_unfamiliar", "Answered texts whose epistemic uncertainty was above the "
            "server's unfamiliar line (BET_UNFAMILIAR_EPISTEMIC_NATS).", _ANSWER_LABELS, registry=registry,
        )
        self._answer_children: dict[tuple[str, str], tuple[Histogram, Histogram, Histogram]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.ready = Gauge(
            "bet_model_ready", "1 when the model is loaded and warm and the server takes requests.",
            registry=registry, multiprocess_mode="livemin",  # several workers: 0 while any is not
        )
        self.load_seconds = Histogram(
            "bet_model_load_seconds", "Time to load and warm a model version on reload.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=registry,
        )

    content_type = CONTENT_TYPE_LATEST

    def exposition(self) -> bytes:
        """The text of GET /metrics: this registry's metrics, or with worker processes every
        worker's, summed (the model's Info, which prometheus_client cannot share between
        processes, is this worker's: all serve the same version once a reload has reached
        them)."""
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not shared:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, shared)
        merged.register(_Only(self.model))
        return generate_latest(merged)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: prometheus_client's lookup takes a lock
        and validates the labels each time, a tenth of a fast no's cost."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_request(
        self, protocol: str, method: str, outcome: str, seconds: float, model_version: str | None = None
    ) -> None:
        self.child(self.requests, protocol, method, outcome).inc()
        self.child(self.latency, protocol, method).observe(seconds)
        if model_version is not None:
            self.child(self.model_requests, model_version, outcome).inc()

    def observe_answers(
        self, protocol: str, version: str, predictions: Sequence[Prediction], below: int,
        unfamiliar_nats: float,
    ) -> None:
        """The uncertainty telemetry of the texts of one answered request, `below` of them
        under the caller's threshold."""
        labels = (protocol, version)
        children = self._answer_children.get(labels)
        if children is None:  # once per door and version, not per request
            children = self._answer_children[labels] = (
                self.confidence.labels(*labels), self.total_uncertainty.labels(*labels),
                self.epistemic.labels(*labels))
        confidence, total, epistemic = children
        unfamiliar = 0
        for p in predictions:
            confidence.observe(p.confidence)
            total.observe(p.uncertainty.total)
            epistemic.observe(p.uncertainty.epistemic)
            unfamiliar += p.uncertainty.epistemic > unfamiliar_nats
        if below:
            self.below_threshold.labels(*labels).inc(below)
        if unfamiliar:
            self.unfamiliar.labels(*labels).inc(unfamiliar)

    def serving(self, version: str, digest: str) -> None:
        """Publishes the serving version (bet_model_info)."""
        self.model.info({"version": version, "digest": digest})


class _Only:
    """One metric as a collector of its own (to add it to another registry)."""

    def __init__(self, metric: Info) -> None:
        self._metric = metric

    def collect(self):  # type: ignore[no-untyped-def]
        return self._metric.collect()
