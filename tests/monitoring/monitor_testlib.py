"""Helpers for the monitoring tests: synthetic records and a registered version with a reference profile."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from manifests import lineage

from core.image_stats import HIST_BINS, build_profile, profile_to_json

CLASSES = ["covid", "normal", "pneumonia"]
REFERENCE_SHARES = (0.3, 0.4, 0.3)


def inputs(
    rng: np.random.Generator, n: int, *, mean: float = 0.45, std: float = 0.2, width: int = 256
) -> list[dict]:
    """N input descriptions like the API's: intensity mean/std around the given values, one size."""
    means = np.clip(rng.normal(mean, 0.05, n), 0, 1)
    stds = np.clip(rng.normal(std, 0.02, n), 0, 1)
    out = []
    for m, s in zip(means, stds, strict=True):
        hist = rng.dirichlet(
            np.full(HIST_BINS, 5.0) + 20 * np.exp(-((np.arange(HIST_BINS) / HIST_BINS - m) ** 2) / 0.02)
        )
        out.append(
            {
                "format": "PNG",
                "width": width,
                "height": width,
                "mean": float(m),
                "std": float(s),
                "hist": hist.tolist(),
            }
        )
    return out


def predictions(rng: np.random.Generator, n: int, shares=REFERENCE_SHARES, confidence: float = 0.85):
    """N predicted labels drawn with SHARES and confidences around CONFIDENCE."""
    labels = [CLASSES[i] for i in rng.choice(len(CLASSES), n, p=shares)]
    confidences = np.clip(rng.normal(confidence, 0.06, n), 1 / len(CLASSES), 1.0).tolist()
    return labels, confidences


def reference_profile(seed: int = 0, n: int = 400) -> dict[str, Any]:
    """A reference profile as training writes it (JSON-ready)."""
    rng = np.random.default_rng(seed)
    labels, confidences = predictions(rng, n)
    profile = profile_to_json(build_profile(inputs(rng, n), labels, confidences, CLASSES))
    return {**profile, "split": "test", "classes": CLASSES}


def register_version(
    registry,
    tmp_path: Path,
    profile: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    deferral: dict[str, Any] | None = None,
) -> int:
    """Register a version whose files include the reference profile; the monitor never loads its model."""
    src = tmp_path / f"run-{time.monotonic_ns()}"
    src.mkdir()
    (src / "model.keras").write_bytes(os.urandom(256))
    (src / "reference_profile.json").write_text(json.dumps(profile))
    manifest = {
        "model_file": "model.keras",
        "classes": CLASSES,
        "preprocessing": {"image_size": 64, "channels": 1},
        "reference": {"file": "reference_profile.json", "split": "test", "n": profile["n"]},
    }
    if metrics is not None:
        manifest["metrics"] = metrics
    if deferral is not None:
        manifest["deferral"] = deferral
    return registry.register(src, lineage(**manifest), actor="tester").version


def records(
    rng: np.random.Generator,
    n: int,
    version: int,
    start: float,
    *,
    shares=REFERENCE_SHARES,
    confidence: float = 0.85,
    traffic_class: str | None = None,
    **shift: Any,
) -> list[dict[str, Any]]:
    """N prediction-log records as the API writes them, one per 10 ms from START."""
    labels, confidences = predictions(rng, n, shares, confidence)
    out = []
    for i, (item, label, conf) in enumerate(zip(inputs(rng, n, **shift), labels, confidences, strict=True)):
        out.append(
            {
                "id": f"{rng.integers(1 << 62):016x}{i:016x}",
                "t": start + i * 0.01,
                "model": "xray-classifier",
                "version": version,
                "endpoint": "predict",
                "label": label,
                "confidence": conf,
                "input": item,
                "latency_ms": 3.0,
                **({"traffic_class": traffic_class} if traffic_class else {}),
            }
        )
    return out
