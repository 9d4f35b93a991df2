"""The HTML report: plots written, gate and skipped files shown."""

from __future__ import annotations

from core.settings import GateSettings
from registry.manifest import Manifest
from training.evaluate import compute_metrics
from training.gate import decide
from training.report import write_report


def test_report_has_plots_gate_and_skipped_files(tmp_path):
    metrics = compute_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    gate = decide(metrics, GateSettings(), {"ref": "production:2", "version": 2, "accuracy": 0.9})
    manifest = {
        "name": "xray-classifier",
        "params": {"mode": "train"},
        "metrics": metrics,
        "gate": gate,
        "dataset": {
            "uri": "gs://bucket/data",
            "fingerprint": "f" * 64,
            "split": {"train": 10, "val": 2, "test": 4},
            "skipped": [{"path": "a/<bad>.png", "reason": "empty file"}],
        },
        "code": {"commit": "abc123", "repo": None, "build_url": None},
        "parent": None,
    }
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    page = write_report(tmp_path, Manifest.from_dict(manifest), history).read_text()
    for name in ("confusion_matrix", "training_curves", "per_class_metrics"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes().startswith(b"\x89PNG")
        assert f'src="plots/{name}.png"' in page
    assert "FAILED" in page and "recall:a" in page and "not_worse_than_production" in page
    assert "a/&lt;bad&gt;.png: empty file" in page  # escaped, listed
    assert "abc123" in page and "gs://bucket/data" in page
