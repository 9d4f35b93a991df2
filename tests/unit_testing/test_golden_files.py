"""The stored golden images are still what the demo-data generator draws (else regenerate them)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from unit_testing.golden_images import GOLDEN_DIR, render_golden


def test_golden_images_match_the_demo_generator():
    stored = json.loads((GOLDEN_DIR / "labels.json").read_text())
    fresh = render_golden()
    assert stored["labels"] == {name: label for name, (label, _) in fresh.items()}, (
        "golden labels are stale: run `python -m unit_testing.golden_images`"
    )
    for name, (_, pixels) in fresh.items():
        on_disk = np.asarray(Image.open(GOLDEN_DIR / name))
        assert np.array_equal(on_disk, pixels), (
            f"{name} differs from the demo generator: run `python -m unit_testing.golden_images`"
        )
