"""Accuracy and per-class recall on the version's own test split meet the gate config."""

from __future__ import annotations

import numpy as np


def _labels(test_split, classes):
    unknown = sorted({img.label for img in test_split} - set(classes))
    assert not unknown, f"test split has labels the model does not know: {unknown}"
    return np.array([classes.index(img.label) for img in test_split])


def test_accuracy_meets_gate(split_predictions, test_split, classes, settings, record_property):
    truth = _labels(test_split, classes)
    accuracy = float(np.mean(split_predictions.argmax(axis=1) == truth))
    record_property("accuracy", round(accuracy, 4))
    threshold = settings.gate.accuracy_threshold
    assert accuracy >= threshold, (
        f"accuracy {accuracy:.3f} < gate {threshold:.3f} on {len(truth)} test images"
    )


def test_every_class_recall_meets_floor(split_predictions, test_split, classes, settings):
    truth = _labels(test_split, classes)
    predicted = split_predictions.argmax(axis=1)
    floor = settings.gate.recall_floor
    low = {}
    for index, name in enumerate(classes):
        mask = truth == index
        if mask.any():
            recall = float(np.mean(predicted[mask] == index))
            if recall < floor:
                low[name] = round(recall, 3)
    assert not low, f"recall below floor {floor:.2f}: {low}"


def test_serving_reproduces_recorded_accuracy(split_predictions, test_split, classes, manifest):
    """Serving preprocessing equals training's: the recorded accuracy is reproduced."""
    recorded = manifest.metrics.accuracy
    assert recorded is not None, "manifest has no metrics.accuracy"
    truth = _labels(test_split, classes)
    accuracy = float(np.mean(split_predictions.argmax(axis=1) == truth))
    # One image may flip on a near-tie between batch and single evaluation order.
    assert abs(accuracy - recorded) <= 1.0 / len(truth) + 1e-9, (
        f"served accuracy {accuracy:.4f} differs from recorded {recorded:.4f}"
    )
