"""Gate decisions: each criterion with its interval, and the paired comparison with production."""

from __future__ import annotations

import numpy as np
import pytest

from core.settings import GateSettings
from registry.manifest import Manifest
from training.evaluate import compute_metrics
from training.gate import TOO_FEW, decide, describe
from training.paired import compare

GATE = GateSettings(accuracy_threshold=0.8, recall_floor=0.6, regression_tolerance=0.02)


def _metrics(accuracy: float, recalls: dict[str, float], support: int = 50) -> dict:
    per_class = {
        c: {"precision": 1.0, "recall": r, "f1": 1.0, "support": support} for c, r in recalls.items()
    }
    return {"accuracy": accuracy, "per_class": per_class}


def _failed(decision: dict) -> list[str]:
    return [c["name"] for c in decision["criteria"] if not c["passed"]]


def _predictions(truth: list[str], wrong: set[int]) -> list[str]:
    """TRUTH with the images at the indices in WRONG given the other class."""
    return [("b" if t == "a" else "a") if i in wrong else t for i, t in enumerate(truth)]


TRUTH = ["a"] * 100 + ["b"] * 100


def test_passes_when_every_criterion_holds_and_production_is_empty():
    decision = decide(_metrics(0.9, {"a": 0.9, "b": 0.8}), GATE, None)
    assert decision["passed"] and decision["reasons"] == []
    assert decision["baseline"] is None
    assert [c["name"] for c in decision["criteria"]] == ["accuracy", "recall:a", "recall:b"]
    assert decision["notes"] == ["production comparison skipped: production is empty"]


def test_low_accuracy_fails():
    decision = decide(_metrics(0.79, {"a": 0.9, "b": 0.9}), GATE, None)
    assert not decision["passed"]
    assert _failed(decision) == ["accuracy"]
    assert decision["reasons"] == ["accuracy 0.790 < 0.800"]


def test_recall_floor_uses_the_wilson_lower_bound():
    # 0.66 on 50 images is above the 0.6 floor, but its 95 % Wilson lower bound (0.52) is not.
    decision = decide(_metrics(0.95, {"a": 0.99, "b": 0.66}), GATE, None)
    assert _failed(decision) == ["recall:b"]
    crit = next(c for c in decision["criteria"] if c["name"] == "recall:b")
    assert crit["estimate"] == 0.66 and crit["low"] < 0.6 < crit["high"] and crit["test"] == "wilson"
    assert "recall:b 0.660 on 50 images: lower bound" in decision["reasons"][0]
    # The same share on 500 images is enough evidence.
    assert decide(_metrics(0.95, {"a": 0.99, "b": 0.66}, support=500), GATE, None)["passed"]


def test_too_few_images_to_judge_fails_closed():
    decision = decide(_metrics(0.95, {"a": 1.0, "b": 1.0}, support=5), GATE, None)
    assert _failed(decision) == ["recall:a", "recall:b"]
    assert all(TOO_FEW in reason for reason in decision["reasons"])
    # Six perfect images are the fewest that can show a 0.6 floor at 95 %.
    assert decide(_metrics(0.95, {"a": 1.0, "b": 1.0}, support=6), GATE, None)["passed"]


def test_production_needs_its_paired_comparison():
    with pytest.raises(ValueError, match="paired comparison"):
        decide(_metrics(0.9, {"a": 0.9}), GATE, {"ref": "production:1", "version": 1, "accuracy": 0.9})


def _decide_against(candidate_wrong: set[int], production_wrong: set[int]) -> dict:
    candidate, production = _predictions(TRUTH, candidate_wrong), _predictions(TRUTH, production_wrong)
    metrics = compute_metrics(TRUTH, candidate, ["a", "b"])
    baseline = {
        "ref": "production:4",
        "version": 4,
        "accuracy": compute_metrics(TRUTH, production, ["a", "b"])["accuracy"],
    }
    comparison = compare(TRUTH, candidate, production, ["a", "b"], resamples=2000, seed=0)
    return decide(metrics, GATE, baseline, comparison)


def test_equal_models_with_different_errors_show_no_regression():
    decision = _decide_against(set(range(0, 200, 20)), set(range(5, 200, 20)))  # 10 errors each
    assert decision["passed"], decision["reasons"]
    assert decision["notes"][0].startswith("no evidence of regression against production:4 on the test split")
    comparison = decision["comparisons"][0]
    assert comparison["test"] == "mcnemar_exact" and comparison["p_value"] == 1.0
    assert comparison["candidate_only"] == comparison["baseline_only"] == 10
    Manifest.from_dict({"gate": decision})  # the typed manifest takes it


def test_one_class_degraded_is_a_regression_named_by_class():
    # The candidate misses 30 of class b's 100 images that production gets right.
    decision = _decide_against(set(range(100, 130)), set())
    failed = _failed(decision)
    assert (
        "not_worse_than_production:recall:b" in failed and "not_worse_than_production:recall:a" not in failed
    )
    crit = next(c for c in decision["criteria"] if c["name"] == "not_worse_than_production:recall:b")
    assert crit["estimate"] == pytest.approx(-0.30) and crit["high"] < -0.02 and crit["low"] < crit["high"]
    accuracy = next(c for c in decision["criteria"] if c["name"] == "not_worse_than_production")
    assert accuracy["p_value"] < 1e-6  # 30 discordant pairs, all one way
    assert "regression against production:4 on the test split" in decision["notes"][0]
    assert "recall -0.300, 95% CI [" in decision["notes"][0] and "on class b" in decision["notes"][0]


def test_slightly_worse_within_tolerance_passes():
    # Two more errors than production on 200 images: not evidence of a drop beyond 0.02.
    decision = _decide_against({0, 1, 2, 3}, {0, 1})
    assert decision["passed"], decision["reasons"]


def test_every_failure_is_listed():
    decision = _decide_against(set(range(0, 90)), set())
    assert {"accuracy", "recall:a", "not_worse_than_production"} <= set(_failed(decision))
    assert len(decision["reasons"]) == len(_failed(decision))
    assert sum("FAIL" in line for line in describe(decision)) == len(_failed(decision))


def test_calibration_criterion():
    passed = decide(_metrics(0.9, {"a": 0.9}), GATE, None, calibration={"ece_after": 0.05})
    failed = decide(_metrics(0.9, {"a": 0.9}), GATE, None, calibration={"ece_after": 0.2})
    assert passed["passed"] and _failed(failed) == ["calibration_ece"]
    assert failed["reasons"] == ["calibration_ece 0.200 > 0.150"]


def test_bootstrap_is_reproducible_and_seeded():
    cand, prod = _predictions(TRUTH, set(range(0, 200, 9))), _predictions(TRUTH, set(range(3, 200, 7)))
    one = compare(TRUTH, cand, prod, ["a", "b"], seed=3)
    assert one == compare(TRUTH, cand, prod, ["a", "b"], seed=3)
    assert one["accuracy"] != compare(TRUTH, cand, prod, ["a", "b"], seed=4)["accuracy"]


def test_compute_metrics_by_hand():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    m = compute_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == 4 / 6
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert m["per_class"]["b"]["precision"] == 0.5
    assert m["per_class"]["c"]["recall"] == 1.0


def test_wilson_interval_matches_the_textbook_value():
    from training.paired import wilson_interval

    # Wilson (1927) / Newcombe (1998) table: 81/263 → [0.2553, 0.3662] at 95 %.
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)


def test_mcnemar_matches_the_binomial_by_hand():
    from math import comb

    from training.paired import mcnemar

    cand = np.array([True] * 2 + [False] * 8 + [True] * 5)
    base = np.array([False] * 2 + [True] * 8 + [True] * 5)
    result = mcnemar(cand, base)
    tail = sum(comb(10, k) for k in range(0, 3)) / 2**10  # 2 of 10 discordant pairs go the candidate's way
    assert result["p_value"] == pytest.approx(2 * tail)
    assert (result["candidate_only"], result["baseline_only"]) == (2, 8)
