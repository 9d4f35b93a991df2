"""The API's own endpoints: /predict, health, /model, /metrics and the upload page."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, g, jsonify, render_template, request

from model_api import monitoring
from model_api.bundle import BadImageError, ModelBundle
from model_api.dicom_intake import DEFER
from model_api.images import ImageRejected, Limits, prepare_images

bp = Blueprint("api", __name__)

RAW_TYPES = ("application/octet-stream", "application/dicom", "")


def bundle() -> ModelBundle:
    """The model this app serves."""
    return current_app.extensions["mlops_bundle"]


def reject(exc: ImageRejected) -> tuple[Response, int]:
    return jsonify(error=str(exc)), exc.status


def read_uploads() -> list[tuple[str, bytes]]:
    """(name for error messages, bytes) for each image in the request: multipart `file` fields or the body."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        files = request.files.getlist("file")
        if not files:
            sent = sorted(set(request.files) | set(request.form)) or ["none"]
            raise ImageRejected(
                f"multipart body has no 'file' field (got: {', '.join(sent)}); send -F file=@image.png"
            )
        if len(files) == 1:
            return [("the uploaded file", files[0].read())]
        return [(f"file {i + 1} ({f.filename or 'unnamed'})", f.read()) for i, f in enumerate(files)]
    if mimetype in RAW_TYPES or mimetype.startswith("image/"):
        return [("the request body", request.get_data(cache=False))]
    raise ImageRejected(
        f"unsupported Content-Type {mimetype!r}; send multipart/form-data with a 'file' field, "
        "or the raw image bytes as image/png, image/jpeg, application/dicom or application/octet-stream",
        415,
    )


def prepare(images: list[tuple[str, bytes]]) -> tuple[list[tuple[str, bytes]], list[tuple[str, int, int]]]:
    """Check every image (DICOM rendered to PNG) against the limits; ImageRejected names the bad one.

    Returns what the graph decodes and each image's (format, width, height).
    """
    config = current_app.config
    limit = int(config["MAX_BATCH"])
    if len(images) > limit:
        raise ImageRejected(f"{len(images)} images in one request; the limit is {limit}", 413)
    limits = Limits(
        int(config["MAX_IMAGE_PIXELS"]),
        int(config["MAX_REQUEST_PIXELS"]),
        int(config["MAX_REQUEST_DECODED_BYTES"]),
    )
    prepared = prepare_images(images, limits)
    return [(what, data) for what, data, _ in prepared], [header for _, _, header in prepared]


def classify(images: list[tuple[str, bytes]]) -> tuple[np.ndarray, monitoring.Inputs | None]:
    """Check every image, then run one batched graph call; ImageRejected names the bad one.

    Returns the probabilities and, when monitoring is on, each input's statistics.
    """
    images, headers = prepare(images)
    model = bundle()
    batcher = current_app.extensions.get("mlops_batcher")
    try:
        if batcher is not None:  # concurrent requests share a graph call (model_api/batching.py)
            probabilities, stats = batcher([data for _, data in images])
        elif not monitoring.describe_enabled():
            return model.predict_encoded([data for _, data in images]), None
        else:
            probabilities, stats = model.predict_encoded_with_stats([data for _, data in images])
        if not monitoring.describe_enabled():
            return probabilities, None
        return probabilities, monitoring.describe_inputs(stats, headers)
    except BadImageError as batch_error:
        raise undecodable(images, batch_error) from None


def undecodable(images: list[tuple[str, bytes]], batch_error: BadImageError) -> ImageRejected:
    """The header looked fine but decoding failed (truncated, corrupt): name which image."""
    for what, data in images:
        try:
            bundle().predict_encoded([data])
        except BadImageError as exc:
            return ImageRejected(f"{what} could not be decoded: {exc}")
    return ImageRejected(f"the images could not be decoded: {batch_error}")


def explain_requested() -> bool:
    """Whether the query asks for a saliency map (?explain=1)."""
    value = request.args.get("explain", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ImageRejected(f"explain={value!r} is not a yes/no value; use ?explain=1 or leave it out")


def explain_images(images: list[tuple[str, bytes]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Probabilities plus a Grad-CAM heatmap and the model's input, as PNG base64, per checked image."""
    model = bundle()
    if model.explainer is None:
        raise ImageRejected(model.explain_unavailable or "this model cannot be explained", 422)
    try:
        probabilities, heatmaps, inputs = model.explain_encoded([data for _, data in images])
    except BadImageError as batch_error:
        raise undecodable(images, batch_error) from None
    size = list(model.input_shape[:2])
    explanations = [
        {
            "method": "grad-cam",
            "layer": model.explainer.layer,
            "size": size,
            "heatmap_png": base64.b64encode(heat).decode(),
            "input_png": base64.b64encode(seen).decode(),
        }
        for heat, seen in zip(heatmaps, inputs, strict=True)
    ]
    return probabilities, explanations


def decide(row: np.ndarray, source: str) -> str:
    """The top class, or DEFER below the version's abstention threshold (counted in /metrics)."""
    model = bundle()
    deferral = model.manifest.deferral
    if deferral is not None and deferral.defers(row):
        metrics = current_app.extensions["mlops_metrics"]
        metrics.deferrals.labels(source, metrics.version).inc()
        return DEFER
    return model.classes[int(np.argmax(row))]


def describe(probabilities: np.ndarray, latency_ms: float, ids: list[str]) -> list[dict[str, Any]]:
    """One response object per row of probabilities."""
    model = bundle()
    metrics = current_app.extensions["mlops_metrics"]
    results = []
    for row, prediction_id in zip(probabilities, ids, strict=True):
        label = model.classes[int(np.argmax(row))]
        metrics.prediction_count[label].inc()
        results.append(
            {
                "label": label,
                # Below the version's abstention threshold the answer is a referral, not a class.
                "decision": decide(row, "predict"),
                "probabilities": {c: round(float(p), 6) for c, p in zip(model.classes, row, strict=True)},
                "model": {"name": model.name, "version": model.version},
                "latency_ms": latency_ms,
                "request_id": prediction_id,
            }
        )
    return results


@bp.post("/predict")
def predict() -> Response | tuple[Response, int]:
    """Classify one image (or several `file` fields: a list)."""
    explanations = None
    try:
        explain = explain_requested()
        images = read_uploads()
        if explain:
            # Saliency requests are logged without input statistics (the explain graph computes none).
            probabilities, explanations = explain_images(prepare(images)[0])
            inputs = None
        else:
            probabilities, inputs = classify(images)
    except ImageRejected as exc:
        return reject(exc)
    latency_ms = round((time.perf_counter() - g.started) * 1000, 3)
    raw = [data for _, data in images]
    ids = monitoring.record_predictions(probabilities, inputs, "predict", latency_ms, raw)
    results = describe(probabilities, latency_ms, ids)
    for result, explanation in zip(results, explanations or [], strict=False):
        result["explanation"] = {**explanation, "class": result["label"]}
    return jsonify(results if len(results) > 1 else results[0])


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: the process answers."""
    return jsonify(status="ok", worker_pid=os.getpid())


@bp.get("/readyz")
def readyz() -> Response:
    """Ready: the model is loaded and its graphs warmed (create_app does both before serving)."""
    model = bundle()
    return jsonify(status="ready", model={"name": model.name, "version": model.version})


@bp.get("/model")
def model_summary() -> Response:
    """The served model's manifest summary."""
    return jsonify(bundle().summary())


@bp.get("/model/card")
def model_card() -> Response | tuple[Response, int]:
    """The served version's model card (training/model_card.py), signed with its files."""
    path = bundle().model_path.parent / "model_card.md"
    if not path.is_file():
        return jsonify(error="this version has no model card (registered before cards existed)"), 404
    return Response(path.read_text(), content_type="text/markdown; charset=utf-8")


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    body, content_type = current_app.extensions["mlops_metrics"].exposition()
    return Response(body, content_type=content_type)


@bp.get("/")
def index() -> str:
    """The upload page."""
    model = bundle()
    return render_template(
        "index.html", name=model.name, version=model.version, classes=model.classes, spec=model.spec
    )
