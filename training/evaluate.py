"""Evaluation on the test split: accuracy, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.preprocessing import PreprocessSpec


def predict_files(model, paths: Sequence[Path], spec: PreprocessSpec, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for each file, through the same input pipeline as training."""
    from training.inputs import image_dataset

    ds = image_dataset(paths, [0] * len(paths), spec, batch_size, cache=False)
    rows = [np.asarray(model(images, training=False)) for images, _ in ds]
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Metrics as stored in the manifest (docs/manifest.md `metrics`)."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    per_class = {}
    for i, label in enumerate(labels):
        tp = int(matrix[i, i])
        predicted, support = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    total = len(y_true)
    correct = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == p)
    return {
        "accuracy": correct / total if total else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(labels),
        "n": total,
    }


def metrics_from_probabilities(probs: np.ndarray, classes: Sequence[str], y_true: Sequence[str]) -> dict:
    """Metrics of predicted probabilities (columns in `classes` order) against the true labels."""
    y_pred = [classes[i] for i in probs.argmax(axis=1)] if len(probs) else []
    labels = list(classes) + sorted(set(y_true) - set(classes))
    return compute_metrics(list(y_true), y_pred, labels)


def evaluate_model(
    model, classes: Sequence[str], paths: Sequence[Path], y_true: Sequence[str], spec: PreprocessSpec
) -> dict:
    """Metrics of a model (whose outputs are `classes`) on labelled files."""
    return metrics_from_probabilities(predict_files(model, paths, spec), classes, y_true)
