"""The content-hash split: stable when data is added, no leakage of duplicates."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

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
    assert rows and [row["path"] for row in rows] == [item.path for item in test]
    for row in rows:  # each row describes the file itself: its bytes' sha256 and its class folder
        assert set(row) == {"path", "sha256", "label"}
        assert row["sha256"] == hashlib.sha256((tiny_dataset / row["path"]).read_bytes()).hexdigest()
        assert row["label"] == Path(row["path"]).parts[0]


@pytest.mark.parametrize(
    ("sha256", "expected"),
    [
        ("0" * 64, "test"),  # u = 0: the bottom of [0, test_fraction)
        ("266666" + "0" * 58, "test"),  # u = 0x266666 / 2**24 = 0.1499999 < 0.15
        ("266667" + "0" * 58, "val"),  # u = 0.1500000358 >= 0.15
        ("4ccccc" + "0" * 58, "val"),  # u = 0.2999999523 < 0.30 = test + val
        ("4ccccd" + "0" * 58, "train"),  # u = 0.3000000119 >= 0.30
        ("f" * 64, "train"),
    ],
)
def test_assign_reads_the_first_64_bits_as_a_fraction(sha256, expected):
    """The rule in the manifest's split_rule: u = first 16 hex digits / 16**16; test, then val, then train."""
    assert assign(sha256, val_fraction=0.15, test_fraction=0.15) == expected


def test_the_split_depends_on_content_only_not_on_name_or_class(tiny_dataset, tmp_path):
    """The same bytes under another name and in another class land in the same split."""
    where = _split_of(scan_folder(tiny_dataset))
    moved = tmp_path / "moved"
    shutil.copytree(tiny_dataset, moved)
    shutil.move(moved / "a" / "3.png", moved / "b" / "renamed-3.png")
    assert _split_of(scan_folder(moved))["b/renamed-3.png"] == where["a/3.png"]
