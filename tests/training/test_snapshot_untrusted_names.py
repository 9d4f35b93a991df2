"""A snapshot.json written by someone else: shard and file names that leave the snapshot are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.errors import EXIT_ERROR
from core.safe_paths import UnsafePath
from training.snapshot import FORMAT, META, fingerprint_of, open_snapshot
from training.sources import resolve_source


def _meta(shards: dict[str, list[dict]], items: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "source": {"kind": "folder", "uri": "/elsewhere"},
        "fingerprint": fingerprint_of(items),
        "classes": ["a", "b"],
        "preprocessing": {"image_size": 16, "channels": 1},
        "split_rule": {},
        "items": items,
        "skipped": [],
        "shards": {"train": [], "val": [], "test": [], **shards},
    }


def _escaping_shard_snapshot(tmp_path: Path) -> tuple[Path, Path]:
    """A snapshot whose only shard is `../../x.tfrecord`, a real file with the recorded sha256."""
    root = tmp_path / "snaps" / "s1"
    root.mkdir(parents=True)
    outside = tmp_path / "x.tfrecord"
    outside.write_bytes(b"not this snapshot's file")
    shard = {
        "file": "../../x.tfrecord",
        "records": 1,
        "sha256": hashlib.sha256(outside.read_bytes()).hexdigest(),
    }
    (root / META).write_text(json.dumps(_meta({"train": [shard]}, [])))
    return root, outside


def test_a_shard_named_outside_the_snapshot_is_refused(tmp_path):
    root, _ = _escaping_shard_snapshot(tmp_path)
    with pytest.raises(UnsafePath, match=r"'\.\./\.\./x\.tfrecord' is not a plain name") as caught:
        open_snapshot(resolve_source(str(root), tmp_path / "cache"), tmp_path / "cache", print)
    assert "shard of the train split" in str(caught.value)
    assert not (tmp_path / "cache").exists()  # nothing extracted


def test_a_test_file_named_outside_the_cache_is_refused_before_writing(tmp_path):
    root = tmp_path / "snap"
    root.mkdir()
    item = {"path": "../../../../evil.png", "sha256": "0" * 64, "label": "a", "split": "test"}
    (root / META).write_text(json.dumps(_meta({}, [item])))
    with pytest.raises(UnsafePath, match=r"'\.\./\.\./\.\./\.\./evil\.png' is not a safe relative name"):
        open_snapshot(resolve_source(str(root), tmp_path / "cache"), tmp_path / "cache", print)
    assert not (tmp_path / "cache").exists()


@pytest.mark.gcs
def test_mlops_train_on_a_gs_snapshot_naming_an_outside_shard_is_exit_1(fake_gcs, cli, tmp_path):
    root, outside = _escaping_shard_snapshot(tmp_path)
    bucket = fake_gcs.client().create_bucket("hostile-snapshot")
    bucket.blob(f"snap/{META}").upload_from_filename(root / META)
    bucket.blob("x.tfrecord").upload_from_filename(outside)  # beside the prefix: where ../ would reach
    result = cli("train", "--data", "gs://hostile-snapshot/snap", "--epochs", "1", "--image-size", "16")
    assert result.code == EXIT_ERROR, result.err
    assert "'../../x.tfrecord' is not a plain name" in result.err and "Traceback" not in result.err
