"""Promotion policy: gate passed, latest model tests passed, a listed approver; else a clear refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import CheckFailed, MlopsError
from deploy.promotion import check_promotion
from registry import open_registry

PASSED_TESTS = {"passed": True, "suite": "unit_testing", "summary": {"passed": 12, "failed": 0, "errors": 0}}
FAILED_TESTS = {"passed": False, "suite": "unit_testing", "summary": {"passed": 9, "failed": 3, "errors": 0}}


@pytest.fixture
def make_version(settings, tmp_path: Path):
    """Register a version with the given gate decision and test results; returns its ref."""
    reg = open_registry(settings)
    count = 0

    def make(gate_passed: bool = True, tests: tuple[dict, ...] = ()) -> str:
        nonlocal count
        count += 1
        src = tmp_path / f"version-{count}"
        src.mkdir()
        # The policy reads the manifest only; the model file is opaque bytes to the registry.
        (src / "model.keras").write_bytes(b"not loaded by the promotion policy")
        (src / "test_split.json").write_text("[]")
        manifest = {
            "model_file": "model.keras",
            "classes": ["a", "b"],
            "metrics": {"accuracy": 0.9 if gate_passed else 0.5, "per_class": {"a": {"recall": 0.9}}},
            "gate": {
                "passed": gate_passed,
                "reasons": [] if gate_passed else ["accuracy 0.500 < threshold 0.800"],
            },
            "dataset": {"uri": "/data", "fingerprint": "abc"},
        }
        version = reg.register(src, manifest, actor="pytest")
        for entry in tests:
            reg.annotate(version.ref, "tests", entry, actor="pytest")
        return version.ref

    return make


def _manifest(settings, ref: str) -> dict:
    return open_registry(settings).resolve(ref).manifest


def test_a_gated_and_tested_version_may_be_promoted_with_evidence(settings, make_version):
    ref = make_version(tests=(FAILED_TESTS, PASSED_TESTS))  # the latest run decides
    evidence = check_promotion(_manifest(settings, ref), "product-owner", settings)
    assert evidence["approved_by"] == "product-owner" and evidence["approved_at"]
    assert evidence["version"] == 1 and evidence["metrics"] == {"accuracy": 0.9, "recall": {"a": 0.9}}
    assert evidence["gate"]["passed"] is True
    assert evidence["tests"]["passed"] is True and evidence["tests"]["summary"]["passed"] == 12
    assert evidence["tests"]["at"] and evidence["tests"]["actor"] == "pytest"
    json.dumps(evidence)  # recorded as an annotation: must be JSON


def test_gate_failure_is_refused_with_its_reasons(settings, make_version):
    ref = make_version(gate_passed=False, tests=(PASSED_TESTS,))
    with pytest.raises(CheckFailed, match=r"gate did not pass \(accuracy 0.500 < threshold 0.800\)"):
        check_promotion(_manifest(settings, ref), "product-owner", settings)


def test_untested_version_is_refused_with_the_command_to_run(settings, make_version):
    ref = make_version()
    with pytest.raises(CheckFailed, match=r"no model test results \(run: mlops test-model testing:1\)"):
        check_promotion(_manifest(settings, ref), "product-owner", settings)


def test_latest_failed_tests_are_refused_even_after_an_earlier_pass(settings, make_version):
    ref = make_version(tests=(PASSED_TESTS, FAILED_TESTS))
    with pytest.raises(CheckFailed, match=r"latest model tests failed \(3 failed, 0 errors"):
        check_promotion(_manifest(settings, ref), "product-owner", settings)


def test_every_reason_is_given_on_one_line(settings, make_version):
    ref = make_version(gate_passed=False)
    with pytest.raises(CheckFailed) as info:
        check_promotion(_manifest(settings, ref), "product-owner", settings)
    message = str(info.value)
    assert "\n" not in message
    assert "gate did not pass" in message and "no model test results" in message


def test_unknown_approver_is_refused_and_told_who_may(settings, make_version):
    ref = make_version(tests=(PASSED_TESTS,))
    with pytest.raises(MlopsError, match=r"'mallory' is not an approver \(approvers: product-owner\)"):
        check_promotion(_manifest(settings, ref), "mallory", settings)


def test_promote_cli_refuses_and_leaves_production_empty(cli, settings, make_version):
    ref = make_version(tests=(FAILED_TESTS,))
    result = cli("promote", ref, "--approved-by", "product-owner")
    assert result.code == 3
    assert len(result.err.strip().splitlines()) == 1 and "latest model tests failed" in result.err
    assert open_registry(settings).list("production") == []


def test_promote_cli_records_the_evidence_as_the_approval(cli, settings, make_version):
    ref = make_version(tests=(PASSED_TESTS,))
    result = cli("promote", ref, "--approved-by", "product-owner")
    assert result.code == 0, result.err
    approvals = _manifest(settings, "production:current")["annotations"]["approvals"]
    assert approvals[-1]["evidence"]["tests"]["passed"] is True
    assert approvals[-1]["evidence"]["approved_by"] == "product-owner"
