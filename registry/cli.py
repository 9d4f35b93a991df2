"""CLI verbs registry, promote and rollback."""

from __future__ import annotations

import argparse

from mlops.errors import MlopsError
from mlops.settings import Settings


def _not_yet(args: argparse.Namespace, settings: Settings) -> int:
    raise MlopsError(f"'{args.command}' is not implemented yet")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    subparsers.add_parser(
        "registry", help="list and show model versions", description="list and show model versions"
    ).set_defaults(handler=_not_yet)
    subparsers.add_parser(
        "promote",
        help="copy a tested version to production",
        description="copy a tested version to production",
    ).set_defaults(handler=_not_yet)
    subparsers.add_parser(
        "rollback",
        help="point production back at the previous version",
        description="point production back at the previous version",
    ).set_defaults(handler=_not_yet)
