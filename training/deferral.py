"""The abstention threshold of a version: defer to a radiologist when the model is not sure enough.

Selective classification on the validation split: rank its cases by the top probability, and pick
the lowest threshold whose kept cases (top probability >= threshold) are right at least
`target_accuracy` of the time: the most coverage that reaches the target. Chosen on validation,
reported on test (the report's accuracy-vs-coverage table shows both).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from registry.manifest import CoveragePoint, Deferral

CURVE_POINTS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def kept_accuracy(
    probabilities: np.ndarray, truth: np.ndarray, threshold: float
) -> tuple[float, float | None]:
    """(coverage, accuracy of the kept cases or None when none is kept) at THRESHOLD."""
    confidence = probabilities.max(axis=1)
    kept = confidence >= threshold
    if not kept.any():
        return 0.0, None
    right = probabilities.argmax(axis=1) == truth
    return float(kept.mean()), float(right[kept].mean())


def choose_threshold(
    probabilities: np.ndarray,
    classes: Sequence[str],
    labels: Sequence[str],
    target_accuracy: float,
    split: str = "val",
) -> Deferral:
    """The Deferral for PROBABILITIES (rows in CLASSES order) against the true LABELS."""
    truth = np.array([list(classes).index(label) for label in labels], dtype=np.int64)
    n = len(truth)
    if n == 0:  # no validation split: nothing to choose on, so nothing is trusted
        return Deferral(1.0, target_accuracy, 0.0, None, 0, split, False)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    curve = tuple(CoveragePoint(t, *kept_accuracy(probabilities, truth, t)) for t in CURVE_POINTS)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == truth
    order = np.argsort(-confidence, kind="stable")
    # Kept accuracy when keeping the k most confident cases, for every k; ties keep together.
    cumulative = np.cumsum(right[order]) / np.arange(1, n + 1)
    best = None
    for k in range(n, 0, -1):
        threshold = confidence[order[k - 1]]
        if k < n and confidence[order[k]] == threshold:
            continue  # a threshold keeps every case tied with it: only whole tie groups are choices
        if cumulative[k - 1] >= target_accuracy:
            best = (float(threshold), k)
            break
    if best is None:
        return Deferral(1.0, target_accuracy, 0.0, None, n, split, False, curve)
    threshold, k = best
    return Deferral(threshold, target_accuracy, k / n, float(cumulative[k - 1]), n, split, True, curve)


def on_split(
    deferral: Deferral, probabilities: np.ndarray, classes: Sequence[str], labels: Sequence[str]
) -> Deferral:
    """DEFERRAL with the coverage and kept accuracy its threshold gives on another split (the test split)."""
    from dataclasses import replace

    if not len(labels):
        return deferral
    truth = np.array([list(classes).index(label) for label in labels], dtype=np.int64)
    threshold = deferral.threshold if deferral.reached else float("inf")
    coverage, accuracy = kept_accuracy(np.asarray(probabilities, dtype=np.float64), truth, threshold)
    return replace(deferral, test_coverage=coverage, test_accuracy_kept=accuracy)
