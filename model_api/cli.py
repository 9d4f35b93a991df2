"""CLI verb serve."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "serve",
        help="serve the prediction API under gunicorn",
        description="serve the prediction API under gunicorn",
    ).set_defaults(handler=_not_yet)
