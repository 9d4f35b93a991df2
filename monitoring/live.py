"""Live traffic of one model version in a window, and its feedback, from the window queries.

Nothing is read record by record in Python: DuckDB answers the SQL of monitoring/sql/ with value counts,
shares and sums, from which the live profile (weighted: each distinct value with its count) is built.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.image_stats import HIST_BINS, NUMERIC_FEATURES
from monitoring.query import open_window, window_parameters
from monitoring.window import Window
from registry.store import Store


@dataclass
class LiveTraffic:
    """The predictions of one version and traffic class in a window, profiled like its reference."""

    profile: dict[str, Any]  # features: distinct values; weights: their counts
    confusion: dict[tuple[str, str], int]  # (predicted, true label) -> labelled predictions
    feedback_received: int  # distinct ids with feedback since the window's start
    unmatched: int  # feedback naming no prediction of this version and class in the window
    confidence: dict[str, float]  # n, sum and sum of squares of the confidences
    other_versions: dict[str, int] = field(default_factory=dict)  # records of other versions (skipped)
    other_classes: dict[str, int] = field(default_factory=dict)  # this version's other traffic classes
    damaged: list[str] = field(default_factory=list)  # objects left out, named
    batches: dict[str, int] = field(default_factory=dict)
    deferrals: tuple[int, int] = (0, 0)  # (predictions saying whether they deferred, those that did)


def load_window(
    store: Store,
    model: str,
    version: int | str,
    classes: list[str],
    window: Window,
    now: float,
    traffic_class: str = "production",
) -> LiveTraffic:
    """VERSION's TRAFFIC_CLASS predictions in WINDOW as a weighted profile, and their feedback until NOW."""
    tables = open_window(store, model, window.since, window.until, max(now, window.until))
    params = window_parameters(
        window.since, window.until, max(now, window.until), str(version), traffic_class
    )
    others: Counter[str] = Counter()
    other_classes: Counter[str] = Counter()
    for row_version, row_class, n in tables.run("window_counts", params):
        if str(row_version) != str(version):
            others[str(row_version)] += n
        elif row_class != traffic_class:
            other_classes[str(row_class)] += n
    values: dict[str, list[tuple[float, int]]] = {name: [] for name in (*NUMERIC_FEATURES, "confidence")}
    for feature, value, n in tables.run("window_numeric", params):
        if value is not None:
            values[feature].append((float(value), int(n)))
    formats: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    hist = np.zeros(HIST_BINS)
    n_hist = 0
    conf = {"n": 0.0, "sum": 0.0, "sq_sum": 0.0}
    for row in tables.run("window_shares", params):
        fmt, label, n, rows_with_hist, *sums = row
        formats["none" if fmt is None else str(fmt)] += n
        labels[str(label)] += n
        n_hist += rows_with_hist
        hist += np.array([s or 0.0 for s in sums[:HIST_BINS]])
        conf["n"] += sums[HIST_BINS] or 0
        conf["sum"] += sums[HIST_BINS + 1] or 0.0
        conf["sq_sum"] += sums[HIST_BINS + 2] or 0.0
    total = sum(labels.values())
    known, deferred = tables.run("window_deferrals", params)[0]
    confusion: dict[tuple[str, str], int] = {}
    received = unmatched = 0
    for predicted, truth, n in tables.run("window_labelled", params):
        received += n
        if predicted is None:
            unmatched += n
        else:
            confusion[(str(predicted), str(truth))] = int(n)
    features = {name: np.array([v for v, _ in pairs], dtype=np.float64) for name, pairs in values.items()}
    weights = {name: np.array([n for _, n in pairs], dtype=np.float64) for name, pairs in values.items()}
    names = [str(c) for c in classes] + sorted(k for k in labels if k not in set(classes))
    profile = {
        "n": total,
        "features": features,
        "weights": weights,
        "formats": {k: v / total for k, v in sorted(formats.items())} if total else {},
        "intensity_hist": hist / n_hist if n_hist else np.zeros(HIST_BINS),
        "class_shares": {k: (labels.get(k, 0) / total if total else 0.0) for k in names},
        "confidence_mean": conf["sum"] / conf["n"] if conf["n"] else None,
    }
    tables.connection.close()
    return LiveTraffic(
        profile,
        confusion,
        received,
        unmatched,
        conf,
        dict(others),
        dict(other_classes),
        tables.damaged,
        tables.batches,
        (int(known or 0), int(deferred or 0)),
    )
