"""CLI verb retrain."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "retrain",
        help="fine-tune the production model on new data, gate and register it",
        description="fine-tune the production model on new data, gate and register it",
    ).set_defaults(handler=_not_yet)
