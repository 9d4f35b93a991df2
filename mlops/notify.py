"""Notifications to the product owner (SMTP or an outbox folder)."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "notify",
        help="email the product owner the evidence for a version",
        description="email the product owner the evidence for a version",
    ).set_defaults(handler=_not_yet)
