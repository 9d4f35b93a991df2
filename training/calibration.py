"""Temperature scaling and expected calibration error.

The model outputs softmax probabilities, so the logits are recovered as log-probabilities (equal to the
logits up to a per-image constant, which softmax ignores): calibrated = softmax(log p / T). T is fitted
on the validation split by minimising the negative log-likelihood; ECE is measured on the test split.
Argmax (and so accuracy) is unchanged: T only reshapes the confidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-12  # log(0) guard; the API applies the same (model_api/bundle.py)
BINS = 10
T_RANGE = (0.05, 20.0)
DEGENERATE = "none: the validation NLL has no interior minimum (e.g. perfectly separated); T = 1 kept"
# Fewer validation images than this: no temperature is fitted (T = 1). One parameter fitted on a
# dozen images overfits (a tiny demo run fitted T = 0.17 on 12 images and doubled the test ECE).
MIN_FIT = 30
NOISE_RESAMPLES = 1000


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row-wise."""
    logits = np.log(np.clip(probabilities, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _nll(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = apply_temperature(probabilities, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, EPS, 1.0))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    """The T in T_RANGE minimising the NLL of the labelled PROBABILITIES (1.0 when there is nothing);
    None when the minimum lies on the range's edge: a validation split the model gets all right pulls
    T towards 0 without limit, and that says nothing about unseen images."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        return 1.0
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    best = minimize_scalar(
        lambda log_t: _nll(probabilities, labels, float(np.exp(log_t))), bounds=(lo, hi), method="bounded"
    )
    temperature = float(np.exp(best.x))
    if not T_RANGE[0] * 1.01 < temperature < T_RANGE[1] / 1.01:
        return None
    return temperature


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict[str, Any]]:
    """Per equal-width confidence bin: count, mean confidence and accuracy (empty bins: count 0)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for k in range(bins):
        inside = (confidence > edges[k]) & (confidence <= edges[k + 1])
        if k == 0:
            inside |= confidence == 0.0
        n = int(inside.sum())
        rows.append(
            {
                "low": float(edges[k]),
                "high": float(edges[k + 1]),
                "count": n,
                "confidence": float(confidence[inside].mean()) if n else None,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    total = len(labels)
    if total == 0:
        return 0.0
    rows = reliability(probabilities, labels, bins)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows if r["count"]) / total)


def ece_noise(probabilities: np.ndarray, confidence: float = 0.95, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these probabilities stays under with CONFIDENCE.

    Consistency resampling (Broecker & Smith 2007): draw each image's label from its own predicted
    distribution and measure the ECE. On a small test split ECE is large by chance alone; the gate
    calls a model miscalibrated only above this figure too.
    """
    if len(probabilities) == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probabilities, axis=1)
    draws = []
    for _ in range(NOISE_RESAMPLES):
        u = rng.random((len(probabilities), 1))
        labels = np.minimum((u > cumulative).sum(axis=1), probabilities.shape[1] - 1)
        draws.append(expected_calibration_error(probabilities, labels))
    return float(np.quantile(draws, confidence))


def calibrate(
    val_probabilities: np.ndarray,
    val_labels: np.ndarray,
    test_probabilities: np.ndarray,
    test_labels: np.ndarray,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Fit T on validation, measure ECE before/after on test: the manifest's `calibration` part."""
    method = "temperature_scaling"
    fitted = fit_temperature(val_probabilities, val_labels) if len(val_labels) >= MIN_FIT else 1.0
    if len(val_labels) < MIN_FIT:
        method = f"none: fewer than {MIN_FIT} validation images"
    elif fitted is None:
        method = DEGENERATE
    temperature = fitted or 1.0
    calibrated = apply_temperature(test_probabilities, temperature)
    return {
        "temperature": temperature,
        "method": method,
        "fitted_on": "validation split",
        "n": len(val_labels),
        "ece_before": expected_calibration_error(test_probabilities, test_labels),
        "ece_after": expected_calibration_error(calibrated, test_labels),
        "ece_noise": ece_noise(calibrated, confidence),
        "test_n": len(test_labels),
        "bins": BINS,
        "reliability_before": reliability(test_probabilities, test_labels),
        "reliability_after": reliability(calibrated, test_labels),
    }
