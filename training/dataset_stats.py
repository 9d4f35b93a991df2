"""A dataset's image statistics: class shares, size, channels, intensity and contrast of a sample.

Recorded in the manifest at training time (`dataset.statistics`) so the next dataset pushed can be
compared with the data the production model learned from (training.data_validation). Each image is
described as the API describes an upload and as a version's reference profile does (`describe_files`:
format and size from the header, intensity statistics of the tensor the model sees, by
core.preprocessing.pixel_statistics and core.image_stats), so one description of an image serves the
dataset checks, the reference profile and the prediction log.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.dicom import as_encoded_image, is_dicom_name
from core.image_stats import describe_image
from core.preprocessing import PreprocessSpec, pixel_statistics
from training.data import Dataset, Item

_DECIMALS = 4


def header(path: Path) -> dict[str, Any]:
    """format, width, height and channel count from an image file's header (a DICOM file as the API
    renders it, its format "DICOM")."""
    source: io.BytesIO | Path
    fmt: str | None
    if is_dicom_name(path):
        source, fmt = io.BytesIO(as_encoded_image(Path(path).read_bytes())), "DICOM"
    else:
        source, fmt = path, None
    with Image.open(source) as image:  # lazy: the header only
        # A palette holds colours: count the channels it expands to, not its one band of indices.
        bands = ("RGBA" if "transparency" in image.info else "RGB") if image.mode == "P" else image.getbands()
        width, height = image.size
        return {"format": fmt or image.format, "width": width, "height": height, "channels": len(bands)}


def describe_files(
    paths: Sequence[Path], spec: PreprocessSpec, batch_size: int = 64
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Batches of preprocessed images, each with its images' descriptions (core.image_stats.describe_image
    plus the header's channel count), in the order of PATHS."""
    from training.inputs import image_dataset

    headers = [header(Path(p)) for p in paths]
    done = 0
    for images, _ in image_dataset(paths, [0] * len(paths), spec, batch_size, cache=False):
        rows = pixel_statistics(images).numpy()  # the function the API's serving graph runs
        batch = []
        for row in rows:
            head = headers[done]
            done += 1
            described = describe_image(row, fmt=head["format"], width=head["width"], height=head["height"])
            batch.append({**described, "channels": head["channels"]})
        yield images, batch


def sample(items: list[Item], size: int) -> list[Item]:
    """A stable sample: the `size` items with the smallest content hashes (no randomness to seed)."""
    return sorted(items, key=lambda item: item.sha256)[: max(size, 0)]


def _spread(values: list[float]) -> dict[str, float]:
    p05, median, p95 = np.percentile(values, [5, 50, 95]) if values else (np.nan,) * 3
    return {"median": round(float(median), 2), "p05": round(float(p05), 2), "p95": round(float(p95), 2)}


def summarize(dataset: Dataset, sample_size: int, spec: PreprocessSpec) -> dict[str, Any]:
    """The dataset's statistics as the manifest records them (class shares over every image; size,
    channels, intensity and contrast over a sample, intensities as a model with SPEC sees them)."""
    total = len(dataset.items)
    chosen = sample(dataset.items, max(sample_size, 1))  # at least one image to describe
    paths = [dataset.path_of(item) for item in chosen]
    stats = [described for _, batch in describe_files(paths, spec) for described in batch]
    channels = Counter(str(s["channels"]) for s in stats)
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
