"""The `mlops` command: a thin argparse front over plain functions.

Each area registers its verbs through an `add_commands(subparsers)` function in its own
`cli.py`; a verb's handler takes `(args, settings)` and returns an exit code. Modules import
TensorFlow only inside handlers, so `mlops --help` stays fast. An area whose package is not
installed is left out: the serving image ships only core/, registry/, model_api/ and mlops/ and
still runs `mlops serve`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path

from core import __version__
from core.errors import EXIT_ERROR, EXIT_USAGE, MlopsError
from core.settings import Settings, load_settings

# Order is the order verbs appear in `mlops --help`.
COMMAND_MODULES = (
    "training.cli",  # demo-data, train
    "retraining.cli",  # retrain
    "unit_testing.cli",  # test-model
    "registry.cli",  # registry list|show|audit
    "model_api.cli",  # serve
    "deploy.cli",  # promote, rollback, deploy
    "ui.cli",  # ui (the registry browser; not in the serving image)
    "mlops.monitor",  # monitor
    "mlops.notify",  # notify
    "mlops.pipeline",  # pipeline code|data|tests
    "mlops.triggers",  # triggers install|status (local git push triggers)
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit with code 2 and a one-line hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(run '{self.prog} --help' for help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every verb registered."""
    parser = _Parser(
        prog="mlops",
        description="Train, gate, register, test, promote and serve an image classifier.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 gate, data validation or tests said no.",
    )
    parser.add_argument("--version", action="version", version=f"mlops {__version__}")
    parser.add_argument(
        "--registry", metavar="URI", help="registry root: file://PATH or gs://BUCKET[/PREFIX]"
    )
    parser.add_argument("--model-name", metavar="NAME", help="model name in the registry")
    parser.add_argument("--config", metavar="FILE", type=Path, help="settings file (default ./mlops.toml)")
    parser.add_argument("--home", metavar="DIR", help="local state folder (default .mlops)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module in installed_command_modules():
        module.add_commands(subparsers)
    return parser


def installed_command_modules() -> list[types.ModuleType]:
    """The modules of COMMAND_MODULES whose area package is installed, in order."""
    found = []
    for name in COMMAND_MODULES:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            # Only the area's own package may be missing (an image without it); any other missing
            # module is a broken install and must say so.
            if exc.name != name.partition(".")[0]:
                raise
    return found


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mlops` console script."""
    # Hide TensorFlow's C++ INFO lines (CPU features) in the progress output; its warnings and
    # errors still print. The oneDNN notice ignores this setting (only TF_ENABLE_ONEDNN_OPTS=0,
    # which changes the kernels, hides it). Set before TensorFlow loads; child processes inherit it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        return int(args.handler(args, settings) or 0)
    except MlopsError as exc:
        print(f"mlops {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mlops {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # Disk full, permission denied, connection refused: say what, not a traceback.
        print(f"mlops {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
