"""The HTML report: plots written, gate, per-class numbers and lineage shown, outside strings escaped."""

from __future__ import annotations

import pytest
from html_text import by_id, find_all, parse, table_rows, text

from core.settings import GateSettings
from registry.manifest import Manifest
from training.evaluate import compute_metrics
from training.gate import decide
from training.paired import compare
from training.report import write_report

EVIL = "<script>alert(1)</script>"
HISTORY = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}


def _manifest(labels: list[str], classes: list[str]) -> dict:
    """A manifest as training writes it, from real metrics and a real gate decision."""
    metrics = compute_metrics(labels[:4], labels[4:], classes)
    # Production got every test image right: a paired comparison on the same four images.
    production = compute_metrics(labels[:4], labels[:4], classes)
    baseline = {"ref": "production:2", "version": 2, "accuracy": 1.0, "metrics": production}
    comparison = compare(labels[:4], labels[4:], labels[:4], classes, resamples=200)
    gate = decide(metrics, GateSettings(), baseline, comparison)
    return {
        "name": "xray-classifier",
        "params": {"mode": "train"},
        "metrics": metrics,
        "gate": gate,
        "dataset": {
            "uri": "gs://bucket/data",
            "fingerprint": "0123456789abcdef" + "f" * 48,
            "split": {"train": 10, "val": 2, "test": 4},
            "skipped": [{"path": "a/<bad>.png", "reason": "empty file"}],
            "source": {"kind": "git", "repo": "https://git.example/data.git", "revision": "c0ffee"},
            "validation": {"warnings": ["mean intensity moved"], "reference": "production:2"},
        },
        "code": {"commit": "abc123", "repo": None, "build_url": None},
        "parent": None,
    }


def test_report_has_plots_gate_per_class_numbers_and_lineage(tmp_path):
    # truth a a b b, predicted a b b b: a has precision 1, recall 0.5; b precision 2/3, recall 1.
    page = write_report(
        tmp_path, Manifest.from_dict(_manifest(["a", "a", "b", "b", "a", "b", "b", "b"], ["a", "b"])), HISTORY
    )
    page = page.read_text()
    doc = parse(page)
    for name in ("confusion_matrix", "training_curves", "per_class_metrics"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(img["attrs"]["src"] for img in find_all(doc, "img")) == [
        "plots/confusion_matrix.png",
        "plots/per_class_metrics.png",
        "plots/training_curves.png",
    ]
    assert text(find_all(doc, "h1")[0]) == "Model report: xray-classifier (train)"
    assert [text(h) for h in find_all(doc, "h2")] == [
        "Candidate vs production:2 on the test split",
        "Per-class metrics",
        "Subgroups",
        "Confusion matrix",
        "Training curves",
        "Lineage",
    ]
    assert text(find_all(doc, "strong")[0]) == "FAILED"
    assert "test accuracy 0.750 on 4 images" in text(find_all(doc, "p")[0])
    assert table_rows(page, "per-class") == [
        ["a", "1.000", "0.500", "0.667", "2"],
        ["b", "0.667", "1.000", "0.800", "2"],
    ]
    gate = {row[0]: row for row in table_rows(page, "gate")}
    assert gate["recall:a"][1:4] == ["0.095", "≥ 0.600", "FAIL"]  # Wilson lower bound of 1/2
    assert gate["recall:a"][4] == "0.500 [0.095, 0.905] on 2 images too few images to judge"
    # 0.75 against production's 1.0 on four images: worse, but not beyond doubt.
    assert gate["not_worse_than_production"][3] == "PASS"
    rows = {row[0]: row for row in table_rows(page, "comparison-1")}
    assert rows["accuracy"][1:4] == ["0.750", "1.000", "-0.250"]
    assert rows["recall a"][1:4] == ["0.500", "1.000", "-0.500"]
    verdicts = [text(p) for p in find_all(doc, "p") if p["attrs"].get("class") == "verdict"]
    assert verdicts[0].startswith("no evidence of regression against production:2 on the test split")
    lineage = [text(li) for li in find_all(by_id(page, "lineage"), "li")]
    assert lineage[0].startswith("dataset: gs://bucket/data (fingerprint 0123456789abcdef…")
    assert "1 file(s) skipped" in lineage[0]
    assert lineage[1] == "dataset source: git https://git.example/data.git, revision c0ffee"
    assert "against production:2's training data" in lineage[2] and "mean intensity moved" in lineage[2]
    assert "code: abc123" in lineage and "a/<bad>.png: empty file" in lineage
    assert "parent: none (trained from scratch)" in lineage


@pytest.mark.parametrize("where", ["class", "skipped", "note"])
def test_outside_strings_are_text_not_markup(tmp_path, where):
    classes = [EVIL, "b"] if where == "class" else ["a", "b"]
    a = classes[0]
    manifest = _manifest([a, a, "b", "b", a, "b", "b", "b"], classes)
    if where == "skipped":
        manifest["dataset"]["skipped"] = [{"path": EVIL, "reason": EVIL}]
    if where == "note":
        manifest["gate"]["notes"] = [EVIL]
    page = write_report(tmp_path, Manifest.from_dict(manifest), HISTORY).read_text()
    assert find_all(parse(page), "script") == []
    if where == "class":
        assert table_rows(page, "per-class")[0][0] == EVIL
    if where == "skipped":
        assert f"{EVIL}: {EVIL}" in [text(li) for li in find_all(by_id(page, "lineage"), "li")]
    if where == "note":
        assert [text(li) for li in find_all(by_id(page, "gate-notes"), "li")] == [EVIL]
