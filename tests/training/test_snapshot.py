"""`mlops dataset snapshot`: sharded TFRecords of a validated dataset that train like their source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.data import scan_folder
from training.split import assign

FAST = ("--image-size", "32")
NO_GATE = ("--accuracy-threshold", "0", "--recall-floor", "0")


def _snapshot(cli, data: Path | str, out: Path | str, *args: str) -> dict:
    result = cli("dataset", "snapshot", "--data", str(data), "--out", str(out), *FAST, "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_snapshot_keeps_the_fingerprint_hashes_splits_and_preprocessed_images(cli, demo, tmp_path):
    import tensorflow as tf

    from core.preprocessing import PreprocessSpec, preprocess_image

    summary = _snapshot(cli, demo, tmp_path / "snap", "--shards", "2")
    source = scan_folder(demo)
    meta = json.loads((tmp_path / "snap" / "snapshot.json").read_text())
    assert summary["fingerprint"] == meta["fingerprint"] == source.fingerprint
    assert summary["shards"] == {"train": 2, "val": 2, "test": 2}
    assert {(i["path"], i["sha256"], i["label"]) for i in meta["items"]} == {
        (i.path, i.sha256, i.label) for i in source.items
    }
    rule = meta["split_rule"]
    assert all(
        i["split"] == assign(i["sha256"], rule["val_fraction"], rule["test_fraction"]) for i in meta["items"]
    )
    assert meta["statistics"]["images"] == 90 and meta["source"]["kind"] == "folder"
    # The stored tensor is the one preprocessing function's output for that file, bit for bit.
    shard = tmp_path / "snap" / meta["shards"]["train"][0]["file"]
    record = next(iter(tf.data.TFRecordDataset([str(shard)])))
    schema = {k: tf.io.FixedLenFeature([], tf.string) for k in ("image", "path")}
    example = tf.io.parse_single_example(record, schema)
    stored = tf.io.parse_tensor(example["image"], tf.float32).numpy()
    path = demo / example["path"].numpy().decode()
    np.testing.assert_array_equal(
        stored, preprocess_image(tf.constant(path.read_bytes()), PreprocessSpec(32, 1))
    )


def test_snapshot_refuses_a_folder_that_is_not_empty(cli, demo, tmp_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "x").write_text("x")
    result = cli("dataset", "snapshot", "--data", str(demo), "--out", str(tmp_path / "snap"))
    assert result.code == 1 and "is not empty" in result.err


@pytest.mark.slow
def test_a_snapshot_trains_exactly_like_its_source_folder(cli, demo, settings, tmp_path):
    from registry import open_registry

    _snapshot(cli, demo, tmp_path / "snap", "--shards", "2")
    runs = {}
    for name, data in (("folder", demo), ("snapshot", tmp_path / "snap")):
        result = cli("train", "--data", str(data), "--epochs", "3", *FAST, *NO_GATE, "--json")
        assert result.code == 0, result.err
        runs[name] = json.loads(result.out)
    assert runs["snapshot"]["dataset"]["fingerprint"] == runs["folder"]["dataset"]["fingerprint"]
    # Same tensors, same order, same seed: the same model, not merely a close one.
    assert runs["snapshot"]["metrics"] == runs["folder"]["metrics"]
    manifest = open_registry(settings).resolve("testing:2").manifest.to_dict()
    assert manifest["dataset"]["source"]["format"] == "tfrecord-snapshot"
    assert manifest["dataset"]["source"]["snapshot_of"]["uri"] == str(demo.resolve())
    assert manifest["dataset"]["statistics"]["images"] == 90
    golden = manifest["files"]["golden/golden.json"]  # test images came back out of the snapshot
    assert golden["size"] > 0


def test_a_tampered_shard_trains_nothing(cli, demo, settings, tmp_path):
    from registry import open_registry

    _snapshot(cli, demo, tmp_path / "snap")
    shard = next((tmp_path / "snap").glob("train-*.tfrecord"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = cli("train", "--data", str(tmp_path / "snap"), "--epochs", "1", *FAST, *NO_GATE)
    assert result.code == 1
    assert (
        f"shard {shard.name} has sha256" in result.err and "altered or damaged; nothing trained" in result.err
    )
    assert open_registry(settings).list("testing") == []


def test_a_snapshot_of_another_image_size_is_refused(cli, demo, tmp_path):
    _snapshot(cli, demo, tmp_path / "snap")
    result = cli("train", "--data", str(tmp_path / "snap"), "--epochs", "1", "--image-size", "48", *NO_GATE)
    assert result.code == 1
    assert "write a new snapshot with --image-size 48" in result.err


@pytest.mark.gcs
@pytest.mark.slow
def test_a_snapshot_on_gcs_trains_under_its_source_fingerprint(cli, demo, fake_gcs, settings):
    from registry import open_registry

    fake_gcs.new_bucket("xray-snapshots")
    summary = _snapshot(cli, demo, "gs://xray-snapshots/demo/v1", "--shards", "2")
    names = {b.name for b in fake_gcs.client().list_blobs("xray-snapshots")}
    assert "demo/v1/snapshot.json" in names and len(names) == 7
    again = cli("dataset", "snapshot", "--data", str(demo), "--out", "gs://xray-snapshots/demo/v1")
    assert again.code == 1 and "already holds objects" in again.err  # immutable
    result = cli("train", "--data", "gs://xray-snapshots/demo/v1", "--epochs", "1", *FAST, *NO_GATE, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["dataset"]["fingerprint"] == summary["fingerprint"]
    source = open_registry(settings).resolve("testing:1").manifest.to_dict()["dataset"]["source"]
    assert source["kind"] == "gcs" and source["format"] == "tfrecord-snapshot"
