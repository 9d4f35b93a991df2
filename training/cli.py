"""CLI verbs of training: demo-data and train."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "demo-data", help="write a small synthetic dataset", description="write a small synthetic dataset"
    ).set_defaults(handler=_not_yet)
    subparsers.add_parser(
        "train",
        help="train a model from scratch, gate it and register it in testing",
        description="train a model from scratch, gate it and register it in testing",
    ).set_defaults(handler=_not_yet)
