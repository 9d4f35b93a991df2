"""The prediction API: a Flask app factory served by gunicorn (model_api/gunicorn_conf.py).

    from model_api import create_app      # create_app(test_config=None) -> Flask
    gunicorn -c model_api/gunicorn_conf.py "model_api:create_app()"

Importing this package does nothing else: the model loads inside `create_app`, in each worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the prediction API app (see model_api.app.create_app)."""
    from model_api.app import create_app as _create_app

    return _create_app(test_config)
