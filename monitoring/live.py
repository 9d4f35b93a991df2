"""Live traffic of one model version in a window, read from the store's monitoring/ area, and its feedback."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlops.image_stats import build_profile
from monitoring.window import Window
from registry.monitoring_log import read_records
from registry.store import Store


@dataclass
class LiveTraffic:
    """The predictions of one version in a window, profiled like its reference."""

    profile: dict[str, Any]
    labels: dict[str, str]  # prediction id -> predicted label
    other_versions: dict[str, int] = field(default_factory=dict)  # records of other versions (skipped)


def load_predictions(
    store: Store, model: str, version: int | str, classes: list[str], window: Window
) -> LiveTraffic:
    """The prediction log of VERSION in WINDOW, as a profile plus the predicted label of each id."""
    inputs: list[dict[str, Any]] = []
    confidences: list[float] = []
    predicted: list[str] = []
    labels: dict[str, str] = {}
    others: Counter[str] = Counter()
    for record in read_records(store, model, "predictions", window.since, window.until):
        if str(record.get("version")) != str(version):
            others[str(record.get("version"))] += 1
            continue
        inputs.append(record.get("input") or {})
        confidences.append(float(record.get("confidence", float("nan"))))
        predicted.append(str(record.get("label")))
        labels[str(record.get("id"))] = predicted[-1]
    profile = build_profile(inputs, predicted, confidences, classes)
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
