"""Live traffic of one model version in a window, read from the store's monitoring/ area, and its feedback."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.image_stats import HIST_BINS, NUMERIC_FEATURES, as_number, profile_from_columns
from monitoring.window import Window
from registry.monitoring_log import read_records
from registry.store import Store


@dataclass
class LiveTraffic:
    """The predictions of one version in a window, profiled like its reference."""

    profile: dict[str, Any]
    labels: dict[str, str]  # prediction id -> predicted label, for the ids that have feedback
    other_versions: dict[str, int] = field(default_factory=dict)  # records of other versions (skipped)


def load_predictions(
    store: Store,
    model: str,
    version: int | str,
    classes: list[str],
    window: Window,
    labelled: Container[str] = (),
) -> LiveTraffic:
    """The prediction log of VERSION in WINDOW as a profile, plus the predicted label of each LABELLED id.

    Records are reduced to columns as they stream in (8-byte numbers, not a dict per record), so a
    million of them fit in a few hundred MiB.
    """
    columns = {name: array("d") for name in NUMERIC_FEATURES}
    hists, confidences = array("d"), array("d")
    formats: list[str | None] = []
    predicted: list[str] = []
    labels: dict[str, str] = {}
    others: Counter[str] = Counter()
    wanted = str(version)
    missing = [float("nan")] * HIST_BINS
    for record in read_records(store, model, "predictions", window.since, window.until):
        if str(record.get("version")) != wanted:
            others[str(record.get("version"))] += 1
            continue
        item = record.get("input") or {}
        for name, column in columns.items():
            column.append(as_number(item.get(name)))
        hist = item.get("hist")
        hists.extend(hist if isinstance(hist, list) and len(hist) == HIST_BINS else missing)
        formats.append(item.get("format"))
        confidences.append(as_number(record.get("confidence")))
        label = str(record.get("label"))
        predicted.append(label)
        if record.get("id") in labelled:
            labels[str(record["id"])] = label
    features = {name: np.frombuffer(column, dtype=np.float64) for name, column in columns.items()}
    profile = profile_from_columns(
        features,
        formats,
        np.frombuffer(hists, dtype=np.float64),
        predicted,
        np.frombuffer(confidences),
        classes,
    )
    return LiveTraffic(profile, labels, dict(others))


def load_feedback(store: Store, model: str, window: Window, until: float) -> dict[str, str]:
    """True label per prediction id: feedback given from the window's start up to UNTIL; the latest wins.

    Labels arrive after the prediction (a radiologist reads the image later), so feedback is read
    past the window's end.
    """
    latest: dict[str, tuple[float, str]] = {}
    for record in read_records(store, model, "feedback", window.since, until):
        key, t = str(record.get("id")), float(record.get("t", 0.0))
        if key not in latest or t >= latest[key][0]:
            latest[key] = (t, str(record.get("label")))
    return {key: label for key, (_, label) in latest.items()}
