"""CLI verb ui: serve the read-only registry browser under gunicorn."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import gunicorn_launcher as gunicorn
from core.settings import Settings, UiSettings

CONFIG = Path(__file__).with_name("gunicorn_conf.py")
APP = "ui:create_app()"


def gunicorn_command() -> list[str]:
    """The command that serves the browser (settings come from MLOPS_* in its environment)."""
    return gunicorn.gunicorn_command(CONFIG, APP)


def ui(args: argparse.Namespace, settings: Settings) -> int:
    """Check the registry can be opened, then become gunicorn (exec) in the foreground."""
    from registry import open_registry

    server = gunicorn.server_env("ui", args, settings.ui)
    registry = open_registry(settings)  # a bad registry URI fails here, in one line
    env = {
        **server,
        "MLOPS_REGISTRY": settings.registry_uri,
        "MLOPS_MODEL_NAME": settings.registry.model_name,
        "MLOPS_HOME": str(settings.home),
    }
    banner = (
        f"registry browser for {registry.name} in {registry.uri} on "
        f"http://{env['MLOPS_UI_HOST']}:{env['MLOPS_UI_PORT']} (read-only)"
    )
    gunicorn.exec_gunicorn(gunicorn_command(), env, banner)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "ui",
        help="browse the registry in a web browser (read-only)",
        description="Serve a read-only web view of the registry: versions, one version's evidence, "
        "candidate vs production, and the audit log. Approving stays with `mlops promote` or Jenkins.",
    )
    gunicorn.add_server_options(parser, "ui", UiSettings())
    parser.set_defaults(handler=ui)
