"""Prometheus metrics: requests by status, latency, predictions by class, the model served.

Under gunicorn every worker is a process, so the gunicorn config sets PROMETHEUS_MULTIPROC_DIR
and /metrics aggregates every worker's files; without it (tests, `flask run`) the app's own
registry is served.
"""

from __future__ import annotations

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

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API's metrics, registered in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlops_api_requests",
            "HTTP requests by endpoint, method and status code",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlops_api_request_latency_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlops_api_predictions", "Predictions by predicted class", ["label"], registry=self.registry
        )
        self.model_info = Gauge(
            "mlops_api_model_info",
            "The model this API serves (value 1)",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type, across every worker when multiprocess."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
