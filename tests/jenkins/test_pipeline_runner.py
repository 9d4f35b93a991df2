"""`mlops pipeline`: argument checks, the stage runner, and reading the registered version."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from manifests import lineage

from core.errors import MlopsError
from mlops.pipeline import PipelineRun, Stage, _last_json, _Stop, registered_ref


def test_data_pipeline_needs_data(cli):
    result = cli("pipeline", "data")
    assert result.code == 2
    assert "--data" in result.err


def test_deploy_needs_an_approver(cli):
    result = cli("pipeline", "code", "--deploy")
    assert result.code == 2
    assert "--approve-as" in result.err


def test_tests_pipeline_does_not_promote(cli):
    result = cli("pipeline", "tests", "--approve-as", "product-owner")
    assert result.code == 2


def test_missing_data_folder_is_a_usage_error_and_changes_nothing(cli):
    result = cli("pipeline", "code", "--data", "no/such/folder")
    assert result.code == 2
    assert "no/such/folder" in result.err
    assert not Path(".mlops").exists()


def test_unknown_pipeline_is_a_usage_error(cli):
    assert cli("pipeline", "nightly").code == 2


def test_runner_stops_at_the_first_failure_with_its_exit_code():
    out = io.StringIO()
    run = PipelineRun(out=out)
    run.run(Stage("help", ("pipeline", "--help")))  # argparse exits 0 after printing help
    with pytest.raises(_Stop) as stopped:
        run.run(Stage("bad option", ("pipeline", "code", "--no-such-option")))
    assert stopped.value.code == 2
    assert [(r.name, r.code) for r in run.results] == [("help", 0), ("bad option", 2)]
    summary = run.summary()
    assert "help" in summary and "FAILED (exit 2)" in summary and "total" in summary
    assert "==> stage 2: bad option" in out.getvalue()


@pytest.mark.slow
def test_cli_failure_stops_the_pipeline_and_prints_the_summary(cli, tmp_path):
    """A failing stage's exit code is the pipeline's, and no later stage runs."""
    data = tmp_path / "empty-dataset"
    data.mkdir()
    result = cli("pipeline", "data", "--data", str(data))
    assert result.code != 0
    assert "retrain" in result.out
    assert "model tests" not in result.out  # never reached
    assert "total" in result.out


@pytest.mark.parametrize(
    ("output", "ref"),
    [
        ({"version": 3}, "testing:3"),
        ({"ref": "testing:4", "version": 4}, "testing:4"),
        ({"model": {"name": "x", "version": 5}}, "testing:5"),
    ],
)
def test_registered_ref_reads_train_json(output, ref):
    assert registered_ref(output) == ref


@pytest.mark.parametrize("output", [None, {}, {"version": "7"}, [1, 2]])
def test_registered_ref_refuses_output_without_a_version(output):
    with pytest.raises(MlopsError, match="registry list"):
        registered_ref(output)


def test_last_json_reads_a_document_or_its_last_json_line():
    assert _last_json('{"version": 2}\n') == {"version": 2}
    assert _last_json('epoch 1/2\nepoch 2/2\n{"version": 9}\n') == {"version": 9}
    assert _last_json("no json here") is None


def test_print_model_ref_names_production_else_the_latest_testing_version(cli, settings, tmp_path, promote):
    """The tests pipeline's choice of model, as the Jenkinsfile asks for it."""
    from registry import open_registry

    reg = open_registry(settings)
    src = tmp_path / "v"
    src.mkdir()
    (src / "model.keras").write_bytes(b"not loaded")
    manifest = {"model_file": "model.keras", "classes": ["a", "b"], "gate": {"passed": True, "reasons": []}}
    first = reg.register(src, lineage(**manifest), actor="pytest")
    result = cli("pipeline", "tests", "--print-model-ref")
    assert (result.code, result.out) == (0, "testing:latest\n")
    promote(reg, first.ref, actor="pytest")
    result = cli("pipeline", "tests", "--print-model-ref")
    assert (result.code, result.out) == (0, "production:current\n")


@pytest.mark.parametrize(
    "argv",
    [("code", "--print-model-ref"), ("tests", "--print-model-ref", "--data", ".")],
    ids=["code pipeline", "with --data"],
)
def test_print_model_ref_goes_with_the_tests_pipeline_alone(cli, argv):
    result = cli("pipeline", *argv)
    assert result.code == 2 and "--print-model-ref" in result.err


def test_print_model_ref_does_not_hide_a_damaged_registry(cli, settings):
    """Only an empty production falls back to testing:latest; a damaged pointer is an error."""
    pointer = settings.registry_dir / "production" / settings.registry.model_name / "pointer.json"
    pointer.parent.mkdir(parents=True)
    pointer.write_text("{not json")
    result = cli("pipeline", "tests", "--print-model-ref")
    assert result.code == 1 and result.out == "" and "not valid JSON" in result.err


def test_the_pipeline_makes_the_home_trust_set_once_unless_keys_are_configured(settings, monkeypatch):
    from mlops.pipeline import ensure_trust
    from registry.trust import load_policy, policy_for

    out = io.StringIO()
    ensure_trust(settings, ("product-owner",), out)
    assert "created the trust policy" in out.getvalue()
    assert settings.signing_key_path == settings.keys_dir / "signing-key.pem"
    policy = policy_for(settings)
    assert policy is not None and not policy.allow_unsigned
    assert {(s.name, s.role) for s in policy.signers} == {
        ("trainer", "trainer"),
        ("tester", "tester"),
        ("product-owner", "approver"),
    }
    # The built-in suite as `mlops test-model` names it, recorded and said (a person accepts a later edit).
    from unit_testing.suites import resolve_suite

    builtin = resolve_suite(None, settings.cache_dir, 10).record()["digest"]
    assert policy.required_suites == (builtin,)
    assert f"required model test suite (the built-in one as it is now): {builtin}" in out.getvalue()
    first = settings.signing_key_path.read_bytes(), settings.trust_policy_path.read_bytes()
    ensure_trust(
        settings, ("product-owner",), out
    )  # a second run keeps the keys that signed the first versions
    assert (settings.signing_key_path.read_bytes(), settings.trust_policy_path.read_bytes()) == first
    assert load_policy(settings.trust_policy_path).signers == policy.signers
    monkeypatch.setenv("MLOPS_SIGNING_PRIVATE_KEY", "/run/secrets/elsewhere.pem")
    monkeypatch.setenv("MLOPS_HOME", str(settings.home / "other"))
    from core.settings import load_settings

    configured = load_settings()
    quiet = io.StringIO()
    ensure_trust(configured, ("product-owner",), quiet)
    assert quiet.getvalue() == "" and not configured.keys_dir.exists()


def test_deploy_stage_approves_over_the_production_the_pipeline_started_with():
    from mlops.pipeline import deploy_stages

    [promote, _] = deploy_stages("testing:4", "product-owner", production=3)
    assert promote.argv[:6] == (
        "promote",
        "testing:4",
        "--approved-by",
        "product-owner",
        "--expect-production",
        "3",
    )
    assert deploy_stages("testing:1", "po", deploy=False)[0].argv[5] == "none"
