"""Regenerate the golden images from the demo-data generator: `python -m unit_testing.golden_images`."""

from __future__ import annotations

import json
from pathlib import Path

GOLDEN_DIR = Path(__file__).parent / "golden"
SEED = 4242  # not a demo batch seed, so no golden image is ever in a demo training set
PER_CLASS = 2


def render_golden() -> dict[str, tuple[str, object]]:
    """{file name: (label, uint8 pixels)} for every golden image, deterministically."""
    import numpy as np

    from training.demo_data import CLASSES, render

    rng = np.random.default_rng(SEED)
    return {
        f"{label}_{i}.png": (label, render(label, rng, 64)) for label in CLASSES for i in range(PER_CLASS)
    }


def write_golden(out: Path = GOLDEN_DIR) -> None:
    """Write the PNGs and labels.json."""
    from PIL import Image

    from training.demo_data import CLASSES

    out.mkdir(parents=True, exist_ok=True)
    images = render_golden()
    for name, (_, pixels) in images.items():
        Image.fromarray(pixels).save(out / name)
    labels = {
        "classes": list(CLASSES),
        "source": f"training.demo_data.render(label, numpy.random.default_rng({SEED}), 64), "
        "two per class in class order",
        "labels": {name: label for name, (label, _) in images.items()},
    }
    (out / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")


if __name__ == "__main__":
    write_golden()
    print(f"wrote golden images to {GOLDEN_DIR}")
