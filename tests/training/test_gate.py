"""Gate decisions: each criterion, and the production comparison."""

from __future__ import annotations

from core.settings import GateSettings
from training.evaluate import compute_metrics
from training.gate import decide, describe

GATE = GateSettings(accuracy_threshold=0.8, recall_floor=0.6, regression_tolerance=0.02)


def _metrics(accuracy: float, recalls: dict[str, float]) -> dict:
    per_class = {c: {"precision": 1.0, "recall": r, "f1": 1.0, "support": 10} for c, r in recalls.items()}
    return {"accuracy": accuracy, "per_class": per_class}


def _failed(decision: dict) -> list[str]:
    return [c["name"] for c in decision["criteria"] if not c["passed"]]


def test_passes_when_every_criterion_holds_and_production_is_empty():
    decision = decide(_metrics(0.9, {"a": 0.9, "b": 0.7}), GATE, None)
    assert decision["passed"] and decision["reasons"] == []
    assert decision["baseline"] is None
    assert [c["name"] for c in decision["criteria"]] == ["accuracy", "recall:a", "recall:b"]
    assert decision["notes"] == ["production comparison skipped: production is empty"]


def test_low_accuracy_fails():
    decision = decide(_metrics(0.79, {"a": 0.9, "b": 0.9}), GATE, None)
    assert not decision["passed"]
    assert _failed(decision) == ["accuracy"]
    assert decision["reasons"] == ["accuracy 0.790 < 0.800"]


def test_one_low_recall_fails():
    decision = decide(_metrics(0.95, {"a": 0.99, "b": 0.59}), GATE, None)
    assert _failed(decision) == ["recall:b"]
    assert "recall:b 0.590 < 0.600" in decision["reasons"]


def test_worse_than_production_beyond_tolerance_fails():
    baseline = {"ref": "production:4", "version": 4, "accuracy": 0.95}
    decision = decide(_metrics(0.92, {"a": 0.9, "b": 0.9}), GATE, baseline)
    assert _failed(decision) == ["not_worse_than_production"]
    assert "production:4" in decision["reasons"][0]
    assert decision["baseline"] == baseline


def test_slightly_worse_than_production_within_tolerance_passes():
    baseline = {"ref": "production:4", "version": 4, "accuracy": 0.95}
    decision = decide(_metrics(0.935, {"a": 0.9, "b": 0.9}), GATE, baseline)
    assert decision["passed"]
    assert decision["notes"] == []


def test_every_failure_is_listed():
    baseline = {"ref": "production:1", "version": 1, "accuracy": 0.99}
    decision = decide(_metrics(0.5, {"a": 0.1, "b": 0.9}), GATE, baseline)
    assert _failed(decision) == ["accuracy", "recall:a", "not_worse_than_production"]
    assert len(decision["reasons"]) == 3
    assert sum("FAIL" in line for line in describe(decision)) == 3


def test_compute_metrics_by_hand():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    m = compute_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == 4 / 6
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert m["per_class"]["b"]["precision"] == 0.5
    assert m["per_class"]["c"]["recall"] == 1.0
