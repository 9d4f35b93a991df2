"""Live accuracy: predictions joined with ground-truth feedback by prediction id, tested against the
version's own held-out figures.

The gate's floor (`monitor.min_accuracy`) catches a collapse; a version that scored 0.99 on its held-out
split and now scores 0.88 live is above that floor yet clearly worse. So live accuracy (and each class's
recall) is also tested against the held-out figure with a one-sided exact binomial test:
H0: the live rate is at least the held-out rate minus `monitor.accuracy_tolerance`; an alert when
p < `monitor.alpha` (per class: alpha divided by the number of classes, Bonferroni). The Wilson
interval is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def wilson(successes: int, n: int, alpha: float) -> tuple[float, float] | None:
    """Two-sided (1 - alpha) Wilson score interval of a proportion (None without trials)."""
    from scipy.stats import norm

    if n == 0:
        return None
    z = float(norm.ppf(1 - alpha / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def below(successes: int, n: int, expected: float) -> float:
    """One-sided exact binomial p-value of seeing SUCCESSES or fewer of N when the rate is EXPECTED."""
    from scipy.stats import binom

    return float(binom.cdf(successes, n, min(max(expected, 0.0), 1.0))) if n else 1.0


def labels_needed(expected: float, drop: float, alpha: float, power: float = 0.8) -> int | None:
    """Labelled predictions needed to detect a live rate DROP below EXPECTED (normal approximation)."""
    from scipy.stats import norm

    worse = expected - drop
    if drop <= 0 or worse <= 0:
        return None
    z_a, z_b = float(norm.ppf(1 - alpha)), float(norm.ppf(power))
    p0 = min(expected, 1 - 1e-6)
    root = z_a * math.sqrt(p0 * (1 - p0)) + z_b * math.sqrt(worse * (1 - worse))
    return math.ceil((root / drop) ** 2)


def live_accuracy(
    confusion: Mapping[tuple[str, str], int], classes: Sequence[str], unmatched: int = 0
) -> dict[str, Any]:
    """Accuracy and per-class recall over the labelled predictions ((predicted, true) -> count)."""
    n = sum(confusion.values())
    correct = sum(count for (guess, label), count in confusion.items() if guess == label)
    per_class: dict[str, dict[str, Any]] = {}
    for name in classes:
        support = sum(count for (_, label), count in confusion.items() if label == name)
        hits = confusion.get((name, name), 0)
        per_class[name] = {"support": support, "hits": hits, "recall": hits / support if support else None}
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "per_class": per_class,
        "unmatched": unmatched,
    }


def against_reference(
    accuracy: Mapping[str, Any],
    reference: Mapping[str, Any],
    *,
    alpha: float,
    tolerance: float,
    detect_drop: float,
    min_class_feedback: int,
) -> dict[str, Any]:
    """Test live accuracy and per-class recall against the version's held-out figures.

    REFERENCE: {"accuracy": float | None, "recall": {class: float}} from the version's manifest.
    """
    held_out = reference.get("accuracy")
    out: dict[str, Any] = {"held_out_accuracy": held_out, "tolerance": tolerance, "alpha": alpha}
    n = int(accuracy["n"])
    out["interval"] = wilson(int(accuracy["correct"]), n, alpha)
    if not isinstance(held_out, int | float):
        return {**out, "judged": False, "note": "the version records no held-out accuracy", "classes": {}}
    out["p_value"] = below(int(accuracy["correct"]), n, held_out - tolerance)
    out["labels_needed"] = labels_needed(held_out - tolerance, detect_drop, alpha)
    out["judged"] = n > 0
    out["below"] = n > 0 and out["p_value"] < alpha
    recalls = reference.get("recall") or {}
    per_alpha = alpha / max(len(recalls), 1)
    classes: dict[str, Any] = {}
    for name, row in accuracy["per_class"].items():
        expected = recalls.get(name)
        if not isinstance(expected, int | float) or row["support"] < min_class_feedback:
            continue
        p = below(int(row["hits"]), int(row["support"]), expected - tolerance)
        classes[name] = {
            "held_out_recall": expected,
            "p_value": p,
            "interval": wilson(int(row["hits"]), int(row["support"]), per_alpha),
            "below": p < per_alpha,
        }
    out["classes"] = classes
    return out
