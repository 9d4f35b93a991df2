"""The registry browser's app factory: settings, the registry, template filters, HTML errors."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException

from core.errors import UsageError
from core.settings import load_settings
from registry import IntegrityError, NotFoundError, RefError, RegistryError, open_registry
from ui.catalog import Catalog

log = logging.getLogger("ui")


def _defaults() -> dict[str, Any]:
    """Config from mlops settings (code defaults → mlops.toml → MLOPS_* environment)."""
    settings = load_settings()
    return {"SETTINGS": settings, "PAGE_SIZE": settings.ui.page_size, "REGISTRY": None}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the read-only registry browser over the registry the settings name."""
    app = Flask(__name__)
    app.config.from_mapping(_defaults())
    if test_config is not None:
        app.config.from_mapping(test_config)
    registry = app.config["REGISTRY"] or open_registry(app.config["SETTINGS"])
    app.extensions["mlops_catalog"] = Catalog(registry)
    app.jinja_env.filters.update(when=_when, num=_num, reject_page=_without_page)
    app.jinja_env.globals.update(registry_uri=registry.uri, model_name=registry.name)

    from ui.views import bp

    app.register_blueprint(bp)
    _install_errors(app)
    return app


def _when(text: Any) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM:SS' (UTC), or '-'."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "-"


def _num(value: Any, digits: int = 3) -> str:
    """A number with DIGITS decimals, or '-' when there is none."""
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _without_page(args: dict[str, str]) -> dict[str, str]:
    """Query arguments to carry to another page: everything but the page number."""
    return {k: v for k, v in args.items() if k != "page"}


def _install_errors(app: Flask) -> None:
    def page(status: int, title: str, message: str) -> tuple[str, int]:
        return render_template("error.html", status=status, title=title, message=message), status

    @app.errorhandler(UsageError)
    @app.errorhandler(RefError)
    def _bad_request(exc: Exception) -> tuple[str, int]:
        return page(400, "Bad request", str(exc))

    @app.errorhandler(NotFoundError)
    def _not_found(exc: NotFoundError) -> tuple[str, int]:
        return page(404, "Not found", str(exc))

    @app.errorhandler(IntegrityError)
    @app.errorhandler(RegistryError)
    def _registry(exc: RegistryError) -> tuple[str, int]:
        # The request was fine; the registry behind it is not (damaged, unreachable).
        return page(503, "Registry problem", str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[str, int]:
        messages = {
            404: f"no page {request.path}",
            405: "this browser only reads: nothing here changes the registry",
        }
        code = exc.code or 500
        return page(code, exc.name, messages.get(code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[str, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return page(500, "Internal error", f"{type(exc).__name__}; the server log has details")
