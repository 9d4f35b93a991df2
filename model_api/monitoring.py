"""Production monitoring inside the API: describe each input, log each prediction, export live histograms.

Every prediction gets an id (the request id, or `<request id>-<i>` for the i-th image of a batch) and
a record in the prediction log: time, model name and version, label, probabilities, confidence, input
statistics (core.image_stats, the same description as the version's reference profile) and latency.
Records go to a BatchWriter (model_api/prediction_log.py) that stores them in the registry store's
`monitoring/` area (registry/monitoring_log.py). No image bytes are kept unless `monitor.sample_images`
says so, explicitly (they are patient data).
"""

from __future__ import annotations

import atexit
import contextlib
import hmac
import logging
import random
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from flask import Flask, Response, current_app, g, jsonify, request

from core.image_stats import confidence, describe_image
from core.traffic import TRAFFIC_HEADER
from model_api.prediction_log import BatchWriter
from model_api.rate_limit import TokenBucket
from model_api.request_ids import RequestIds, derive_key
from registry.manifest import Manifest
from registry.monitoring_log import DEFAULT_TRAFFIC_CLASS, TRAFFIC_CLASSES, image_key, write_batch
from registry.store import ObjectExists, open_store

log = logging.getLogger("model_api.monitoring")

PREDICTION_ID = re.compile(r"^[0-9a-f]{32}(-[0-9]{1,4})?$")

Header = tuple[str | None, int | None, int | None]  # format, width, height


class Monitoring:
    """One app's prediction and feedback writers (None when off) and the settings the routes read."""

    def __init__(self, app: Flask, bundle: Any) -> None:
        monitor = app.config["SETTINGS"].monitor
        self.enabled = bool(app.config["PREDICTION_LOG"])
        self.sample_images = float(monitor.sample_images)
        self.feedback_token = str(app.config["FEEDBACK_TOKEN"] or "")
        self.traffic_token = str(app.config["TRAFFIC_TOKEN"] or "")
        self.shutdown_timeout_s = float(monitor.log_shutdown_timeout_s)
        self.model_name = str(bundle.name)
        self.request_ids = RequestIds(self._id_key(app), int(app.config["MAX_BATCH"]))
        self.feedback_limit = TokenBucket(monitor.feedback_rate_per_s, monitor.feedback_burst)
        self.predictions: BatchWriter | None = None
        self.feedback: BatchWriter | None = None
        self._closed = False
        metrics = app.extensions["mlops_metrics"]
        export_reference(metrics, bundle.manifest)
        if not self.enabled and not self.feedback_token:
            return
        self.store = app.config["MONITOR_STORE"] or open_store(app.config["SETTINGS"].monitor_store_uri)

        def writer(kind: str, sink: Any) -> BatchWriter:
            return BatchWriter(
                kind,
                sink,
                batch_size=monitor.log_batch_size,
                flush_interval_s=monitor.log_flush_interval_s,
                queue_size=monitor.log_queue_size,
                on_written=metrics.log_written.labels(kind).inc,
                on_dropped=metrics.log_dropped.labels(kind).inc,
                on_failure=metrics.log_failures.labels(kind).inc,
            )

        if self.enabled:
            self.predictions = writer("predictions", self._store_predictions)
        if self.feedback_token:
            self.feedback = writer(
                "feedback", lambda batch: write_batch(self.store, self.model_name, "feedback", batch)
            )
        # gunicorn's worker_exit hook closes first; atexit covers `flask run` and tests.
        atexit.register(self.close)

    def _id_key(self, app: Flask) -> bytes:
        """The key request ids are signed with: the same in every worker, replica and restart."""
        secret = str(app.config["REQUEST_ID_SECRET"] or "")
        if not secret and self.feedback_token:
            log.warning(
                "MLOPS_REQUEST_ID_SECRET is not set: request ids are signed with a key derived from the "
                "feedback token, so whoever holds the token can forge them; set MLOPS_REQUEST_ID_SECRET "
                "(one random secret for every replica) to keep /feedback to ids this server issued"
            )
            secret = self.feedback_token
        # No secret and no feedback: nobody checks the ids, a key of this process will do.
        return derive_key(secret) if secret else secrets.token_bytes(32)

    def _store_predictions(self, batch: Sequence[dict[str, Any] | PendingPrediction]) -> None:
        """Write a batch; a sampled image first, as its own object, and the record names it."""
        records = []
        for item in batch:
            record = item.record() if isinstance(item, PendingPrediction) else item
            image = record.get("_image")
            if image is None:
                records.append(record)
                continue
            key = image_key(self.model_name, record["id"], record["input"].get("format"), record["t"])
            with contextlib.suppress(ObjectExists):  # a retried batch: the image is already there
                self.store.write(key, image, create_only=True)
            records.append({**{k: v for k, v in record.items() if k != "_image"}, "image": key})
        write_batch(self.store, self.model_name, "predictions", records)

    def close(self) -> None:
        """Flush and stop both writers within one shutdown deadline (idempotent)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self.shutdown_timeout_s
        for writer in (self.feedback, self.predictions):  # feedback first: rarer and dearer
            if writer is not None:
                lost = writer.close(max(deadline - time.monotonic(), 0.1))
                if lost:
                    log.warning("%s log: %d records lost at shutdown", writer.name, lost)


def export_reference(metrics: Any, manifest: Manifest) -> None:
    """The served version's reference class shares and confidence as gauges, and zero log counters,
    so alert rules compare live with reference and see every series from the start."""
    for kind in ("predictions", "feedback"):
        for counter in (metrics.log_written, metrics.log_dropped, metrics.log_failures):
            counter.labels(kind)
    reference = manifest.reference
    if reference is None:
        return
    for label, share in reference.class_shares.items():
        metrics.reference_class_share.labels(label).set(float(share))
    if reference.confidence_mean is not None:
        metrics.reference_confidence.set(float(reference.confidence_mean))


def traffic_class(monitoring: Monitoring) -> tuple[str, str | None]:
    """This request's traffic class, and why it is refused (None: accepted).

    `X-MLOps-Traffic-Class: smoke|test|canary` takes traffic out of production's monitoring, so only
    a caller holding the traffic token (`Authorization: Bearer <MLOPS_TRAFFIC_TOKEN>`) may send it.
    Anyone else sending it is refused (401), not logged as production: the header says the caller
    meant to stay out of production's numbers, and a project client with a wrong token must fail
    loudly rather than pollute the production window it was built to avoid.
    """
    wanted = request.headers.get(TRAFFIC_HEADER)
    if wanted is None:
        return DEFAULT_TRAFFIC_CLASS, None
    wanted = wanted.strip().lower()
    if wanted not in TRAFFIC_CLASSES:
        return (
            DEFAULT_TRAFFIC_CLASS,
            f"{TRAFFIC_HEADER} {wanted[:40]!r} is not one of {', '.join(TRAFFIC_CLASSES)}",
        )
    if wanted == DEFAULT_TRAFFIC_CLASS:
        return wanted, None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = monitoring.traffic_token
    # Constant-time comparison, as for the feedback token.
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip().encode(), expected.encode())
    ):
        return DEFAULT_TRAFFIC_CLASS, (
            f"{TRAFFIC_HEADER}: {wanted} needs 'Authorization: Bearer <traffic token>' (the secret "
            "MLOPS_TRAFFIC_TOKEN of this deployment); without it send no such header"
        )
    return wanted, None


def install(app: Flask, bundle: Any) -> Monitoring:
    """Set up monitoring for APP (writers, reference gauges) and keep it in app.extensions."""
    monitoring = Monitoring(app, bundle)
    app.extensions["mlops_monitoring"] = monitoring

    @app.before_request
    def _traffic_class() -> tuple[Response, int] | None:
        g.traffic_class, refused = traffic_class(monitoring)
        if refused is None:
            return None
        status = 400 if "is not one of" in refused else 401
        response = jsonify(error=refused)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="mlops traffic class"'
        return response, status

    return monitoring


def current() -> Monitoring:
    """The monitoring of the app handling this request."""
    return current_app.extensions["mlops_monitoring"]


@dataclass(frozen=True, slots=True)
class Inputs:
    """A request's input statistics as the graph returned them (rows of pixel_statistics) with each
    image's header; turned into log dicts on the writer thread, not in the request path."""

    stats: np.ndarray
    headers: Sequence[Header] | None  # None: already preprocessed pixels (no format or original size)

    def describe(self, i: int) -> dict[str, Any]:
        """Image I's description, as core.image_stats writes it everywhere."""
        fmt, width, height = self.headers[i] if self.headers is not None else (None, None, None)
        return describe_image(self.stats[i], fmt=fmt, width=width, height=height)


def describe_inputs(stats: np.ndarray, headers: Sequence[Header]) -> Inputs:
    """Statistics of each preprocessed image (rows of pixel_statistics), with its header's format and size."""
    if len(headers) != len(stats):
        raise ValueError(f"{len(stats)} rows of statistics for {len(headers)} headers")
    return Inputs(stats, headers)


def describe_tensors(stats: np.ndarray) -> Inputs:
    """Statistics of already preprocessed pixels (v2 FP32 input): no format or original size."""
    return Inputs(stats, None)


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    """What the request path queues for one prediction; `record()` (on the writer thread) builds the
    log record, so formatting times, rounding and describing cost the request nothing."""

    id: str
    t: float
    model: Any  # the served ModelBundle (name, version, classes, manifest)
    endpoint: str
    traffic_class: str
    probabilities: np.ndarray
    inputs: Inputs
    index: int
    latency_ms: float
    image: bytes | None

    def record(self) -> dict[str, Any]:
        """The prediction-log record (model_api/README.md), `_image` when the image was sampled."""
        stats = self.inputs.describe(self.index)
        record = prediction_record(
            self.model,
            self.probabilities,
            stats,
            self.id,
            self.endpoint,
            self.traffic_class,
            self.latency_ms,
            self.t,
        )
        if self.image is not None:
            record["_image"] = self.image
        return record


def prediction_ids(count: int) -> list[str]:
    """The id of each prediction of this request: the request id, or `<id>-<i>` within a batch.

    The request id becomes a signed one here (the response's X-Request-Id and request_id follow it),
    so only a request that predicted names ids POST /feedback takes.
    """
    request_id = g.request_id = current().request_ids.issue(count)
    return [request_id] if count == 1 else [f"{request_id}-{i}" for i in range(count)]


def prediction_record(
    model: Any,
    row: np.ndarray,
    stats: dict[str, Any],
    prediction_id: str,
    endpoint: str,
    traffic: str,
    latency_ms: float,
    now: float,
) -> dict[str, Any]:
    """One prediction-log record of MODEL's answer ROW (the same shape from /predict, v2 and DICOM)."""
    deferral = model.manifest.deferral
    return {
        "id": prediction_id,
        "t": now,
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "model": model.name,
        "version": model.version,
        "endpoint": endpoint,
        "traffic_class": traffic,
        "label": model.classes[int(np.argmax(row))],
        "confidence": confidence(row),
        "probabilities": {c: round(float(p), 5) for c, p in zip(model.classes, row, strict=True)},
        # Whether the answer was "defer to radiologist": monitoring compares the rate with the version's.
        "deferred": deferral is not None and deferral.defers(row),
        "input": stats,
        "latency_ms": latency_ms,
    }


def record_predictions(
    probabilities: np.ndarray,
    inputs: Inputs | None,
    endpoint: str,
    latency_ms: float,
    images: Sequence[bytes] | None = None,
) -> list[str]:
    """Observe the live histograms and queue one log record per prediction; return the prediction ids."""
    model = current_app.extensions["mlops_bundle"]
    monitoring = current()
    metrics = current_app.extensions["mlops_metrics"]
    ids = prediction_ids(len(probabilities))
    now = time.time()
    for row in probabilities.tolist():  # plain floats: numpy's reductions cost more on 3 numbers
        metrics.confidence_seen.observe(round(max(row), 5))
    if inputs is None:
        return ids
    for i, (mean, std) in enumerate(inputs.stats[:, :2].round(5).tolist()):
        metrics.input_mean.observe(mean)
        metrics.input_std.observe(std)
        if inputs.headers is not None and inputs.headers[i][1] is not None:
            metrics.input_width.observe(inputs.headers[i][1])
        if monitoring.predictions is None:
            continue
        sampled = (
            images is not None and monitoring.sample_images > 0 and random.random() < monitoring.sample_images
        )
        monitoring.predictions.put(
            PendingPrediction(  # type: ignore[arg-type]  # the sink expands it (_store_predictions)
                ids[i],
                now,
                model,
                endpoint,
                g.get("traffic_class", DEFAULT_TRAFFIC_CLASS),
                probabilities[i],
                inputs,
                i,
                latency_ms,
                images[i] if sampled and images is not None else None,
            )
        )
    return ids


def describe_enabled() -> bool:
    """Whether this app describes inputs (monitoring on); off, a prediction costs nothing extra."""
    return current().enabled
