"""`mlops` without some areas installed (the serving image): their verbs go, the rest still work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlops import cli as mlops_cli

# The serving image ships core/, registry/, model_api/ and mlops/ only.
NOT_IN_SERVING_IMAGE = ("training", "retraining", "unit_testing", "deploy", "ui", "monitoring")

# Runs `mlops ARGS` as if the named top-level packages were not installed: a finder ahead of all
# others answers for them exactly as Python does for a package that is nowhere on the path.
RUNNER = """
import sys
BLOCKED = set(filter(None, sys.argv[1].split(",")))
class NotInstalled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled)
from mlops.cli import main
sys.exit(main(sys.argv[2:]))
"""


def mlops_without(packages: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", RUNNER, ",".join(packages), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _verbs(help_text: str) -> set[str]:
    """The verb names `mlops --help` lists (first word of each indented line under COMMAND)."""
    lines = help_text.split("COMMAND\n", 2)[-1].split("\noptions:")[0].splitlines()
    return {line.split()[0] for line in lines if line.startswith("    ") and not line.startswith("     ")}


def test_without_the_training_side_help_lists_only_the_installed_verbs():
    done = mlops_without(NOT_IN_SERVING_IMAGE, "--help")
    assert done.returncode == 0, done.stderr
    assert _verbs(done.stdout) == {"registry", "keys", "serve", "notify", "pipeline", "triggers"}


def test_without_the_training_side_serve_still_parses():
    done = mlops_without(NOT_IN_SERVING_IMAGE, "serve", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: mlops serve" in done.stdout


def test_with_everything_installed_help_lists_every_area():
    done = mlops_without((), "--help")
    every_area = {"train", "retrain", "test-model", "promote", "rollback", "deploy", "serve", "ui"}
    assert every_area <= _verbs(done.stdout)


def test_an_area_that_needs_a_missing_package_is_an_error_not_a_missing_verb():
    """retraining is installed but training (which it imports) is not: a broken install, said loudly."""
    done = mlops_without(("training",), "--help")
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr and "'training'" in done.stderr


def test_only_the_areas_own_package_may_be_missing(monkeypatch):
    monkeypatch.setattr(mlops_cli, "COMMAND_MODULES", ("no_such_area.cli", "registry.cli"))
    assert [m.__name__ for m in mlops_cli.installed_command_modules()] == ["registry.cli"]
    # The package exists but its cli module does not: a packaging mistake, not an absent area.
    monkeypatch.setattr(mlops_cli, "COMMAND_MODULES", ("registry.no_such_cli",))
    with pytest.raises(ModuleNotFoundError, match=r"registry\.no_such_cli"):
        mlops_cli.installed_command_modules()
