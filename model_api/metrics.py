"""Prometheus metrics: requests by status, latency, predictions by class, the model served, and for
monitoring: live histograms of confidence and input statistics, the served version's reference class
shares and confidence (so alert rules compare live with reference with no batch job), and the
prediction log's written, dropped and failed records.

Under gunicorn every worker is a process, so the gunicorn config sets PROMETHEUS_MULTIPROC_DIR
and /metrics aggregates every worker's files; without it (tests, `flask run`) the app's own
registry is served.
"""

from __future__ import annotations

import os
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
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
INTENSITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
SPREAD_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
WIDTH_BUCKETS = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class ApiMetrics:
    """The API's metrics, registered in a registry of their own (one per app).

    The traffic metrics (requests, latency, predictions, confidence) carry the served `version`, so
    a canary and its baseline are told apart wherever their series meet (deploy/canary_analysis.py);
    alert rules sum over it.
    """

    def __init__(self, version: str = "", classes: list[str] | None = None) -> None:
        self.version = version
        self.registry = CollectorRegistry()
        self.collectors: list[Collector] = []  # read at scrape time, in every worker (trust_metrics)
        self.requests = Counter(
            "mlops_api_requests",
            "HTTP requests by endpoint, method and status code",
            ["endpoint", "method", "status", "version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlops_api_request_latency_seconds",
            "Request latency by endpoint",
            ["endpoint", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlops_api_predictions",
            "Predictions by predicted class",
            ["label", "version"],
            registry=self.registry,
        )
        # Deferral rate = deferrals / predictions: cases below the version's abstention threshold.
        self.deferrals = Counter(
            "mlops_api_deferrals",
            "Predictions deferred to a radiologist (top probability below the version's threshold)",
            ["source", "version"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlops_api_model_info",
            "The model this API serves (value 1)",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.confidence = Histogram(
            "mlops_api_prediction_confidence",
            "Largest class probability of each prediction",
            ["version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        self.input_mean = Histogram(
            "mlops_api_input_intensity_mean",
            "Mean intensity of each preprocessed input image (0..1)",
            buckets=INTENSITY_BUCKETS,
            registry=self.registry,
        )
        self.input_std = Histogram(
            "mlops_api_input_intensity_std",
            "Intensity standard deviation of each preprocessed input image",
            buckets=SPREAD_BUCKETS,
            registry=self.registry,
        )
        self.input_width = Histogram(
            "mlops_api_input_width_pixels",
            "Width of each uploaded image before resizing",
            buckets=WIDTH_BUCKETS,
            registry=self.registry,
        )
        self.reference_class_share = Gauge(
            "mlops_api_reference_class_share",
            "Share of each predicted class on the served version's held-out split (reference profile)",
            ["label"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.reference_confidence = Gauge(
            "mlops_api_reference_confidence_mean",
            "Mean confidence of the served version on its held-out split (reference profile)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.log_written = Counter(
            "mlops_api_monitoring_records_written",
            "Prediction-log and feedback records stored, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "mlops_api_monitoring_records_dropped",
            "Records dropped because the writer's queue was full or storage kept failing, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.log_failures = Counter(
            "mlops_api_monitoring_write_failures",
            "Failed attempts to store a batch of records, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.bind(list(classes or []))

    def bind(self, classes: list[str]) -> None:
        """Bind the labelled children the request path uses, once (a `.labels()` lookup per request
        and per prediction took a lock and a dict lookup each under load)."""
        self.prediction_count = {label: self.predictions.labels(label, self.version) for label in classes}
        self.confidence_seen = self.confidence.labels(self.version)
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe_request(self, endpoint: str, method: str, status: str, seconds: float) -> None:
        """Count one request and observe its latency (children bound on first use of each label set)."""
        key = (endpoint, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(endpoint, method, status, self.version),
                self.latency.labels(endpoint, self.version),
            )
            if len(self._request_children) < 512:  # bounded: a method is whatever the client sent
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type, across every worker when multiprocess."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            for collector in self.collectors:
                registry.register(collector)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def add_collector(self, collector: Collector) -> None:
        """A collector computed at scrape time (not a per-process value), served by every worker."""
        self.collectors.append(collector)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.registry.register(collector)
