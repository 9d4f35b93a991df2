"""Golden examples: per class, the held-out test images a version got right most surely, kept with it.

They are written into the candidate folder (golden/), so the registry stores and checksums them with
the version's other files. The model test suite (unit_testing/test_golden.py) checks that the version
and the later ones still give these images their true labels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

GOLDEN_DIR = "golden"
INDEX = f"{GOLDEN_DIR}/golden.json"


def choose(labels: Sequence[str], probs: np.ndarray, classes: Sequence[str], per_class: int) -> list[int]:
    """Rows predicted right, up to per_class per class, surest first (ties: row order)."""
    chosen = []
    for index, name in enumerate(classes):
        right = [
            row
            for row, label in enumerate(labels)
            if label == name and len(probs[row]) and int(np.argmax(probs[row])) == index
        ]
        right.sort(key=lambda row: -float(probs[row][index]))
        chosen += right[:per_class]
    return chosen


def write_golden(
    folder: Path,
    files: Sequence[Path],
    names: Sequence[str],
    labels: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    per_class: int,
) -> int:
    """Copy the chosen test images into folder/golden/ with golden.json; how many were kept.

    files: the images on disk; names: their paths in the dataset (recorded as the source).
    """
    out = folder / GOLDEN_DIR
    out.mkdir(parents=True, exist_ok=True)
    examples = []
    for row in choose(labels, probs, classes, per_class):
        data = Path(files[row]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        stored = f"{GOLDEN_DIR}/{digest[:16]}{Path(names[row]).suffix.lower()}"
        (folder / stored).write_bytes(data)
        examples.append(
            {
                "file": stored,
                "label": labels[row],
                "source": names[row],
                "probability": round(float(probs[row][list(classes).index(labels[row])]), 6),
            }
        )
    index = {
        "classes": list(classes),
        "selection": f"per class, up to {per_class} test images predicted right, highest probability first",
        "examples": examples,
    }
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return len(examples)
