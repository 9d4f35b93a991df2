"""The content-hash split: stable when data is added, no leakage of duplicates."""

from __future__ import annotations

import json
import shutil

import pytest

from training.data import scan_folder
from training.split import assign, split_dataset, write_test_split


def _split_of(ds, fractions=(0.15, 0.15)):
    splits = split_dataset(ds, *fractions)
    return {item.path: name for name, items in splits.items() for item in items}


def test_split_is_stable_when_data_is_added(tiny_dataset, png):
    before = _split_of(scan_folder(tiny_dataset))
    for i in range(40):
        png(tiny_dataset / "b" / f"new-{i}.png", seed=70_000 + i)
    after = _split_of(scan_folder(tiny_dataset))
    assert {path: after[path] for path in before} == before
    assert len(after) == len(before) + 40


def test_identical_images_share_a_split(tiny_dataset):
    for i in range(20):  # duplicate every image of class a under another name
        shutil.copy(tiny_dataset / "a" / f"{i}.png", tiny_dataset / "a" / f"dup-{i}.png")
    where = _split_of(scan_folder(tiny_dataset))
    for i in range(20):
        assert where[f"a/{i}.png"] == where[f"a/dup-{i}.png"]


def test_fractions_are_roughly_respected():
    import hashlib

    names = [assign(hashlib.sha256(str(i).encode()).hexdigest(), 0.15, 0.15) for i in range(4000)]
    assert 0.12 < names.count("test") / 4000 < 0.18
    assert 0.12 < names.count("val") / 4000 < 0.18


def test_bad_fractions_are_rejected(tiny_dataset):
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_dataset(scan_folder(tiny_dataset), 0.5, 0.6)


def test_test_split_json(tiny_dataset, tmp_path):
    ds = scan_folder(tiny_dataset)
    test = split_dataset(ds, 0.15, 0.15)["test"]
    write_test_split(test, tmp_path / "test_split.json")
    rows = json.loads((tmp_path / "test_split.json").read_text())
    assert rows == [{"path": i.path, "sha256": i.sha256, "label": i.label} for i in test]
    assert rows and all((tiny_dataset / row["path"]).is_file() for row in rows)
