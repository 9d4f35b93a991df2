"""`mlops registry list|show|audit`, `mlops promote` and `mlops rollback`."""

from __future__ import annotations

import json

import pytest

from core.identity import os_account
from registry import open_registry
from registry.manifest import TestRun, TestSummary

NO_POLICY = "mlops: no trust policy is in force"


def _errors(err: str) -> list[str]:
    """The error lines, once the no-trust-policy notice (always the first line) is checked and dropped."""
    lines = err.strip().splitlines()
    assert lines[0].startswith(NO_POLICY), err
    return lines[1:]


@pytest.fixture
def filled(settings, model_dir, manifest):
    """A local registry (the default under MLOPS_HOME) with three gated and tested versions."""
    reg = open_registry(settings)
    for acc in (0.81, 0.86, 0.9):
        gated = {**manifest, "metrics": {"accuracy": acc}, "gate": {"passed": True}}
        v = reg.register(model_dir(), gated, actor="ci")
        reg.annotate(v.ref, TestRun(passed=True, suite="model", summary=TestSummary(failed=0)), actor="ci")
    return reg


def test_list_table_and_json(cli, filled, promote):
    promote(filled, "testing:2")
    result = cli("registry", "list")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[1].split()[:3] == ["REF", "CREATED", "(UTC)"]
    row2 = next(line for line in lines if line.startswith("testing:2"))
    assert "0.860" in row2 and "passed" in row2 and "production:current" in row2
    data = json.loads(cli("registry", "list", "--json").out)
    assert [v["version"] for v in data["versions"]] == [1, 2, 3]
    assert data["versions"][1]["production"] == "current"
    assert data["versions"][2]["accuracy"] == 0.9
    prod = json.loads(cli("registry", "list", "--area", "production", "--json").out)
    assert [v["ref"] for v in prod["versions"]] == ["production:2"]


def test_show_marks_production_and_annotations(cli, filled, promote):
    promote(filled, "testing:1")
    filled.annotate("testing:1", TestRun(passed=True, suite="smoke"), actor="ci")
    data = json.loads(cli("registry", "show", "production:current", "--json").out)
    assert (data["ref"], data["production"]) == ("production:1", "current")
    assert [t["suite"] for t in data["manifest"]["annotations"]["tests"]] == ["model", "smoke"]
    human = cli("registry", "show", "testing:1")
    assert human.code == 0
    assert human.out.splitlines()[0] == "xray-classifier testing:1  [production:current]"
    assert "model.keras" in human.out and "tests: 2" in human.out


def test_promote_checks_policy_records_approval_and_audit(cli, filled, monkeypatch):
    monkeypatch.setenv("BUILD_USER_ID", "jenkins-bob")
    result = cli("promote", "testing:latest", "--approved-by", "product-owner", "--reason", "good", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "promoted": "production:3", "from": "testing:3", "previous": None, "approved_by": "product-owner",
        "identity": {"name": os_account(), "source": "os-user"}, "signature": None,
    }  # fmt: skip
    assert result.err.startswith(NO_POLICY) and len(result.err.strip().splitlines()) == 1
    approvals = filled.resolve("testing:3").manifest.annotations.approvals
    assert approvals[0].approved_by == "product-owner"
    assert approvals[0].evidence["metrics"]["accuracy"] == 0.9
    assert approvals[0].evidence["tests"]["passed"] is True
    promote = next(e for e in filled.audit() if e["action"] == "promote")
    assert (promote["actor"], promote["reason"]) == ("jenkins-bob", "good")


def test_a_claimed_approver_who_is_not_the_submitter_is_refused_and_logged(cli, filled, monkeypatch):
    # The attack: widen the approvers list in the environment and claim to be on it.
    monkeypatch.setenv("MLOPS_DEPLOY_APPROVERS", "mallory")
    result = cli("promote", "testing:1", "--approved-by", "mallory")
    assert result.code == 3
    [error] = _errors(result.err)
    assert f"--approved-by 'mallory' disagrees with the authenticated approver '{os_account()}'" in error
    assert filled.pointer()["current"] is None
    events = filled.audit()
    assert [e["action"] for e in events] == ["register", "annotate:tests"] * 3 + ["refuse"]
    refusal = events[-1]
    assert (refusal["attempted"], refusal["version"], refusal["approved_by"]) == ("promote", 1, "mallory")
    assert refusal["identity"] == {"name": os_account(), "source": "os-user"}
    assert "disagrees" in refusal["reason"]


def test_an_authenticated_non_approver_is_refused_and_logged(cli, filled, monkeypatch):
    monkeypatch.delenv("MLOPS_DEPLOY_APPROVER_ACCOUNTS")  # this OS account is no longer an approver
    result = cli("promote", "testing:1")
    assert result.code == 3
    assert f"'{os_account()}' is not an approver (approvers: product-owner" in result.err
    assert filled.pointer()["current"] is None
    assert filled.audit()[-1]["action"] == "refuse"


def test_jenkins_variables_set_by_hand_are_no_identity(cli, filled, monkeypatch):
    # The attack of issue 23: a non-approver account names the approver in Jenkins' variables.
    monkeypatch.delenv("MLOPS_DEPLOY_APPROVER_ACCOUNTS")
    monkeypatch.setenv("MLOPS_INPUT_SUBMITTER", "product-owner")
    monkeypatch.setenv("JENKINS_URL", "http://jenkins.test/")
    monkeypatch.setenv("BUILD_URL", "http://jenkins.test/job/mlops/7/")
    result = cli("promote", "testing:1", "--approved-by", "product-owner")
    assert result.code == 3, result.out
    [error] = _errors(result.err)
    assert f"disagrees with the authenticated approver '{os_account()}' (os-user)" in error
    assert filled.pointer()["current"] is None
    refusal = filled.audit()[-1]
    assert (refusal["action"], refusal["identity"]) == ("refuse", {"name": os_account(), "source": "os-user"})


def test_promote_refused_by_policy_exits_3_and_changes_nothing(cli, filled):
    filled.annotate("testing:2", TestRun(passed=False, summary=TestSummary(failed=2, errors=0)), actor="ci")
    result = cli("promote", "testing:2", "--approved-by", "product-owner")
    assert result.code == 3
    [error] = _errors(result.err)
    assert "refusing to promote" in error
    assert filled.pointer()["current"] is None
    assert filled.resolve("testing:2").manifest.annotations.approvals == ()
    refusal = filled.audit()[-1]
    assert (refusal["action"], refusal["attempted"], refusal["version"]) == ("refuse", "promote", 2)
    assert "latest model tests failed" in refusal["reason"]


def test_rollback(cli, filled):
    for ref in ("testing:1", "testing:2"):
        assert cli("promote", ref, "--approved-by", "product-owner").code == 0
    result = cli("rollback", "--reason", "smoke failed", "--actor", "ops")
    assert result.code == 0
    assert result.out.strip() == "rolled production back from production:2 to production:1"
    again = cli("rollback")
    assert again.code == 1 and "no previous version" in again.err
    events = json.loads(cli("registry", "audit", "--json").out)
    assert events[-1]["action"] == "rollback" and events[-1]["actor"] == "ops"


@pytest.mark.parametrize(
    ("args", "words", "code"),
    [
        (["registry", "show", "testing:99"], "testing:99 of 'xray-classifier' does not exist", 1),
        (["registry", "show", "testing:nope"], "malformed ref", 2),  # a ref typed wrong: usage
        (["registry", "show", "prod:1"], "unknown area", 2),
        (["promote", "production:current", "--approved-by", "product-owner"], "production has no current", 1),
        (["--registry", "s3://x", "promote", "testing:1", "--approved-by", "po"], "unsupported", 1),
    ],
)
def test_errors_are_one_line(cli, filled, args, words, code):
    result = cli(*args)
    assert result.code == code
    assert words in result.err
    errors = _errors(result.err) if "promote" in args else result.err.strip().splitlines()
    assert len(errors) == 1


def test_missing_registry_is_not_created_by_read_commands(cli, tmp_path):
    root = tmp_path / "nowhere"
    for args in (["registry", "list"], ["registry", "show", "testing:1"], ["rollback"]):
        result = cli("--registry", f"file://{root}", *args)
        assert result.code == 1
        assert f"registry file://{root} does not exist" in result.err
    assert not root.exists()


def test_empty_registry_list(cli, settings, model_dir, manifest):
    open_registry(settings).register(model_dir(), manifest, actor="ci")
    result = cli("registry", "list", "--area", "production")
    assert result.code == 0
    assert result.out.startswith("no production versions")


@pytest.mark.gcs
def test_wrong_bucket_from_the_cli(cli, fake_gcs):
    result = cli("--registry", "gs://no-such-bucket", "registry", "list")
    assert result.code == 1
    assert result.err.strip() == (
        "mlops registry: error: registry gs://no-such-bucket does not exist; check --registry / "
        "MLOPS_REGISTRY or register a model first (mlops train)"
    )


@pytest.mark.gcs
def test_cli_against_gcs(cli, fake_gcs, model_dir, manifest, settings):
    uri = fake_gcs.new_bucket("cli-bucket") + "/reg"
    from registry import Registry

    reg = Registry.open(uri, "xray-classifier")
    reg.register(model_dir(), {**manifest, "gate": {"passed": True}}, actor="ci")
    reg.annotate("testing:1", TestRun(passed=True), actor="ci")
    assert cli("--registry", uri, "promote", "testing:1", "--approved-by", "product-owner").code == 0
    data = json.loads(cli("--registry", uri, "registry", "show", "production:current", "--json").out)
    assert data["uri"] == f"{uri}/production/xray-classifier/1"
    assert data["manifest"]["annotations"]["approvals"][0]["approved_by"] == "product-owner"
