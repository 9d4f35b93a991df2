"""demo-data: deterministic, separable classes, batch 2 adds new images."""

from __future__ import annotations

import hashlib

import numpy as np

from training.data import scan_folder
from training.demo_data import CLASSES, render


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_cli_writes_class_folders_deterministically(cli, tmp_path):
    result = cli("demo-data", "--out", str(tmp_path / "one"), "--per-class", "5", "--size", "32")
    assert result.code == 0, result.err
    assert "wrote 15 images" in result.out
    assert cli("demo-data", "--out", str(tmp_path / "two"), "--per-class", "5", "--size", "32").code == 0
    assert _hashes(tmp_path / "one") == _hashes(tmp_path / "two")
    ds = scan_folder(tmp_path / "one")
    assert ds.classes == sorted(CLASSES) and ds.skipped == []


def test_batch_two_adds_new_images(cli, settings):
    assert cli("demo-data", "--per-class", "4", "--size", "32").code == 0
    out = settings.home / "data" / "demo"
    before = _hashes(out)
    result = cli("demo-data", "--batch", "2", "--per-class", "4", "--size", "32", "--json")
    assert result.code == 0
    after = _hashes(out)
    assert len(after) == 24 and set(before.items()) <= set(after.items())
    assert len(set(after.values())) == 24  # no duplicate content between batches


def test_classes_differ_in_their_pattern():
    """Mean brightness inside the lungs differs by class far more than within a class."""
    rng = np.random.default_rng(0)
    lungs = {c: [render(c, rng)[20:50, 10:54].mean() for _ in range(30)] for c in CLASSES}
    assert np.mean(lungs["pneumonia"]) > np.mean(lungs["normal"]) + 3
    assert np.mean(lungs["covid"]) > np.mean(lungs["normal"]) + 1


def test_bad_options_are_usage_errors(cli):
    assert cli("demo-data", "--batch", "4").code == 2  # 1, 2 pushed batches; 3 the reference set
    result = cli("demo-data", "--per-class", "1")
    assert result.code == 2 and "--per-class" in result.err
