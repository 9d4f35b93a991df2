"""Train/val/test split assigned per file from a hash of its content.

Stable when data is added (a file's split depends only on its bytes), and identical images
always share a split, so no duplicate leaks from train into test. No seed: the same rule for
every version keeps version N's test set inside version N+1's.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.data import Dataset, Item

SPLITS = ("train", "val", "test")


def split_rule(val_fraction: float, test_fraction: float) -> dict:
    """The rule recorded in the manifest so a later version can check it is the same."""
    return {"method": "sha256-content", "val_fraction": val_fraction, "test_fraction": test_fraction}


def assign(sha256: str, val_fraction: float, test_fraction: float) -> str:
    """The split of one file from its content hash."""
    u = int(sha256[:16], 16) / 16**16  # uniform in [0, 1)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_dataset(dataset: Dataset, val_fraction: float, test_fraction: float) -> dict[str, list[Item]]:
    """Items per split, in dataset order."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    splits: dict[str, list[Item]] = {name: [] for name in SPLITS}
    for item in dataset.items:
        splits[assign(item.sha256, val_fraction, test_fraction)].append(item)
    return splits


def write_test_split(items: list[Item], path: Path) -> None:
    """test_split.json: the exact test images (path relative to the dataset uri, sha256, label)."""
    rows = [{"path": i.path, "sha256": i.sha256, "label": i.label} for i in items]
    path.write_text(json.dumps(rows, indent=1) + "\n")
