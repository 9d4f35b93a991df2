"""CLI verb ui: serve the read-only registry browser under gunicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.processes import check_server_options, exec_server
from core.settings import Settings

CONFIG = Path(__file__).with_name("gunicorn_conf.py")
APP = "ui:create_app()"


def gunicorn_command() -> list[str]:
    """The command that serves the browser (settings come from MLOPS_* in its environment)."""
    return [sys.executable, "-m", "gunicorn", "--config", str(CONFIG), APP]


def ui(args: argparse.Namespace, settings: Settings) -> int:
    """Check the registry can be opened, then become gunicorn (exec) in the foreground."""
    from registry import open_registry

    check_server_options(args)
    registry = open_registry(settings)  # a bad registry URI fails here, in one line
    env = dict(os.environ)
    env.update(
        {
            "MLOPS_REGISTRY": settings.registry_uri,
            "MLOPS_MODEL_NAME": settings.registry.model_name,
            "MLOPS_HOME": str(settings.home),
            "MLOPS_UI_HOST": args.host or settings.ui.host,
            "MLOPS_UI_PORT": str(settings.ui.port if args.port is None else args.port),
            "MLOPS_UI_WORKERS": str(args.workers or settings.ui.workers),
            "MLOPS_UI_THREADS": str(args.threads or settings.ui.threads),
        }
    )
    print(
        f"registry browser for {registry.name} in {registry.uri} on "
        f"http://{env['MLOPS_UI_HOST']}:{env['MLOPS_UI_PORT']} (read-only)",
        flush=True,
    )
    exec_server(gunicorn_command(), env)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "ui",
        help="browse the registry in a web browser (read-only)",
        description="Serve a read-only web view of the registry: versions, one version's evidence, "
        "candidate vs production, and the audit log. Approving stays with `mlops promote` or Jenkins.",
    )
    parser.add_argument("--host", help="address to listen on (default ui.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default ui.port, 8090)")
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default ui.workers)")
    parser.add_argument("--threads", type=int, help="threads per worker (default ui.threads)")
    parser.set_defaults(handler=ui)
