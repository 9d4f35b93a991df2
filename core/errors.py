"""Errors that reach a user, each with the exit code the CLI returns (docs/architecture.md: exit codes)."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FAILED_CHECK = 3  # gate or tests failed: a distinct code Jenkins branches on


class MlopsError(Exception):
    """An error with a message fit for a user: what went wrong and what to do."""

    exit_code = EXIT_ERROR


class UsageError(MlopsError):
    """The command was called wrongly."""

    exit_code = EXIT_USAGE


class CheckFailed(MlopsError):
    """A quality gate or a test suite said no; nothing was registered or promoted."""

    exit_code = EXIT_FAILED_CHECK
    # What `--json` prints for a failed gate (train, retrain, the training Job); None: nothing to print.
    summary: dict[str, Any] | None = None
