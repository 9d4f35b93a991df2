"""A dataset's image statistics: class shares, size, channels, intensity and contrast of a sample.

Recorded in the manifest at training time (`dataset.statistics`) so the next dataset pushed can be
compared with the data the production model learned from (training.data_validation). The per-image
numbers come from ONE function, `image_statistics`, so it can later be pointed at the project's
shared image-statistics module without touching the dataset summary or the comparison.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from training.data import Dataset, Item

_DECIMALS = 4


def image_statistics(path: Path) -> dict[str, float]:
    """width, height, channels, and mean / std of the pixel intensity in [0, 1] of one image file."""
    with Image.open(path) as image:
        if image.mode == "P":  # palette indices are not intensities
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        bands = image.getbands()
        pixels = np.asarray(image)
        width, height = image.size
    if pixels.dtype == np.bool_:
        values = pixels.astype(np.float32)
    elif np.issubdtype(pixels.dtype, np.integer):  # 8- and 16-bit PNGs scale by their own range
        values = pixels.astype(np.float32) / float(np.iinfo(pixels.dtype).max)
    else:
        values = np.clip(pixels.astype(np.float32), 0.0, 1.0)
    if values.ndim == 3 and "A" in bands:  # transparency is not brightness
        values = np.delete(values, bands.index("A"), axis=2)
    return {
        "width": float(width),
        "height": float(height),
        "channels": float(len(bands)),
        "mean": float(values.mean()),
        "std": float(values.std()),
    }


def sample(items: list[Item], size: int) -> list[Item]:
    """A stable sample: the `size` items with the smallest content hashes (no randomness to seed)."""
    return sorted(items, key=lambda item: item.sha256)[: max(size, 0)]


def _spread(values: list[float]) -> dict[str, float]:
    p05, median, p95 = np.percentile(values, [5, 50, 95]) if values else (np.nan,) * 3
    return {"median": round(float(median), 2), "p05": round(float(p05), 2), "p95": round(float(p95), 2)}


def summarize(dataset: Dataset, sample_size: int) -> dict[str, Any]:
    """The dataset's statistics as the manifest records them (class shares over every image)."""
    total = len(dataset.items)
    chosen = sample(dataset.items, max(sample_size, 1))  # at least one image to describe
    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes outside the GIL
        stats = list(pool.map(lambda item: image_statistics(dataset.path_of(item)), chosen))
    channels = Counter(str(int(s["channels"])) for s in stats)
    return {
        "images": total,
        "sampled": len(stats),
        "class_shares": {c: round(n / total, _DECIMALS) for c, n in dataset.class_counts.items()},
        "width": _spread([s["width"] for s in stats]),
        "height": _spread([s["height"] for s in stats]),
        "channels": {k: round(n / len(stats), _DECIMALS) for k, n in sorted(channels.items())},
        "intensity": round(float(np.mean([s["mean"] for s in stats])), _DECIMALS),
        "contrast": round(float(np.mean([s["std"] for s in stats])), _DECIMALS),
    }
