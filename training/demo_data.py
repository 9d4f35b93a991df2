"""A small synthetic chest-X-ray-like dataset, so the whole system runs with no download.

Three classes with visually separable but noisy patterns inside two dark "lung" fields:
normal (clear lungs), pneumonia (one or two large bright consolidations in one lung) and
covid (many small bilateral peripheral opacities). Deterministic from a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("covid", "normal", "pneumonia")
# Batch 2 simulates a data push: same classes, new images from a different seed. Batch 3 is the
# locked reference set's (training/reference_set.py): never pushed, so no training data shares it.
BATCH_SEEDS = {1: 20_241, 2: 90_417, 3: 31_337}
REFERENCE_BATCH = 3


def _chest(rng: np.random.Generator, size: int) -> np.ndarray:
    """A bright thorax with two darker lung ellipses, slightly shifted and scaled per image."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = 0.75 - 0.6 * (x - 0.5) ** 2 + 0.0 * y
    cy = 0.5 + rng.uniform(-0.04, 0.04)
    for side in (-1, 1):
        cx = 0.5 + side * (0.2 + rng.uniform(-0.03, 0.03))
        ry, rx = 0.3 + rng.uniform(-0.03, 0.03), 0.13 + rng.uniform(-0.02, 0.02)
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
        img = np.where(inside, img - 0.45, img)
    return img


def _blob(size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2)))


def render(label: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One uint8 grayscale image of the given class."""
    img = _chest(rng, size)
    if label == "pneumonia":
        side = rng.choice([-1, 1])
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.uniform(0.4, 0.7), 0.5 + side * rng.uniform(0.15, 0.25)
            img += 0.5 * _blob(size, cy, cx, rng.uniform(0.07, 0.1))
    elif label == "covid":
        for _ in range(rng.integers(6, 10)):
            side = rng.choice([-1, 1])
            cy, cx = rng.uniform(0.45, 0.8), 0.5 + side * rng.uniform(0.27, 0.33)
            img += 0.35 * _blob(size, cy, cx, rng.uniform(0.025, 0.04))
    img = img * rng.uniform(0.85, 1.15) + rng.uniform(-0.08, 0.08)  # exposure differences
    img += rng.normal(0.0, 0.06, img.shape)  # sensor noise
    return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def write_demo_data(out: Path, batch: int = 1, per_class: int = 150, size: int = 64) -> dict[str, int]:
    """Write PNGs under out/<class>/; batch 2 adds new files beside batch 1's. Returns counts."""
    if batch not in BATCH_SEEDS:
        raise ValueError(f"batch must be one of {sorted(BATCH_SEEDS)}")
    rng = np.random.default_rng(BATCH_SEEDS[batch])
    counts: dict[str, int] = {}
    for label in CLASSES:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(render(label, rng, size)).save(folder / f"b{batch}_{i:04d}.png")
        counts[label] = per_class
    return counts
