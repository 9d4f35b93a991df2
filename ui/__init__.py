"""The registry browser (`mlops ui`): a read-only Flask app over the registry, served by gunicorn.

    from ui import create_app      # create_app(test_config=None) -> Flask
    gunicorn -c ui/gunicorn_conf.py "ui:create_app()"

Pages: versions (paginated), one version, candidate vs production, the audit log. The app only
reads; each page shows the command (or Jenkins input link) that approves. Not in the serving image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the registry browser app (see ui.app.create_app)."""
    from ui.app import create_app as _create_app

    return _create_app(test_config)
