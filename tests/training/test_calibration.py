"""Temperature scaling and ECE on probabilities whose true calibration is known."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import apply_temperature, calibrate, expected_calibration_error, fit_temperature


def _overconfident(n: int, true_t: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z / TRUE_T) while the 'model' says softmax(z): overconfident when T > 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, 3))
    truth = np.exp(z / true_t) / np.exp(z / true_t).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in truth])
    model = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return model, labels


def test_fitted_temperature_recovers_the_true_one():
    probs, labels = _overconfident(4000, 2.0, seed=1)
    assert fit_temperature(probs, labels) == pytest.approx(2.0, rel=0.1)


def test_ece_falls_and_probabilities_still_sum_to_one():
    val, val_labels = _overconfident(2000, 2.0, seed=2)
    test, test_labels = _overconfident(2000, 2.0, seed=3)
    result = calibrate(val, val_labels, test, test_labels)
    assert result["ece_before"] > 0.05  # overconfident by construction
    assert result["ece_after"] < result["ece_before"] / 2
    scaled = apply_temperature(test, result["temperature"])
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0, atol=1e-9)
    assert (scaled.argmax(axis=1) == test.argmax(axis=1)).all()  # accuracy unchanged


def test_ece_by_hand():
    # Two bins used: confidence 0.9 (2 images, 1 right) and 0.6 (2 images, both right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_temperature_one_changes_nothing():
    probs, _ = _overconfident(50, 1.0, seed=4)
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, atol=1e-12)


def test_too_few_validation_images_fit_nothing():
    val, val_labels = _overconfident(12, 2.0, seed=5)
    test, test_labels = _overconfident(40, 2.0, seed=6)
    result = calibrate(val, val_labels, test, test_labels)
    assert result["temperature"] == 1.0 and result["method"].startswith("none: fewer than")
    assert result["ece_after"] == pytest.approx(result["ece_before"], abs=1e-9)


def test_chance_ece_shrinks_with_more_images():
    from training.calibration import ece_noise

    small, _ = _overconfident(20, 1.0, seed=7)
    large, _ = _overconfident(2000, 1.0, seed=8)
    assert ece_noise(small) > 0.1 > 0.05 > ece_noise(large)


def test_gate_fails_miscalibration_only_beyond_chance():
    from core.settings import GateSettings
    from training.gate import decide

    metrics = {"accuracy": 0.9, "per_class": {}}
    noisy = decide(metrics, GateSettings(), None, calibration={"ece_after": 0.2, "ece_noise": 0.25})
    real = decide(metrics, GateSettings(), None, calibration={"ece_after": 0.2, "ece_noise": 0.05})
    assert noisy["passed"] and not real["passed"]
    assert real["reasons"] == ["calibration_ece 0.200 > 0.150 and above chance (0.050)"]


def test_a_perfectly_separated_validation_split_fits_no_temperature():
    from training.calibration import DEGENERATE

    val = np.array([[0.9, 0.1], [0.2, 0.8]] * 20)
    labels = np.array([0, 1] * 20)  # all right: the NLL falls as T -> 0, without a minimum
    result = calibrate(val, labels, val, labels)
    assert result["method"] == DEGENERATE and result["temperature"] == 1.0
