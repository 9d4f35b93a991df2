"""CLI verb deploy."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "deploy",
        help="roll the API out on the production model (local or Kubernetes)",
        description="roll the API out on the production model (local or Kubernetes)",
    ).set_defaults(handler=_not_yet)
