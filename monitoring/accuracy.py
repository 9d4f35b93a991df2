"""Live accuracy: predictions joined with ground-truth feedback by prediction id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def live_accuracy(
    predicted: Mapping[str, str], truth: Mapping[str, str], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy and per-class recall over the predictions that have feedback.

    `unmatched` counts feedback whose id names no prediction of this version in the window (another
    version, another window, or a mistyped id).
    """
    joined = [(predicted[key], label) for key, label in truth.items() if key in predicted]
    correct = sum(1 for guess, label in joined if guess == label)
    per_class: dict[str, dict[str, Any]] = {}
    for name in classes:
        support = sum(1 for _, label in joined if label == name)
        hits = sum(1 for guess, label in joined if label == name and guess == name)
        per_class[name] = {"support": support, "recall": hits / support if support else None}
    return {
        "n": len(joined),
        "accuracy": correct / len(joined) if joined else None,
        "per_class": per_class,
        "unmatched": len(truth) - len(joined),
    }
