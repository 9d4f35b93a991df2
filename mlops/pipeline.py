"""The three pipelines as plain stage sequences (the same the Jenkinsfile runs)."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "pipeline",
        help="run the code, data or tests pipeline locally",
        description="run the code, data or tests pipeline locally",
    ).set_defaults(handler=_not_yet)
