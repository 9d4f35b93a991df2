"""`mlops test-model`: the suite passes on a good model, exits 3 on a degraded one, records results."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from core.settings import load_settings, settings_env
from registry import open_registry
from registry.manifest import to_json
from registry.monitoring_log import read_records
from registry.policy import evidence, policy_failures
from registry.store import open_store
from unit_testing.runner import parse_junit


@pytest.mark.slow
def test_suite_passes_on_a_good_model_and_is_recorded(cli, settings, register_tiny, promote):
    register_tiny("good")  # an earlier, approved version whose golden examples the next must keep
    promote(open_registry(settings), "testing:1")
    ref = register_tiny("good")
    result = cli("test-model", ref, "--json")
    assert result.code == 0, result.err[-3000:]
    report = json.loads(result.out)
    assert report["passed"] is True and report["ref"] == ref
    assert report["summary"]["failed"] == 0 and report["summary"]["errors"] == 0
    assert report["summary"]["passed"] >= 10
    # Skips say why: no live API given. The golden checks ran, on real (non-demo) classes.
    skipped = " ".join(report["skipped"])
    assert "no --api-url given" in skipped
    assert "golden" not in skipped
    assert report["measurements"]["golden_own"] == 9  # 3 per class (model_tests.golden_per_class)
    assert report["measurements"]["golden_earlier"] == 9  # testing:1's
    assert Path(report["junit"]).is_file() and Path(report["junit"]).is_relative_to(
        settings.runs_dir.resolve()
    )

    tests = open_registry(settings).resolve(ref).manifest.annotations.tests
    assert tests[-1].passed is True and to_json(tests[-1].summary) == report["summary"]
    assert report["measurements"]["accuracy"] == 1.0
    assert 0 < report["measurements"]["latency_median_ms"] <= settings.model_tests.latency_budget_ms
    assert tests[-1].measurements == report["measurements"]
    # The policy's evidence now allows promotion, and the approval would carry the test results.
    manifest = open_registry(settings).resolve(ref).manifest
    assert policy_failures(manifest) == []
    approved = evidence(manifest, "product-owner")
    assert approved["tests"]["passed"] is True and approved["metrics"]["accuracy"] == 1.0


@pytest.mark.slow
def test_suite_exits_3_on_a_degraded_model_and_records_the_failure(
    cli, settings, register_tiny, tmp_path, promote
):
    register_tiny("good")
    promote(open_registry(settings), "testing:1")
    ref = register_tiny("bad")
    junit = tmp_path / "junit.xml"
    result = cli("test-model", ref, "--junit-xml", str(junit), "--actor", "jenkins-bot")
    assert result.code == 3, result.err[-3000:]
    assert f"model tests failed on {ref}" in result.err
    assert "FAILED" in result.out
    summary, failures, _ = parse_junit(junit)
    failed = " ".join(failures)
    assert "test_accuracy_meets_gate" in failed and "test_every_class_recall_meets_floor" in failed
    # The good testing:1 knew its golden examples; the degraded model labels most of them wrongly.
    assert "test_earlier_versions_golden_examples_keep_their_labels" in failed
    assert "test_own_golden_examples_keep_their_labels" not in failed  # it kept only what it got right
    assert summary["failed"] >= 2
    tests = open_registry(settings).resolve(ref).manifest.annotations.tests
    assert tests[-1].passed is False and tests[-1].junit == str(junit.resolve())
    assert tests[-1].actor == "jenkins-bot"


@pytest.mark.slow
def test_an_unapproved_failing_candidate_does_not_block_a_later_healthy_one(
    cli, settings, register_tiny, promote
):
    register_tiny("good")
    promote(open_registry(settings), "testing:1")
    bad = register_tiny("bad")  # never approved: its golden labels (mostly one class) judge nothing
    assert cli("test-model", bad).code == 3
    healthy = register_tiny("good")
    result = cli("test-model", healthy, "--json")
    assert result.code == 0, result.err[-3000:]
    report = json.loads(result.out)
    assert report["measurements"]["golden_earlier"] == 9  # testing:1's only: testing:2 was never approved


@pytest.mark.slow
def test_golden_examples_of_unapproved_versions_are_never_used(cli, settings, register_tiny):
    register_tiny("good")
    ref = register_tiny("good")
    result = cli("test-model", ref, "--json")
    assert result.code == 0, result.err[-3000:]
    report = json.loads(result.out)
    assert "golden_earlier" not in report["measurements"]
    assert any("never approved, so not used: testing:1" in s for s in report["skipped"])


def test_unknown_ref_is_a_one_line_error(cli, register_tiny):
    register_tiny("good")
    result = cli("test-model", "testing:99")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1 and "testing:99" in result.err


def test_api_options_are_exclusive(cli):
    result = cli("test-model", "testing:1", "--with-api", "--api-url", "http://127.0.0.1:1")
    assert result.code == 2


def test_settings_survive_the_trip_to_the_child_process(monkeypatch):
    monkeypatch.setenv("MLOPS_DEPLOY_APPROVERS", "alice,bob")
    monkeypatch.setenv("MLOPS_MODEL_TESTS_LATENCY_BUDGET_MS", "12.5")
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "secret")
    settings = load_settings()
    env = settings_env(settings)
    assert "MLOPS_NOTIFY_SMTP_PASSWORD" not in env  # secrets are not copied around
    rebuilt = load_settings(env=env)
    assert rebuilt.model_tests.latency_budget_ms == 12.5
    assert rebuilt.deploy.approvers == ("alice", "bob")
    assert rebuilt.registry_uri == settings.registry_uri
    assert rebuilt.home.resolve() == settings.home.resolve()


def test_junit_counts_and_reasons_are_read(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text(
        '<testsuites><testsuite name="s" tests="4">'
        '<testcase classname="a" name="ok"/>'
        '<testcase classname="a" name="bad">'
        '<failure message="accuracy 0.3 &lt; gate 0.8">x</failure></testcase>'
        '<testcase classname="a" name="err"><error message="boom"/></testcase>'
        '<testcase classname="a" name="skip"><skipped message="no --api-url given"/></testcase>'
        "</testsuite></testsuites>"
    )
    summary, failures, skipped = parse_junit(junit)
    assert summary == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1}
    assert failures[0] == "a::bad: accuracy 0.3 < gate 0.8"
    assert skipped == ["a::skip: no --api-url given"]


@pytest.mark.slow
def test_with_api_smoke_tests_a_live_clone_and_stops_it(cli, settings, register_tiny, monkeypatch):
    monkeypatch.setenv("MLOPS_API_WORKERS", "1")  # one gunicorn worker is enough on a 2-core box
    monkeypatch.delenv("MLOPS_TRAFFIC_TOKEN", raising=False)  # no deployment secret: the run makes its own
    ref = register_tiny("good")
    started = time.time()
    result = cli("test-model", ref, "--with-api", "--json")
    assert result.code == 0, result.err[-3000:]
    report = json.loads(result.out)
    assert report["passed"] is True and report["api_url"].startswith("http://127.0.0.1:")
    assert not [s for s in report["skipped"] if "api" in s.split(":")[0]], report["skipped"]
    assert report["summary"]["passed"] >= 15  # the HTTP smoke tests ran too
    port = int(report["api_url"].rsplit(":", 1)[1])
    with socket.socket() as sock:  # the server is gone once the suite is done
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    # Every prediction the suite made was logged as `test` traffic (the token it made for its own server),
    # none as production: read back from the prediction log itself.
    store = open_store(settings.monitor_store_uri)
    logged = list(read_records(store, "xray-classifier", "predictions", started - 1, time.time() + 1))
    assert logged and {r["traffic_class"] for r in logged} == {"test"}, logged[:3]
