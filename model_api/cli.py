"""The serving entry point: check the model, then run the API under gunicorn.

Two doors to one function: `mlops-serve` / `python -m model_api` (this module's `main`, what the image,
the Kubernetes Deployment, `mlops deploy` and the model tests start: serving code only), and the verb
`mlops serve` of the top CLI (`add_commands`), which takes the same options.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from core import gunicorn_launcher as gunicorn
from core.command import Parser, add_global_options, run_handler
from core.errors import UsageError
from core.settings import ApiSettings, Settings
from registry.manifest import Manifest

PROG = "mlops-serve"
CONFIG = Path(__file__).with_name("gunicorn_conf.py")
APP = "model_api:create_app()"
DESCRIPTION = (
    "Fetch and verify a model, then serve the prediction API under gunicorn "
    "(each worker loads and warms the model before it accepts requests)."
)


def gunicorn_command() -> list[str]:
    """The command that serves the API (settings come from MLOPS_API_* in its environment)."""
    return gunicorn.gunicorn_command(CONFIG, APP)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch and verify the model, then become gunicorn (exec) in the foreground."""
    from model_api.loading import fetch_model

    api = settings.api
    ref = args.model or api.model_ref
    server = gunicorn.server_env("api", args, api)
    if args.dicom_port is not None and not 0 <= args.dicom_port < 65536:
        raise UsageError(f"--dicom-port must be 0 (off) or a port number, got {args.dicom_port}")
    _check_grpc_port(args, api)
    # Fail here with one clear line, before any worker starts, if the model cannot be had or the
    # registry's copy is unsigned (where required), signed by a foreign key, or altered.
    model_path, manifest = fetch_model(settings, ref, refresh=True)
    env = {
        # TensorFlow's C++ info lines drown gunicorn's log, unless asked for.
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        **server,
        # Pinned to the version just verified: a worker respawned later loads that version, never
        # whatever the pointer names by then (which nobody has verified for this server).
        "MLOPS_API_MODEL_REF": _pinned(ref, manifest),
        "MLOPS_API_GRPC_PORT": str(api.grpc_port if args.grpc_port is None else args.grpc_port),
        "MLOPS_REGISTRY": settings.registry_uri,
        "MLOPS_HOME": str(settings.home),
        # The optional DIMSE Storage SCP (model_api/dimse.py), started by gunicorn's master.
        "MLOPS_DICOM_PORT": str(settings.dicom.port if args.dicom_port is None else args.dicom_port),
    }
    grpc = f"; gRPC on port {env['MLOPS_API_GRPC_PORT']}" if env["MLOPS_API_GRPC_PORT"] != "0" else ""
    banner = (
        f"serving {manifest.name or model_path.stem} version {manifest.version or '?'} "
        f"({ref}) on http://{env['MLOPS_API_HOST']}:{env['MLOPS_API_PORT']} "
        f"with {env['MLOPS_API_WORKERS']} workers x {env['MLOPS_API_THREADS']} threads{grpc}"
    )
    gunicorn.exec_gunicorn(gunicorn_command(), env, banner)


def _check_grpc_port(args: argparse.Namespace, api: ApiSettings) -> None:
    """--grpc-port: 0 (off) or a TCP port other than the REST one (UsageError)."""
    grpc_port = api.grpc_port if args.grpc_port is None else args.grpc_port
    rest_port = api.port if args.port is None else args.port
    if not 0 <= grpc_port <= 65535:
        raise UsageError(f"--grpc-port must be 0 (off) or a TCP port, got {grpc_port}")
    if grpc_port and grpc_port == rest_port:
        raise UsageError(f"--grpc-port {grpc_port} is the REST port too; give gRPC a port of its own, or 0")


def _pinned(ref: str, manifest: Manifest) -> str:
    """production:current → production:7 (the version fetched); a local path stays as it is."""
    area, version = manifest.area, manifest.version
    return f"{area}:{version}" if area in ("testing", "production") and isinstance(version, int) else ref


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The options of `mlops serve` and `mlops-serve`: the model and the server's size and address."""
    parser.add_argument(
        "--model",
        metavar="REF",
        help="registry ref (production:current, testing:latest, testing:7) or a .keras file "
        "with manifest.json beside it (default: settings api.model_ref)",
    )
    gunicorn.add_server_options(parser, "api", ApiSettings())
    parser.add_argument(
        "--grpc-port",
        type=int,
        help="port for OIP v2 over gRPC beside REST, shared by the workers (default: settings "
        "api.grpc_port, 8081; 0: REST only)",
    )
    parser.add_argument(
        "--dicom-port",
        type=int,
        metavar="PORT",
        help="also run a DIMSE Storage SCP (C-STORE, C-ECHO) on PORT; 0 or absent: off",
    )
    parser.set_defaults(handler=serve)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "serve", help="serve the prediction API under gunicorn", description=DESCRIPTION
    )
    add_serve_options(parser)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `mlops-serve`: the global options and serve's own."""
    parser = Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog="Exit codes: 0 ok, 1 error (no model, refused signature), 2 usage. Same as `mlops serve`.",
    )
    add_global_options(parser)
    add_serve_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mlops-serve` and `python -m model_api`."""
    args = build_parser().parse_args(argv)
    return run_handler(PROG, args.handler, args)
