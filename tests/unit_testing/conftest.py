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


def _metrics(model, dataset: Path, entries: list[dict[str, str]]) -> dict[str, Any]:
    import tensorflow as tf

    from core.preprocessing import PreprocessSpec, preprocess_image

    spec = PreprocessSpec(IMAGE_SIZE, 1)
    batch = tf.stack(
        [preprocess_image(tf.constant((dataset / e["path"]).read_bytes()), spec) for e in entries]
    )
    predicted = np.asarray(model(batch, training=False)).argmax(axis=1)
    truth = np.array([CLASSES.index(e["label"]) for e in entries])
    confusion = np.zeros((3, 3), int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    per_class = {}
    for i, name in enumerate(CLASSES):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum()
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[i].sum()),
        }
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "labels": CLASSES,
    }


def _gate(metrics: dict[str, Any]) -> dict[str, Any]:
    reasons = []
    if metrics["accuracy"] < 0.8:
        reasons.append(f"accuracy {metrics['accuracy']:.3f} < 0.800")
    low = [c for c, m in metrics["per_class"].items() if m["recall"] < 0.6]
    if low:
        reasons.append(f"recall below 0.60 for {', '.join(low)}")
    return {"passed": not reasons, "reasons": reasons, "criteria": [], "baseline": None}


def build_version(root: Path, dataset: Path, entries: list[dict[str, str]], degraded: bool) -> Path:
    """A version folder (model.keras, test_split.json, report.html, manifest.json) ready to register."""
    model = _build_model(degraded)
    root.mkdir(parents=True)
    model.save(root / "model.keras")
    (root / "test_split.json").write_text(json.dumps(entries))
    metrics = _metrics(model, dataset, entries)
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
        version = open_registry(settings).register(folder, manifest, actor="pytest", reason="test fixture")
        return f"testing:{version.manifest['version']}"

    return run
