"""The CLI front: help everywhere, usage errors exit 2."""

from __future__ import annotations

import argparse
import re

import pytest

from mlops.cli import build_parser

VERBS = [
    "demo-data", "train", "retrain", "test-model", "registry", "promote", "approve", "keys", "monitor",
    "triggers", "rollback", "serve", "deploy", "ui", "notify", "pipeline", "dataset", "train-job",
    "reference",
]  # fmt: skip


def test_the_parser_has_exactly_these_verbs():
    """Whole subcommand names from the parser itself: "train" is not found inside "retrain"."""
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(commands.choices) == sorted(VERBS)


def test_top_level_help_lists_every_verb_with_its_help(cli):
    result = cli("--help")
    assert result.code == 0
    # argparse lists each subcommand on its own line, indented 4, then its help text.
    listed = dict(re.findall(r"^    (\S+) +(\S.*)$", result.out, re.M))
    assert sorted(listed) == sorted(VERBS)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(cli, verb):
    result = cli(verb, "--help")
    assert result.code == 0
    assert "usage: mlops" in result.out


def test_unknown_verb_is_a_usage_error(cli):
    result = cli("frobnicate")
    assert result.code == 2
    assert "invalid choice" in result.err


def test_no_verb_is_a_usage_error(cli):
    assert cli().code == 2


def test_parser_builds_without_tensorflow():
    """`mlops --help` must not pay for importing TensorFlow."""
    import subprocess
    import sys

    code = (
        "import sys; from mlops.cli import build_parser; build_parser(); print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert build_parser().prog == "mlops"
