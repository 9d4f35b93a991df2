"""What training hands the registry, for tests that register without training: the lineage it requires."""

from __future__ import annotations

from typing import Any


def lineage(classes: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """A manifest with every lineage field `Registry.register` requires (docs/manifest.md); OVERRIDES win."""
    classes = classes or ["normal", "covid"]
    manifest: dict[str, Any] = {
        "model_file": "model.keras",
        "classes": classes,
        "preprocessing": {"image_size": 64, "channels": 1},
        "code": {"commit": None, "repo": None, "build_url": None},
        "dataset": {
            "uri": "/data/fixture",
            "source": {"kind": "folder", "uri": "/data/fixture", "revision": None},
            "fingerprint": "0" * 64,
            "class_counts": dict.fromkeys(classes, 10),
            "split": {"train": 14, "val": 3, "test": 3},
        },
        "params": {"mode": "train"},
        "parent": None,
        "metrics": {"accuracy": 0.9},
        "gate": {"passed": True, "reasons": []},
    }
    for key, value in overrides.items():  # a part given in part keeps the other lineage fields
        both = isinstance(value, dict) and isinstance(manifest.get(key), dict) and key != "gate"
        manifest[key] = {**manifest[key], **value} if both else value
    return manifest
