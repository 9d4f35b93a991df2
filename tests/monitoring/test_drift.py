"""monitoring.drift and monitoring.accuracy on synthetic profiles: what drifts, what does not."""

from __future__ import annotations

import numpy as np
import pytest
from monitor_testlib import CLASSES, inputs, predictions

from core.image_stats import build_profile
from monitoring.accuracy import live_accuracy
from monitoring.drift import compare_profiles, drifted_features


def profile(seed: int, n: int, shares=(0.3, 0.4, 0.3), confidence: float = 0.85, **shift):
    rng = np.random.default_rng(seed)
    labels, confidences = predictions(rng, n, shares, confidence)
    return build_profile(inputs(rng, n, **shift), labels, confidences, CLASSES)


REFERENCE = profile(0, 400)


def rows_by_feature(live, psi_threshold: float = 0.2, p_value: float = 0.01) -> dict:
    return {row["feature"]: row for row in compare_profiles(REFERENCE, live, psi_threshold, p_value)}


def test_fresh_traffic_from_the_same_distribution_does_not_drift():
    for seed in range(1, 6):
        rows = compare_profiles(REFERENCE, profile(seed, 300), 0.2, 0.01)
        assert drifted_features(rows) == [], rows


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        ({"mean": 0.6}, {"mean", "intensity_hist"}),
        ({"std": 0.3}, {"std"}),
        ({"width": 1024}, {"width"}),
    ],
)
def test_a_shifted_input_statistic_drifts(shift, expected):
    rows = rows_by_feature(profile(9, 300, **shift))
    drifted = {name for name, row in rows.items() if row["drifted"]}
    assert expected <= drifted, rows
    assert rows["format"]["drifted"] is False


def test_collapsed_predictions_and_lower_confidence_drift():
    rows = rows_by_feature(profile(9, 300, shares=(0.9, 0.05, 0.05), confidence=0.6))
    assert rows["class_shares"]["drifted"] and rows["class_shares"]["test"] == "chi2"
    assert rows["confidence"]["drifted"] and rows["confidence"]["test"] == "ks"
    assert rows["class_shares"]["live"]["covid"] == pytest.approx(0.9, abs=0.06)


def test_drift_needs_both_a_large_psi_and_a_significant_test():
    """Ten live images: PSI over ten bins is noisy and large, but the test is not significant."""
    tiny = rows_by_feature(profile(3, 10))
    assert max(row["psi"] for row in tiny.values() if row["test"] == "ks") >= 0.2
    assert not any(row["drifted"] for row in tiny.values())
    # The same shift on enough traffic is caught; with an impossible PSI threshold it is not.
    assert rows_by_feature(profile(3, 300, mean=0.6))["mean"]["drifted"]
    assert not rows_by_feature(profile(3, 300, mean=0.6), psi_threshold=1e9)["mean"]["drifted"]


def test_a_feature_the_live_side_lacks_is_reported_not_drifted():
    """v2 FP32 pixels have no format or original size."""
    live = profile(4, 300)
    live["features"]["width"] = np.full(300, np.nan)
    row = rows_by_feature(live)["width"]
    assert row["drifted"] is False and row["psi"] is None and row["n_live"] == 0


def test_live_accuracy_joins_feedback_by_prediction_id():
    # (predicted, true) -> count, as window_labelled.sql returns it.
    confusion = {("covid", "covid"): 1, ("normal", "covid"): 1, ("normal", "normal"): 1}
    result = live_accuracy(confusion, CLASSES, unmatched=1)
    assert result["n"] == 3 and result["unmatched"] == 1
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["per_class"]["covid"] == {"support": 2, "hits": 1, "recall": 0.5}
    assert result["per_class"]["normal"] == {"support": 1, "hits": 1, "recall": 1.0}
    assert result["per_class"]["pneumonia"] == {"support": 0, "hits": 0, "recall": None}
    assert live_accuracy({}, CLASSES)["accuracy"] is None
