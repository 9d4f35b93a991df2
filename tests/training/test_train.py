"""mlops train end to end on tiny data: registers a complete version, or exits 3 and registers nothing."""

from __future__ import annotations

import json

import pytest

from training.data import scan_folder

pytestmark = pytest.mark.slow

FAST = ("--epochs", "1", "--image-size", "32")
NO_GATE = ("--accuracy-threshold", "0", "--recall-floor", "0")


def test_one_epoch_smoke_run_registers_a_complete_version(cli, demo, settings):
    import keras
    import numpy as np

    from registry import open_registry

    result = cli("train", "--data", str(demo), *FAST, *NO_GATE, "--json", "--actor", "tester")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["ref"] == "testing:1" and summary["version"] == 1
    assert summary["gate"]["passed"] is True
    assert summary["report"].endswith("testing/xray-classifier/1/report.html")
    assert "epoch 1/1: loss" in result.err and "val_acc" in result.err

    registry = open_registry(settings)
    local = registry.fetch("testing:1")
    m = local.manifest.to_dict()  # the JSON form: the keys readers in other languages see
    ds = scan_folder(demo)
    assert m["classes"] == ["covid", "normal", "pneumonia"]
    assert m["preprocessing"] == {"image_size": 32, "channels": 1}
    assert m["dataset"]["fingerprint"] == ds.fingerprint
    assert m["dataset"]["class_counts"] == {"covid": 30, "normal": 30, "pneumonia": 30}
    assert sum(m["dataset"]["split"].values()) == 90
    assert m["dataset"]["split_rule"]["method"] == "sha256-content"
    assert m["params"]["epochs"] == 1 and m["params"]["mode"] == "train"
    assert m["parent"] is None
    assert set(m["frameworks"]) == {"python", "tensorflow", "keras", "numpy"}
    assert set(m["code"]) == {"commit", "repo", "build_url"}
    assert m["metrics"]["labels"] == m["classes"]
    assert set(m["files"]) >= {
        "model.keras", "report.html", "test_split.json",
        "plots/confusion_matrix.png", "plots/training_curves.png", "plots/per_class_metrics.png",
    }  # fmt: skip
    rows = json.loads((local.dir / "test_split.json").read_text())
    assert len(rows) == m["dataset"]["split"]["test"] == m["metrics"]["n"]
    assert {r["sha256"] for r in rows} <= {i.sha256 for i in ds.items}
    assert "Confusion matrix" in (local.dir / "report.html").read_text()
    # Golden examples: held-out test images, stored and checksummed with the version.
    golden = json.loads((local.dir / "golden" / "golden.json").read_text())
    test_images = {r["path"]: r for r in rows}
    assert golden["classes"] == m["classes"] and golden["examples"]
    for example in golden["examples"]:
        source = test_images[example["source"]]  # from this version's own test split
        assert example["label"] == source["label"]
        assert m["files"][example["file"]]["sha256"] == source["sha256"]  # the same bytes, checksummed
    per_label = [e["label"] for e in golden["examples"]]
    assert max(per_label.count(c) for c in m["classes"]) <= settings.model_tests.golden_per_class

    model = keras.models.load_model(local.model_path)
    probs = np.asarray(model(np.zeros((2, 32, 32, 1), "float32")))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_final_line_names_the_version(cli, demo):
    result = cli("train", "--data", str(demo), *FAST, *NO_GATE)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].startswith("registered testing:1 (accuracy ")
    assert "gate passed" in result.out


def test_failed_gate_exits_3_and_registers_nothing(cli, demo, settings):
    from registry import NotFoundError, open_registry

    result = cli(
        "train", "--data", str(demo), *FAST, "--accuracy-threshold", "1.01", "--recall-floor", "0", "--json"
    )
    assert result.code == 3
    assert "gate failed: accuracy" in result.err and "nothing registered" in result.err
    assert "FAIL accuracy" in result.err
    summary = json.loads(result.out)
    assert summary["ref"] is None and summary["gate"]["passed"] is False
    assert [c["name"] for c in summary["gate"]["criteria"] if not c["passed"]] == ["accuracy"]
    assert summary["gate"]["reasons"] == [f"accuracy {summary['metrics']['accuracy']:.3f} < 1.010"]
    with pytest.raises(NotFoundError):
        open_registry(settings).resolve("testing:latest")


def test_missing_data_is_a_clear_error(cli, tmp_path):
    result = cli("train", "--data", str(tmp_path / "nope"), *FAST)
    assert result.code == 1
    assert "is not a folder" in result.err


def test_bad_option_is_a_usage_error(cli, demo):
    result = cli("train", "--data", str(demo), "--epochs", "0")
    assert result.code == 2 and "--epochs must be positive" in result.err


def test_demo_dataset_passes_the_default_gate_then_retrain_passes(cli, settings):
    """The acceptance path with default settings: demo batch 1 → train, batch 2 → retrain."""
    assert cli("demo-data").code == 0
    data = str(settings.home / "data" / "demo")
    trained = cli("train", "--data", data, "--json")
    assert trained.code == 0, trained.err
    first = json.loads(trained.out)
    assert first["gate"]["passed"] and first["metrics"]["accuracy"] >= 0.8
    assert cli("demo-data", "--batch", "2").code == 0
    retrained = cli("retrain", "--data", data, "--json")
    assert retrained.code == 0, retrained.err
    second = json.loads(retrained.out)
    assert second["ref"] == "testing:2" and second["parent"]["ref"] == "testing:1"
    assert second["metrics"]["accuracy"] >= 0.8
