"""The Flask app factory: config layers, the model, metrics, JSON errors."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from core.errors import MlopsError
from core.settings import load_settings
from model_api import json_provider
from model_api.metrics import ApiMetrics
from model_api.request_ids import unsigned_id

log = logging.getLogger("model_api")


def _defaults() -> dict[str, Any]:
    """Config from mlops settings (code defaults → mlops.toml → MLOPS_* environment)."""
    settings = load_settings()
    api = settings.api
    return {
        "SETTINGS": settings,
        "MODEL_REF": api.model_ref,
        "MAX_CONTENT_LENGTH": api.max_body_bytes,
        "MAX_IMAGE_PIXELS": api.max_image_pixels,
        "MAX_REQUEST_PIXELS": api.max_request_pixels,
        "MAX_REQUEST_DECODED_BYTES": api.max_request_decoded_bytes,
        "MAX_BATCH": api.max_batch,
        "TF_THREADS": api.tf_threads,
        "BATCH_MAX_SIZE": api.batch_max_size,
        "BATCH_MAX_WAIT_MS": api.batch_max_wait_ms,
        # A preloaded ModelBundle (tests share one); None: load MODEL_REF at startup.
        "MODEL_BUNDLE": None,
        "PREDICTION_LOG": settings.monitor.log_predictions,
        "FEEDBACK_TOKEN": settings.monitor.feedback_token,
        "TRAFFIC_TOKEN": settings.monitor.traffic_token,
        "REQUEST_ID_SECRET": settings.monitor.request_id_secret,
        # A registry Store for the monitoring/ area (tests); None: settings.monitor_store_uri.
        "MONITOR_STORE": None,
        "JSON_SORT_KEYS": False,
    }


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the prediction API; loads and warms the model before returning, so a worker is ready."""
    app = Flask(__name__)
    app.config.from_mapping(_defaults())
    if test_config is not None:
        app.config.from_mapping(test_config)
    json_provider.install(app)  # keeps keys in insertion order: class order as the model outputs it

    bundle = app.config["MODEL_BUNDLE"]
    if bundle is None:
        bundle = _load(app)
    app.extensions["mlops_bundle"] = bundle
    app.extensions["mlops_batcher"] = _batcher(app, bundle)
    metrics = ApiMetrics(str(bundle.version), list(bundle.classes))
    metrics.model_info.labels(name=bundle.name, version=str(bundle.version)).set(1)
    app.extensions["mlops_metrics"] = metrics
    ref = str(app.config["MODEL_REF"])
    if app.config["MODEL_BUNDLE"] is None and ":" in ref and not ref.startswith(("/", ".")):
        from model_api.trust_metrics import TrustRefusals
        from registry import open_registry

        # Refusals written by other processes (a deploy that kept this server) are scraped here.
        metrics.add_collector(TrustRefusals(open_registry(app.config["SETTINGS"]).log))

    from model_api import monitoring
    from model_api.dicomweb import bp as dicomweb_bp
    from model_api.feedback import bp as feedback_bp
    from model_api.routes import bp as routes_bp
    from model_api.v2 import bp as v2_bp

    monitoring.install(app, bundle)
    app.register_blueprint(routes_bp)
    app.register_blueprint(v2_bp)
    app.register_blueprint(feedback_bp)
    app.register_blueprint(dicomweb_bp)
    _install_hooks(app, metrics)
    return app


def _batcher(app: Flask, bundle: Any) -> Any:
    """The worker's adaptive batcher (model_api/batching.py), or None when batch_max_size is 1 (off)."""
    size = int(app.config["BATCH_MAX_SIZE"])
    if size <= 1:
        return None
    from model_api.batching import Batcher

    return Batcher(bundle.predict_encoded_with_stats, size, float(app.config["BATCH_MAX_WAIT_MS"]) / 1000)


def _load(app: Flask) -> Any:
    from model_api.bundle import configure_threads, load_bundle
    from model_api.loading import fetch_verified

    started = time.perf_counter()
    configure_threads(int(app.config["TF_THREADS"]))
    model_path, manifest, digest = fetch_verified(app.config["SETTINGS"], str(app.config["MODEL_REF"]))
    bundle = load_bundle(model_path, manifest)
    bundle.digest = digest  # the signed version digest: DICOM results name the device by it
    log.warning(
        "model %s version %s loaded and warmed in %.1f s",
        bundle.name,
        bundle.version,
        time.perf_counter() - started,
    )
    return bundle


def discard_unread_body() -> None:
    """Read and drop what the view left of the request body, up to MAX_CONTENT_LENGTH.

    An early answer (unknown model 404, 401, 415 ...) leaves the body on the socket; gunicorn would
    drain only 64 KiB of it and then close a connection it had just announced as keep-alive, so the
    client's next request on it failed. A body over the limit is never read: gunicorn_conf's
    pre_request answers those with `Connection: close` instead.
    """
    length = request.content_length
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if not length or (limit is not None and length > limit):
        return
    try:
        stream = request.stream
        while stream.read(64 * 1024):
            pass
    except (ClientDisconnected, OSError):
        pass  # the client went away: nothing left to keep in step


def _install_hooks(app: Flask, metrics: ApiMetrics) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        now = time.perf_counter()
        metrics.observe_request(
            endpoint, request.method, str(response.status_code), now - g.get("started", now)
        )
        # A request that predicted has a signed id (monitoring.prediction_ids); any other a random one.
        response.headers["X-Request-Id"] = g.get("request_id") or unsigned_id()
        discard_unread_body()
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        # Every error is JSON a client can read, never Werkzeug's HTML page.
        messages = {
            413: f"request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes",
            404: f"no such endpoint {request.path}; see GET / or /v2",
            405: f"{request.method} is not allowed on {request.path}",
        }
        code = exc.code or 500
        return jsonify(error=messages.get(code, exc.description or exc.name)), code

    @app.errorhandler(MlopsError)
    def _mlops_error(exc: MlopsError) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 400

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error=f"internal error ({type(exc).__name__}); the server logs have details"), 500
