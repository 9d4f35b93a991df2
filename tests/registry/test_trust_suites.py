"""The required suites of a trust policy: recorded at `keys init --trust`, accepted again by a person.

A changed model test suite has a new digest; a version tested with it is refused, and the refusal
says the one command that accepts the suite. Nothing accepts it on its own.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from trust_keys import TrustSet, sign_tests

from core.settings import load_settings
from registry import open_registry
from registry.chain import attest, verify_chain
from registry.trust import load_policy
from unit_testing.suites import resolve_suite

CHANGED = "sha256:" + "c" * 64  # the digest of a suite someone edited


def test_keys_init_trust_records_and_prints_the_built_in_suite_as_it_is_now(cli, tmp_path: Path):
    result = cli("keys", "init", "--trust")
    assert result.code == 0, result.err
    # What `mlops test-model` (built-in suite) will name in its signed result.
    builtin = resolve_suite(None, tmp_path, 10).record()["digest"]
    policy = load_policy(load_settings().trust_policy_path)
    assert policy.required_suites == (builtin,)
    assert builtin in result.out
    again = cli("keys", "init", "--trust")  # an existing policy is never rewritten
    assert again.code == 0 and "left as it is" in again.out


def _tested_with(reg, ref: str, trust: TrustSet, suite: str) -> None:
    local = reg.fetch(ref, refresh=True)
    facts = {"passed": True, "summary": {"passed": 3, "failed": 0}, "suite_digest": suite, "with_api": True}
    attest(reg, local.version, local.digest, "tests", facts, trust.key("ci-tester"))


def test_a_changed_suite_is_refused_with_the_command_that_accepts_it(trust, cli, model_dir, manifest):
    reg = open_registry(load_settings())
    mv = reg.register(model_dir(), manifest, actor="ci")
    _tested_with(reg, mv.ref, trust, CHANGED)
    reg.approve(mv.ref, trust.key("product-owner"), "product-owner", "ok", "po")
    verdict = verify_chain(reg, mv.ref, reg.policy.trust, full=True)
    assert not verdict.ok
    [problem] = verdict.problems
    command = re.search(r"accept it with: (mlops keys accept-suite \S+);", problem)
    assert command is not None, problem
    signers_before = tomllib.loads(trust.policy.read_text())["signers"]
    # A person reviews the suite and runs the command the refusal named.
    done = cli(*command.group(1).split()[1:])
    assert done.code == 0, done.err
    assert tomllib.loads(trust.policy.read_text())["signers"] == signers_before
    reg = open_registry(load_settings())
    assert verify_chain(reg, mv.ref, reg.policy.trust, full=True).ok
    assert cli("keys", "accept-suite", CHANGED).out.startswith("already required")


def test_the_suite_signed_before_stays_required(trust, cli, model_dir, manifest):
    reg = open_registry(load_settings())
    mv = reg.register(model_dir(), manifest, actor="ci")
    sign_tests(reg, mv.ref, trust)  # the suite the policy already required
    assert cli("keys", "accept-suite", CHANGED).code == 0
    reg = open_registry(load_settings())
    reg.approve(mv.ref, trust.key("product-owner"), "product-owner", "ok", "po")
    assert verify_chain(reg, mv.ref, reg.policy.trust, full=True).ok


@pytest.mark.parametrize("bad", ["sha256:XYZ", "c" * 64, "sha256:" + "C" * 64, "sha256:" + "c" * 64 + "\n"])
def test_accept_suite_takes_only_a_digest_and_changes_nothing_else(trust, cli, bad):
    before = trust.policy.read_bytes()
    result = cli("keys", "accept-suite", bad)
    assert result.code == 2 and "not a suite digest" in result.err
    assert trust.policy.read_bytes() == before


def test_accept_suite_without_a_policy_is_a_usage_error(cli):
    result = cli("keys", "accept-suite", CHANGED)
    assert result.code == 2 and "mlops keys init --trust" in result.err
