"""CLI verb serve: check the model, then run the API under gunicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.processes import check_server_options, exec_server
from core.settings import Settings

CONFIG = Path(__file__).with_name("gunicorn_conf.py")
APP = "model_api:create_app()"


def gunicorn_command() -> list[str]:
    """The command that serves the API (settings come from MLOPS_API_* in its environment)."""
    return [sys.executable, "-m", "gunicorn", "--config", str(CONFIG), APP]


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch and verify the model, then become gunicorn (exec) in the foreground."""
    from model_api.loading import fetch_model

    api = settings.api
    ref = args.model or api.model_ref
    check_server_options(args)
    _check_grpc_port(args, api)
    # Fail here with one clear line, before any worker starts, if the model cannot be had or the
    # registry's copy is unsigned (where required), signed by a foreign key, or altered.
    model_path, manifest = fetch_model(settings, ref, refresh=True)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines drown gunicorn's log
    env.update(
        {
            # Pinned to the version just verified: a worker respawned later loads that version, never
            # whatever the pointer names by then (which nobody has verified for this server).
            "MLOPS_API_MODEL_REF": _pinned(ref, manifest),
            "MLOPS_API_HOST": args.host or api.host,
            "MLOPS_API_PORT": str(api.port if args.port is None else args.port),
            "MLOPS_API_WORKERS": str(args.workers or api.workers),
            "MLOPS_API_THREADS": str(args.threads or api.threads),
            "MLOPS_API_GRPC_PORT": str(api.grpc_port if args.grpc_port is None else args.grpc_port),
            "MLOPS_REGISTRY": settings.registry_uri,
            "MLOPS_HOME": str(settings.home),
        }
    )
    print(
        f"serving {manifest.get('name', model_path.stem)} version {manifest.get('version', '?')} "
        f"({ref}) on http://{env['MLOPS_API_HOST']}:{env['MLOPS_API_PORT']} "
        f"with {env['MLOPS_API_WORKERS']} workers x {env['MLOPS_API_THREADS']} threads"
        + (f"; gRPC on port {env['MLOPS_API_GRPC_PORT']}" if env["MLOPS_API_GRPC_PORT"] != "0" else ""),
        flush=True,
    )
    # exec: gunicorn inherits the listening socket `mlops deploy` hands over (LISTEN_FDS, socket
    # activation) for a switch with no dropped requests.
    exec_server(gunicorn_command(), env)


def _check_grpc_port(args: argparse.Namespace, api: Any) -> None:
    """--grpc-port: 0 (off) or a TCP port other than the REST one (UsageError)."""
    grpc_port = api.grpc_port if args.grpc_port is None else args.grpc_port
    rest_port = api.port if args.port is None else args.port
    if not 0 <= grpc_port <= 65535:
        raise UsageError(f"--grpc-port must be 0 (off) or a TCP port, got {grpc_port}")
    if grpc_port and grpc_port == rest_port:
        raise UsageError(f"--grpc-port {grpc_port} is the REST port too; give gRPC a port of its own, or 0")


def _pinned(ref: str, manifest: dict) -> str:
    """production:current → production:7 (the version fetched); a local path stays as it is."""
    area, version = manifest.get("area"), manifest.get("version")
    return f"{area}:{version}" if area in ("testing", "production") and isinstance(version, int) else ref


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the prediction API under gunicorn",
        description="Fetch and verify a model, then serve the prediction API under gunicorn "
        "(each worker loads and warms the model before it accepts requests).",
    )
    parser.add_argument(
        "--model",
        metavar="REF",
        help="registry ref (production:current, testing:latest, testing:7) or a .keras file "
        "with manifest.json beside it (default: settings api.model_ref)",
    )
    parser.add_argument("--host", help="address to bind (default: settings api.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: settings api.port, 8080)")
    parser.add_argument(
        "--grpc-port",
        type=int,
        help="port for OIP v2 over gRPC beside REST, shared by the workers (default: settings "
        "api.grpc_port, 8081; 0: REST only)",
    )
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default: api.workers)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: api.threads)")
    parser.set_defaults(handler=serve)
