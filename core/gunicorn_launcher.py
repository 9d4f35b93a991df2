"""Serve a Flask app factory under gunicorn: the server options, their environment, and the exec.

One launcher for every server verb (`mlops serve`/`mlops-serve`, `mlops ui`): each passes its app, its
gunicorn config module and its settings section; the server reads MLOPS_<SECTION>_* from its environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from core.processes import check_server_options, exec_server


def add_server_options(parser: argparse.ArgumentParser, section: str, defaults: Any) -> None:
    """--host, --port, --workers, --threads; unset, settings SECTION's (code DEFAULTS named in the help)."""
    parser.add_argument("--host", help=f"address to listen on (default {section}.host, {defaults.host})")
    parser.add_argument("--port", type=int, help=f"port (default {section}.port, {defaults.port})")
    workers = f"gunicorn worker processes (default {section}.workers, {defaults.workers})"
    parser.add_argument("--workers", type=int, help=workers)
    parser.add_argument(
        "--threads", type=int, help=f"threads per worker (default {section}.threads, {defaults.threads})"
    )


def server_env(section: str, args: argparse.Namespace, configured: Any) -> dict[str, str]:
    """MLOPS_<SECTION>_HOST/PORT/WORKERS/THREADS: the command line's values, else the settings'.

    Checks the options first (UsageError): a worker count below 1 or a negative port.
    """
    check_server_options(args)
    prefix = f"MLOPS_{section.upper()}"
    return {
        f"{prefix}_HOST": args.host or configured.host,
        f"{prefix}_PORT": str(configured.port if args.port is None else args.port),
        f"{prefix}_WORKERS": str(args.workers or configured.workers),
        f"{prefix}_THREADS": str(args.threads or configured.threads),
    }


def gunicorn_command(config: Path, app: str) -> list[str]:
    """The command that serves APP (a factory call, `package:create_app()`) with the CONFIG module."""
    return [sys.executable, "-m", "gunicorn", "--config", str(config), app]


def exec_gunicorn(command: list[str], env: dict[str, str], banner: str) -> NoReturn:
    """Print BANNER, then become gunicorn (exec) with ENV added to this environment.

    exec, not a child: gunicorn keeps this pid, gets signals directly and inherits any listening socket
    handed over (LISTEN_FDS, socket activation) for a switch with no dropped requests.
    """
    print(banner, flush=True)
    exec_server(command, {**os.environ, **env})
