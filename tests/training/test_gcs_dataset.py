"""Datasets from gs:// through the real google-cloud-storage client against fake-gcs-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import MlopsError
from training.data import load_dataset

pytestmark = pytest.mark.gcs


def _upload(fake_gcs, bucket: str, root: Path, prefix: str) -> None:
    client = fake_gcs.client()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.bucket(bucket).blob(f"{prefix}/{path.relative_to(root).as_posix()}").upload_from_filename(
                path
            )


def test_gs_prefix_downloads_to_cache_and_checks_files(fake_gcs, tiny_dataset, tmp_path, capsys):
    (tiny_dataset / "a" / "broken.png").write_bytes(b"nope")
    (tiny_dataset / "b" / "masks").mkdir()
    (tiny_dataset / "b" / "masks" / "m.png").write_bytes((tiny_dataset / "b" / "0.png").read_bytes())
    uri = fake_gcs.new_bucket("xray-data-1")
    _upload(fake_gcs, "xray-data-1", tiny_dataset, "datasets/v1")
    local = load_dataset("gs://xray-data-1/datasets/v1", tmp_path / "cache")

    assert local.uri == f"{uri}/datasets/v1"
    assert local.classes == ["a", "b", "c"]
    assert local.class_counts == {"a": 20, "b": 20, "c": 20}
    assert local.skipped == [{"path": "a/broken.png", "reason": "content is not PNG or JPEG"}]
    assert local.root.is_relative_to(tmp_path / "cache")
    from training.data import scan_folder

    assert local.fingerprint == scan_folder(tiny_dataset).fingerprint
    assert "62 objects, 62 downloaded" in capsys.readouterr().err

    fake_gcs.client().bucket("xray-data-1").blob("datasets/v1/c/0.png").delete()
    again = load_dataset("gs://xray-data-1/datasets/v1/", tmp_path / "cache")
    assert again.uri == local.uri
    assert "61 objects, 0 downloaded" in capsys.readouterr().err  # cached files are reused
    assert again.class_counts["c"] == 19  # a deleted object leaves the cache too


def test_gs_snapshot_is_named_by_the_generations_it_read(fake_gcs, tiny_dataset, tmp_path):
    from training.sources import resolve_source

    fake_gcs.new_bucket("xray-data-gen")
    _upload(fake_gcs, "xray-data-gen", tiny_dataset, "ds")
    listed = {
        b.name.removeprefix("ds/"): b.generation
        for b in fake_gcs.client().list_blobs("xray-data-gen", prefix="ds/")
    }
    first = resolve_source("gs://xray-data-gen/ds", tmp_path / "cache")
    assert first.kind == "gcs" and first.uri == "gs://xray-data-gen/ds"
    assert first.generations == listed and len(listed) == 60
    assert first.revision.startswith("generations:")
    assert resolve_source("gs://xray-data-gen/ds/", tmp_path / "cache").revision == first.revision

    # The same bytes written again are a new generation: a different snapshot, by name.
    blob = fake_gcs.client().bucket("xray-data-gen").blob("ds/a/0.png")
    blob.upload_from_filename(tiny_dataset / "a" / "0.png")
    second = resolve_source("gs://xray-data-gen/ds", tmp_path / "cache")
    assert second.revision != first.revision
    assert second.generations["a/0.png"] != first.generations["a/0.png"]
    assert {k: v for k, v in second.generations.items() if k != "a/0.png"} == {
        k: v for k, v in first.generations.items() if k != "a/0.png"
    }


def test_missing_bucket_and_empty_prefix_are_clear_errors(fake_gcs, tmp_path):
    with pytest.raises(MlopsError, match="bucket 'no-such-bucket' does not exist"):
        load_dataset("gs://no-such-bucket/x", tmp_path)
    fake_gcs.new_bucket("xray-empty")
    with pytest.raises(MlopsError, match="no objects under this prefix"):
        load_dataset("gs://xray-empty/nothing", tmp_path)


@pytest.mark.slow
def test_train_from_gs_records_the_gs_uri(fake_gcs, cli, tmp_path, settings):
    from registry import open_registry

    demo = tmp_path / "demo"
    assert cli("demo-data", "--out", str(demo), "--per-class", "30", "--size", "32").code == 0
    fake_gcs.new_bucket("xray-data-2")
    _upload(fake_gcs, "xray-data-2", demo, "demo")
    result = cli(
        "train", "--data", "gs://xray-data-2/demo", "--epochs", "1", "--image-size", "32",
        "--accuracy-threshold", "0", "--recall-floor", "0", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out)["ref"] == "testing:1"
    manifest = open_registry(settings).resolve("testing:1").manifest.to_dict()
    assert manifest["dataset"]["uri"] == "gs://xray-data-2/demo"
    source = manifest["dataset"]["source"]
    assert source["kind"] == "gcs" and source["revision"].startswith("generations:")
    assert source["generations_file"] == "dataset_generations.json"
    local = open_registry(settings).fetch("testing:1")
    generations = json.loads((local.dir / "dataset_generations.json").read_text())
    assert len(generations) == 90 and all(isinstance(g, int) for g in generations.values())
    assert manifest["dataset"]["class_counts"] == {"covid": 30, "normal": 30, "pneumonia": 30}
