"""A version's reference profile: its held-out split as production monitoring will see live traffic.

Each test image is described exactly as the API describes an upload and as the dataset checks do
(training.dataset_stats.describe_files), and the model's predicted class and confidence are kept.
The profile is registered with the version (`reference_profile.json`, sha256 in the manifest) and
summarised in the manifest under `reference`, from which the API exports the
reference class shares and confidence as Prometheus gauges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.image_stats import build_profile, confidence, profile_to_json
from core.preprocessing import PreprocessSpec
from training.dataset_stats import describe_files

PROFILE_FILE = "reference_profile.json"


def build_reference_profile(
    model: Any,
    classes: Sequence[str],
    paths: Sequence[Path],
    spec: PreprocessSpec,
    batch_size: int = 64,
    temperature: float | None = None,
) -> dict[str, Any]:
    """The profile (JSON-ready) of MODEL on the held-out images PATHS, its probabilities calibrated
    with TEMPERATURE as the API serves them (None: as the model outputs them)."""
    from training.calibration import apply_temperature

    inputs, labels, confidences = [], [], []
    for images, described in describe_files(paths, spec, batch_size):
        probabilities = np.asarray(model(images, training=False))
        if temperature is not None:
            probabilities = apply_temperature(probabilities, temperature)
        for image, row in zip(described, probabilities, strict=True):
            inputs.append(image)
            labels.append(classes[int(np.argmax(row))])
            confidences.append(confidence(row))
    profile = profile_to_json(build_profile(inputs, labels, confidences, classes))
    return {**profile, "split": "test", "classes": list(classes)}


def summary(profile: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps of a profile (`reference`): where it is and the figures the API exports."""
    means = [v for v in profile["features"].get("mean", []) if v is not None]
    return {
        "file": PROFILE_FILE,
        "split": profile["split"],
        "n": profile["n"],
        "class_shares": {k: round(v, 5) for k, v in profile["class_shares"].items()},
        "confidence_mean": round(profile["confidence_mean"], 5) if profile["n"] else None,
        "intensity_mean": round(float(np.mean(means)), 5) if means else None,
        "formats": profile["formats"],
    }


def write_reference_profile(folder: Path, profile: dict[str, Any]) -> dict[str, Any]:
    """Write the profile beside the model (it is registered with it); return the manifest summary."""
    (folder / PROFILE_FILE).write_text(json.dumps(profile, separators=(",", ":")) + "\n")
    return summary(profile)
