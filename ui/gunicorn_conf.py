"""gunicorn settings for the registry browser, read from mlops settings (MLOPS_UI_* environment)."""

from __future__ import annotations

from core.settings import load_settings

_ui = load_settings().ui

bind = f"{_ui.host}:{_ui.port}"
workers = _ui.workers
threads = _ui.threads
worker_class = "gthread"
timeout = 60
graceful_timeout = 10
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = "info"
limit_request_line = 8190
limit_request_fields = 100
