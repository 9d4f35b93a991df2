"""gunicorn settings for the prediction API, read from mlops settings (MLOPS_API_* environment).

No preload: TensorFlow is not fork-safe, so each worker imports it, loads and warms the model
inside `create_app`, and only then accepts requests. Prometheus runs in multiprocess mode so
/metrics adds up every worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from core.settings import load_settings

_api = load_settings().api

bind = f"{_api.host}:{_api.port}"
workers = _api.workers
threads = _api.threads
# gthread, serving a kept-alive connection's next request on the same thread (model_api/gunicorn_worker.py)
worker_class = "model_api.gunicorn_worker.LingeringThreadWorker"
timeout = _api.timeout_s
graceful_timeout = 20
keepalive = 5
preload_app = False
accesslog = None
errorlog = "-"
loglevel = "info"
# Bounded request lines and headers; the body limit is MAX_CONTENT_LENGTH in the app.
limit_request_line = 8190
limit_request_fields = 100

_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    # Set before any worker imports prometheus_client, so every worker writes its own files here.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlops-prometheus-")


def pre_request(worker, req) -> None:
    """Answer `Connection: close` to a body the app will not read to its end.

    The app reads or drains every body up to max_body_bytes (app.discard_unread_body), so the
    connection stays in step for the next request. A longer declared body (a 413) or a chunked one
    (its length unknown) is left unread: the client is told to reconnect rather than promised a
    keep-alive connection that gunicorn then closes.
    """
    worker.log.debug("%s %s", req.method, req.path)
    headers = {name: value for name, value in req.headers}
    length = headers.get("CONTENT-LENGTH", "")
    chunked = "chunked" in headers.get("TRANSFER-ENCODING", "").lower()
    if chunked or (length.isdigit() and int(length) > _api.max_body_bytes):
        req.must_close = True


def post_worker_init(worker) -> None:
    """In each worker, once its app has loaded and warmed the model: serve gRPC on the shared port.

    One gRPC server per worker (SO_REUSEPORT) rather than a separate process: it shares the worker's
    model, metrics and prediction log, and gunicorn supervises it with the worker (a dead worker is
    respawned, binds again). A port it cannot bind stops the worker from booting, so gunicorn halts
    with the reason instead of serving REST alone.
    """
    if _api.grpc_port <= 0:
        return
    from model_api.grpc_server import start

    try:
        worker.grpc_server = start(worker.wsgi, _api.host, _api.grpc_port, _api.threads)
    except RuntimeError as exc:
        worker.log.error("gRPC: %s; pass --grpc-port with a free port, or 0 to serve REST only", exc)
        raise SystemExit(3) from None  # gunicorn's WORKER_BOOT_ERROR: the arbiter stops, says why
    worker.log.info("gRPC inference service on %s:%d", _api.host, _api.grpc_port)


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges (the model info) from /metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker) -> None:
    """In the stopping worker: stop gRPC (calls in flight finish), flush its prediction log and feedback
    (bounded by log_shutdown_timeout_s)."""
    grpc_server = getattr(worker, "grpc_server", None)
    if grpc_server is not None:
        grpc_server.stop(graceful_timeout / 2).wait()
    monitoring = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("mlops_monitoring")
    if monitoring is not None:
        monitoring.close()


_dimse: list = []  # the Storage SCP process started by when_ready (mlops serve --dicom-port)


def when_ready(server) -> None:
    """Start the DIMSE Storage SCP beside the workers when MLOPS_DICOM_PORT asks for one."""
    if load_settings().dicom.port > 0:
        import subprocess
        import sys

        _dimse.append(subprocess.Popen([sys.executable, "-m", "model_api.dimse"]))


def on_exit(server) -> None:
    """Stop the Storage SCP; remove the metrics folder this config created."""
    from core.processes import terminate

    for process in _dimse:
        terminate(process, 10)
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
