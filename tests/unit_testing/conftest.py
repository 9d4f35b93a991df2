"""A tiny real Keras model on synthetic images, registered in the test's own registry.

The classes are image brightness levels; the model is built with fixed weights (global average
brightness → nearest class centre), so it is deterministic and accurate without training. A
"degraded" twin with zeroed weights predicts one class for everything.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from manifests import lineage

CLASSES = ["dark", "medium", "bright"]
CENTRES = [0.2, 0.5, 0.8]
IMAGE_SIZE = 32
PER_CLASS = 8


def _write_dataset(root: Path) -> list[dict[str, str]]:
    """PNG images with textured noise around each class's brightness; returns test_split entries."""
    from PIL import Image

    rng = np.random.default_rng(7)
    entries = []
    for name, centre in zip(CLASSES, CENTRES, strict=True):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            size = int(rng.integers(28, 48))  # sizes vary, as real uploads do
            pixels = centre * 255 + rng.normal(0, 25, (size, size))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            rel = f"{name}/img_{i:02d}.png"
            (root / rel).write_bytes(buffer.getvalue())
            entries.append(
                {"path": rel, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(), "label": name}
            )
    return entries


def _build_model(degraded: bool):
    import keras

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(mean)
    model = keras.Model(inputs, outputs)
    scale = 60.0  # logits a*(c*m - c²/2): argmax is the nearest centre c to the mean m
    centres = np.array(CENTRES, dtype=np.float32)
    weights = np.zeros((1, 3), np.float32) if degraded else (scale * centres)[None, :]
    bias = np.array([5.0, 0.0, 0.0], np.float32) if degraded else -scale * centres**2 / 2
    model.layers[-1].set_weights([weights, bias])
    return model


def _evaluate(model, dataset: Path, entries: list[dict[str, str]], folder: Path) -> dict[str, Any]:
    """What training records for the version, by training's own code (not a copy of it): the
    metrics on the test split, and the golden examples kept in folder/golden/."""
    from core.preprocessing import PreprocessSpec
    from core.settings import ModelTestSettings
    from training.evaluate import metrics_from_probabilities, predict_files
    from training.golden import write_golden

    files = [dataset / e["path"] for e in entries]
    labels = [e["label"] for e in entries]
    probs = predict_files(model, files, PreprocessSpec(IMAGE_SIZE, 1))
    per_class = ModelTestSettings().golden_per_class
    write_golden(folder, files, [e["path"] for e in entries], labels, probs, CLASSES, per_class)
    return metrics_from_probabilities(probs, CLASSES, labels)


def _gate(metrics: dict[str, Any]) -> dict[str, Any]:
    """The gate decision training records, from the real gate with the default thresholds."""
    from core.settings import GateSettings
    from training.gate import decide

    return decide(metrics, GateSettings(), baseline=None)


def build_version(root: Path, dataset: Path, entries: list[dict[str, str]], degraded: bool) -> Path:
    """A version folder (model.keras, test_split.json, report.html, manifest.json) ready to register."""
    model = _build_model(degraded)
    root.mkdir(parents=True)
    model.save(root / "model.keras")
    (root / "test_split.json").write_text(json.dumps(entries))
    metrics = _evaluate(model, dataset, entries, root)
    (root / "report.html").write_text(f"<html><body>accuracy {metrics['accuracy']:.3f}</body></html>")
    manifest = {
        "model_file": "model.keras",
        "classes": CLASSES,
        "preprocessing": {"image_size": IMAGE_SIZE, "channels": 1},
        "code": {"commit": "test", "repo": "tests", "build_url": None},
        "dataset": {
            "uri": str(dataset),
            "fingerprint": "tiny-brightness",
            "class_counts": {c: PER_CLASS for c in CLASSES},
            "split": {"train": 0, "val": 0, "test": len(entries)},
            "split_rule": {},
            "skipped": [],
        },
        "params": {"mode": "fixed-weights", "degraded": degraded},
        "frameworks": {},
        "metrics": metrics,
        "gate": _gate(metrics),
        "parent": None,
    }
    (root.parent / f"{root.name}.manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="session")
def tiny_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a good and a degraded version of the tiny model, built once per session."""
    base = tmp_path_factory.mktemp("tiny")
    dataset = base / "dataset"
    entries = _write_dataset(dataset)
    return {kind: build_version(base / kind, dataset, entries, kind == "bad") for kind in ("good", "bad")}


@pytest.fixture
def register_tiny(settings, tiny_versions: dict[str, Path]):
    """Register the "good" or "bad" tiny version in this test's registry; returns its pinned ref."""
    from registry import open_registry

    def run(kind: str = "good") -> str:
        folder = tiny_versions[kind]
        manifest = json.loads((folder.parent / f"{folder.name}.manifest.json").read_text())
        version = open_registry(settings).register(
            folder, lineage(**manifest), actor="pytest", reason="test fixture"
        )
        return f"testing:{version.manifest.version}"

    return run
