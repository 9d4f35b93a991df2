"""Golden images: a few fixed pictures of the demo classes keep their expected labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def _golden() -> dict:
    return json.loads((GOLDEN_DIR / "labels.json").read_text())


def test_golden_images_keep_their_labels(served, classes):
    golden = _golden()
    if sorted(golden["classes"]) != sorted(classes):
        pytest.skip(
            f"golden images: this model's classes {classes} are not the demo classes "
            f"{golden['classes']} the golden images show, so there is no expected label to check"
        )
    names = sorted(golden["labels"])
    probs = served.predict_encoded([(GOLDEN_DIR / name).read_bytes() for name in names])
    wrong = {
        name: classes[int(row.argmax())]
        for name, row in zip(names, probs, strict=True)
        if classes[int(row.argmax())] != golden["labels"][name]
    }
    assert not wrong, f"golden images changed label (file: predicted): {wrong}"
