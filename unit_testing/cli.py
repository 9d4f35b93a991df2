"""CLI verb test-model."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "test-model",
        help="run the model test suite against a registry ref",
        description="run the model test suite against a registry ref",
    ).set_defaults(handler=_not_yet)
