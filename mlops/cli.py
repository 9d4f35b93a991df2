"""The `mlops` command: a thin argparse front over plain functions.

Each area registers its verbs through an `add_commands(subparsers)` function in its own
`cli.py`; a verb's handler takes `(args, settings)` and returns an exit code. Modules import
TensorFlow only inside handlers, so `mlops --help` stays fast. An area whose package is not
installed is left out. The usage errors, global options and error handling are core.command's, shared
with the serving entry point `mlops-serve` (model_api.cli), which `mlops serve` is one door to.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import types
from collections.abc import Sequence

from core.command import Parser, add_global_options, run_handler

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


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every verb registered."""
    parser = Parser(
        prog="mlops",
        description="Train, gate, register, test, promote and serve an image classifier.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 gate, data validation or tests said no.",
    )
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mlops` console script."""
    # Hide TensorFlow's C++ INFO lines (CPU features) in the progress output; its warnings and
    # errors still print. The oneDNN notice ignores this setting (only TF_ENABLE_ONEDNN_OPTS=0,
    # which changes the kernels, hides it). Set before TensorFlow loads; child processes inherit it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_handler(f"mlops {args.command}", args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
