"""What every command line here shares: usage errors exit 2, the global options, settings from them,
and an error as one line with its exit code (the `mlops` CLI and the serving entry point, `mlops-serve`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from core import __version__
from core.errors import EXIT_ERROR, EXIT_USAGE, MlopsError
from core.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int | None]


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit with code 2 and a one-line hint."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(run '{self.prog} --help' for help)\n")


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """--version and the options that choose the settings: registry, model name, settings file, home."""
    parser.add_argument("--version", action="version", version=f"{parser.prog} {__version__}")
    parser.add_argument(
        "--registry", metavar="URI", help="registry root: file://PATH or gs://BUCKET[/PREFIX]"
    )
    parser.add_argument("--model-name", metavar="NAME", help="model name in the registry")
    parser.add_argument("--config", metavar="FILE", type=Path, help="settings file (default ./mlops.toml)")
    parser.add_argument("--home", metavar="DIR", help="local state folder (default .mlops)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings with the global CLI options applied last."""
    return load_settings(
        overrides={
            "registry.uri": args.registry,
            "registry.model_name": args.model_name,
            "home": args.home,
        },
        config_file=args.config,
    )


def run_handler(name: str, handler: Handler, args: argparse.Namespace) -> int:
    """Run HANDLER with the settings ARGS choose; an error is one line prefixed NAME, and its exit code."""
    try:
        settings = settings_from_args(args)
        return int(handler(args, settings) or 0)
    except MlopsError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # Disk full, permission denied, connection refused: say what, not a traceback.
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
