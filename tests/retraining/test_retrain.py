"""mlops retrain: parent recorded, unchanged data skipped, production baseline on the same split."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

FAST = ("--epochs", "1")
NO_GATE = ("--accuracy-threshold", "0", "--recall-floor", "0")


def test_nothing_to_retrain_is_a_clear_error(cli, demo):
    result = cli("retrain", "--data", str(demo))
    assert result.code == 1
    assert "nothing to retrain" in result.err and "mlops train" in result.err


def test_retrain_records_parent_and_skips_unchanged_data(cli, demo, settings, monkeypatch):
    from registry import open_registry

    assert cli("train", "--data", str(demo), "--image-size", "32", *FAST, *NO_GATE).code == 0
    same = cli("retrain", "--data", str(demo))
    assert same.code == 0
    assert "data unchanged since testing:1" in same.out
    registry = open_registry(settings)
    assert [v.version for v in registry.list()] == [1]

    assert cli("demo-data", "--out", str(demo), "--batch", "2", "--per-class", "10", "--size", "32").code == 0
    result = cli("retrain", "--data", str(demo), *FAST, *NO_GATE, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["ref"] == "testing:2"
    manifest = registry.resolve("testing:2").manifest.to_dict()
    assert manifest["parent"] == {"ref": "testing:1", "version": 1, "area": "testing"}
    assert manifest["params"]["mode"] == "retrain" and manifest["params"]["fine_tune_epochs"] == 1
    assert manifest["preprocessing"] == {"image_size": 32, "channels": 1}  # the parent's input shape
    assert manifest["dataset"]["class_counts"] == {"covid": 40, "normal": 40, "pneumonia": 40}

    monkeypatch.setenv("MLOPS_TRAIN_TEST_FRACTION", "0.2")
    forced = cli("retrain", "--data", str(demo), *FAST, *NO_GATE, "--force")
    assert forced.code == 0, forced.err
    assert "registered testing:3" in forced.out
    assert "warning: split rule changed since testing:2" in forced.err


def test_retrain_prefers_production_and_compares_on_the_same_split(cli, demo, settings, promote):
    from registry import open_registry

    assert cli("train", "--data", str(demo), "--image-size", "32", *FAST, *NO_GATE).code == 0
    assert cli("train", "--data", str(demo), "--image-size", "32", *FAST, *NO_GATE).code == 0
    registry = open_registry(settings)
    promote(registry, "testing:1", actor="tester", reason="test")
    assert cli("demo-data", "--out", str(demo), "--batch", "2", "--per-class", "10", "--size", "32").code == 0
    result = cli("retrain", "--data", str(demo), *FAST, *NO_GATE, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["parent"]["ref"] == "production:1"
    baseline = summary["gate"]["baseline"]
    assert baseline["ref"] == "production:1" and 0.0 <= baseline["accuracy"] <= 1.0
    # production's full metrics on the candidate's split: what `mlops ui` compares side by side
    assert baseline["metrics"]["accuracy"] == baseline["accuracy"]
    assert baseline["metrics"]["n"] == sum(map(sum, baseline["metrics"]["confusion_matrix"]))
    names = [c["name"] for c in summary["gate"]["criteria"]]
    assert "not_worse_than_production" in names
    assert "on the same test split" in result.err


def test_retrain_gate_fails_against_a_much_better_production(cli, demo, settings, monkeypatch, promote):
    from registry import open_registry

    assert cli("train", "--data", str(demo), "--image-size", "32", *FAST, *NO_GATE).code == 0
    promote(open_registry(settings), "testing:1", actor="tester")
    monkeypatch.setenv("MLOPS_GATE_REGRESSION_TOLERANCE", "-1.5")  # candidate must beat production by 1.5
    result = cli("retrain", "--data", str(demo), "--force", *FAST, *NO_GATE)
    assert result.code == 3
    assert "worse than production (production:1)" in result.err
    assert [v.version for v in open_registry(settings).list()] == [1]
