"""The promotion policy, enforced in Registry.promote whatever the caller: approver, evidence, production.

Under a trust policy (the `trust` fixture: trainer, tester and approver keys) an approval is a statement
signed with an approver key and the evidence is signed statements; with no policy the approver is the
OS account of this process (from its uid). No environment variable is an identity in either mode.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from manifests import lineage
from trust_keys import TrustSet, sign_tests

from core.identity import os_account
from core.settings import Settings, load_settings
from registry import ConflictError, Registry, open_registry
from registry.chain import TrustError
from registry.errors import PolicyError
from registry.manifest import TestRun, load

PASSED_TESTS = {"passed": True, "suite": "unit_testing", "summary": {"passed": 12, "failed": 0, "errors": 0}}
FAILED_TESTS = {"passed": False, "suite": "unit_testing", "summary": {"passed": 9, "failed": 3, "errors": 0}}


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.gcs)])
def uri(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The registry every command of the test uses (MLOPS_REGISTRY): a local folder or a GCS bucket."""
    if request.param == "local":
        value = f"file://{tmp_path / 'registry'}"
    else:
        value = request.getfixturevalue("fake_gcs").new_bucket(f"policy-{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("MLOPS_REGISTRY", value)
    return value


@pytest.fixture
def settings(uri: str) -> Settings:
    """Settings naming the test's registry (overrides the conftest one, which may load before `uri`)."""
    return load_settings()


@pytest.fixture
def make_version(uri, settings, tmp_path: Path):
    """Register a version with the given gate decision and test results; returns its ref.

    Test results are what `mlops test-model --with-api` records: signed with the tester key when a
    trust policy is in force (the `trust` fixture), plain annotations otherwise."""
    count = 0

    def make(gate_passed: bool = True, tests: tuple[dict, ...] = ()) -> str:
        nonlocal count
        count += 1
        reg = open_registry(load_settings())
        src = tmp_path / f"version-{count}"
        src.mkdir()
        # The policy reads the manifest only; the model file is opaque bytes to the registry.
        (src / "model.keras").write_bytes(f"model {count}".encode())
        manifest = lineage(
            ["a", "b"],
            metrics={"accuracy": 0.9 if gate_passed else 0.5, "per_class": {"a": {"recall": 0.9}}},
            gate={
                "passed": gate_passed,
                "reasons": [] if gate_passed else ["accuracy 0.500 < threshold 0.800"],
            },
        )
        version = reg.register(src, manifest, actor="pytest")
        for entry in tests:
            reg.annotate(version.ref, load(TestRun, entry), actor="pytest")
            if reg.policy.trust is not None:
                trust = TrustSet(reg.policy.trust.path.parent, reg.policy.trust.path)
                trust.roles["ci-tester"] = ("tester", reg.policy.trust.path.parent / "ci-tester.pem")
                sign_tests(reg, version.ref, trust, passed=entry["passed"])
        return version.ref

    return make


def _reg(settings) -> Registry:
    return open_registry(load_settings())  # after the `trust` fixture, when the test has one


def _approve(reg: Registry, ref: str, trust: TrustSet, expected: int | None, actor: str = "po"):
    """Promote with the product owner's approver key, as Jenkins does after its input step."""
    return reg.promote(
        ref,
        expected_production=expected,
        actor=actor,
        approved_by="product-owner",
        approver_key=trust.key("product-owner"),
    )


def _refusals(reg: Registry) -> list[dict]:
    return [e for e in reg.audit() if e["action"] == "refuse"]


def test_an_approved_gated_tested_version_is_promoted_with_the_approval_in_the_pointer(
    trust, settings, make_version
):
    ref = make_version(tests=(FAILED_TESTS, PASSED_TESTS))  # the latest run decides
    reg = _reg(settings)
    promoted = _approve(reg, ref, trust, None, actor="jenkins")
    [entry] = reg.pointer()["history"]
    approval = entry["approval"]
    assert (approval["approved_by"], approval["identity"]["name"], approval["identity"]["source"]) == (
        "product-owner",
        "product-owner",
        "approver-key",
    )
    assert approval["expected_production"] is None
    assert approval["evidence"]["metrics"] == {"accuracy": 0.9, "recall": {"a": 0.9}}
    assert (
        approval["evidence"]["tests"]["passed"] is True and approval["evidence"]["tests"]["actor"] == "pytest"
    )
    assert promoted.manifest.annotations.approvals[0].approved_by == "product-owner"
    json.dumps(approval)


@pytest.mark.parametrize(
    ("gate_passed", "tests", "words"),
    [
        (False, (PASSED_TESTS,), r"gate: gate did not pass"),
        (True, (), r"tests: no model test result signed by a tester key"),
        (True, (PASSED_TESTS, FAILED_TESTS), r"the latest required suite run failed \(9 passed, 3 failed\)"),
    ],
    ids=["gate-failed", "untested", "tests-failed"],
)
def test_a_direct_call_cannot_promote_what_the_evidence_forbids(
    trust, settings, make_version, gate_passed, tests, words
):
    ref = make_version(gate_passed=gate_passed, tests=tests)
    reg = _reg(settings)
    with pytest.raises(TrustError, match=words) as info:
        _approve(reg, ref, trust, None, actor="script")
    assert info.value.exit_code == 3
    assert reg.pointer()["current"] is None and reg.list("production") == []
    [refusal] = _refusals(reg)
    assert (refusal["attempted"], refusal["actor"], refusal["version"]) == ("promote", "script", 1)
    assert refusal["reason"] == str(info.value)


def test_every_evidence_reason_is_given_on_one_line(trust, settings, make_version):
    ref = make_version(gate_passed=False)
    with pytest.raises(TrustError) as info:
        _approve(_reg(settings), ref, trust, None)
    assert "\n" not in str(info.value)
    assert "gate did not pass" in str(info.value) and "no model test result signed" in str(info.value)


def test_a_direct_call_outside_jenkins_is_the_os_account_and_not_an_approver(settings, make_version):
    ref = make_version(tests=(PASSED_TESTS,))
    reg = _reg(settings)
    with pytest.raises(PolicyError, match=rf"'{os_account()}' is not an approver \(approvers: product-owner"):
        reg.promote(ref, expected_production=None)
    assert _refusals(reg)[0]["identity"] == {"name": os_account(), "source": "os-user"}


def test_jenkins_build_variables_are_no_identity(settings, make_version, monkeypatch):
    # Set by hand by a non-approver account (issue 23): with no trust policy, still the OS account.
    monkeypatch.setenv("MLOPS_INPUT_SUBMITTER", "product-owner")
    monkeypatch.setenv("JENKINS_URL", "http://jenkins.test/")
    monkeypatch.setenv("BUILD_URL", "http://jenkins.test/job/mlops/9/")
    ref = make_version(tests=(PASSED_TESTS,))
    reg = _reg(settings)
    with pytest.raises(PolicyError, match=rf"disagrees with the authenticated approver '{os_account()}'"):
        reg.promote(ref, expected_production=None, approved_by="product-owner")
    assert reg.pointer()["current"] is None
    assert _refusals(reg)[0]["identity"] == {"name": os_account(), "source": "os-user"}


def test_an_account_mapped_to_an_approver_may_approve_as_it(settings, make_version, monkeypatch):
    monkeypatch.setenv("MLOPS_DEPLOY_APPROVER_ACCOUNTS", f"{os_account()}=product-owner")
    ref = make_version(tests=(PASSED_TESTS,))
    reg = open_registry(load_settings())
    reg.promote(ref, expected_production=None, approved_by="product-owner")
    approval = reg.pointer()["history"][0]["approval"]
    assert (approval["approved_by"], approval["identity"]["name"]) == ("product-owner", os_account())


def test_the_local_registry_owner_rule_applies_to_a_folder_only(uri, make_version, monkeypatch):
    monkeypatch.setenv("MLOPS_DEPLOY_APPROVER_ACCOUNTS", "@owner=product-owner")
    ref = make_version(tests=(PASSED_TESTS,))
    reg = open_registry(load_settings())
    if uri.startswith("file://"):  # this process's account owns the folder it created
        reg.promote(ref, expected_production=None, approved_by="product-owner")
        assert reg.pointer()["current"] == 1
    else:  # a bucket has no owner account: only a listed or mapped identity approves
        with pytest.raises(PolicyError, match="disagrees with the authenticated approver"):
            reg.promote(ref, expected_production=None, approved_by="product-owner")
        assert reg.pointer()["current"] is None


def test_an_approval_over_a_production_that_has_moved_is_a_conflict(trust, settings, make_version):
    """Two approvals given over production:1; the second must not silently replace production:2."""
    for _ in range(3):
        make_version(tests=(PASSED_TESTS,))
    reg = _reg(settings)
    _approve(reg, "testing:1", trust, None)
    _approve(reg, "testing:2", trust, 1)
    with pytest.raises(ConflictError, match=r"given over production:1, but production is now production:2"):
        _approve(reg, "testing:3", trust, 1)
    assert (reg.pointer()["current"], reg.pointer()["stack"]) == (2, [1, 2])
    assert _refusals(reg)[-1]["expected_production"] == 1


def test_promote_cli_refusal_is_one_line_exit_3_and_leaves_production_empty(
    trust, cli, settings, make_version
):
    ref = make_version(tests=(FAILED_TESTS,))
    result = cli("promote", ref, "--approver-key", str(trust.key("product-owner")))
    assert result.code == 3
    # One line, and no no-trust-policy notice: a policy is in force.
    assert len(result.err.strip().splitlines()) == 1 and "latest required suite run failed" in result.err
    assert _reg(settings).list("production") == []


def test_promote_cli_expect_production(trust, cli, settings, make_version):
    make_version(tests=(PASSED_TESTS,))
    make_version(tests=(PASSED_TESTS,))
    key = ("--approver-key", str(trust.key("product-owner")))
    assert cli("promote", "testing:1", *key, "--expect-production", "none").code == 0
    moved = cli("promote", "testing:2", *key, "--expect-production", "none")
    assert moved.code == 1 and "production moved since" in moved.err
    assert cli("promote", "testing:2", *key, "--expect-production", "nonsense").code == 2
    assert cli("promote", "testing:2", *key, "--expect-production", "\u00b2").code == 2  # isdigit(), no int
    done = cli("promote", "testing:2", *key, "--expect-production", "production:1", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["previous"] == 1


def test_promote_cli_records_who_approved(trust, cli, settings, make_version):
    ref = make_version(tests=(PASSED_TESTS,))
    result = cli("promote", ref, "--approver-key", str(trust.key("product-owner")))  # the key approves
    assert result.code == 0, result.err
    assert "approved by product-owner, authenticated as product-owner (approver-key)" in result.out
    approvals = _reg(settings).resolve("production:current").manifest.annotations.approvals
    assert approvals[-1].evidence["tests"]["passed"] is True
