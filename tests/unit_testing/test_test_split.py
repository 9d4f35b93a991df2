"""The suite reads a version's exact test split back from a local folder or a gs:// dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from registry.manifest import Manifest
from unit_testing.data import SplitError, load_test_split


def _version(tmp_path: Path, uri: str, files: dict[str, bytes]) -> tuple[Path, Manifest]:
    version_dir = tmp_path / "version"
    version_dir.mkdir()
    entries = [
        {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "label": rel.split("/")[0]}
        for rel, data in files.items()
    ]
    (version_dir / "test_split.json").write_text(json.dumps(entries))
    return version_dir, Manifest.from_dict({"version": 3, "dataset": {"uri": uri}})


FILES = {"covid/a.png": b"\x89PNG covid", "normal/b.png": b"\x89PNG normal"}


def test_local_split_is_read_and_verified(tmp_path):
    data = tmp_path / "data"
    for rel, content in FILES.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(content)
    version_dir, manifest = _version(tmp_path, f"file://{data}", FILES)
    images = load_test_split(version_dir, manifest)
    assert [(i.path, i.label, i.data) for i in images] == [
        ("covid/a.png", "covid", FILES["covid/a.png"]),
        ("normal/b.png", "normal", FILES["normal/b.png"]),
    ]
    (data / "normal/b.png").write_bytes(b"edited")
    with pytest.raises(SplitError, match=r"normal/b.png .* changed since the version was trained"):
        load_test_split(version_dir, manifest)
    (data / "normal/b.png").unlink()
    with pytest.raises(SplitError, match=r"cannot read test image normal/b.png"):
        load_test_split(version_dir, manifest)


def test_missing_split_file_is_named(tmp_path):
    (tmp_path / "v").mkdir()
    with pytest.raises(SplitError, match=r"test_split\.json is missing from version 3"):
        load_test_split(tmp_path / "v", Manifest.from_dict({"version": 3, "dataset": {"uri": "/data"}}))


@pytest.mark.gcs
def test_gcs_split_is_read_with_the_real_client(tmp_path, fake_gcs):
    uri = fake_gcs.new_bucket("xray-data") + "/datasets/v1"
    bucket = fake_gcs.client().bucket("xray-data")
    for rel, content in FILES.items():
        bucket.blob(f"datasets/v1/{rel}").upload_from_string(content)
    version_dir, manifest = _version(tmp_path, uri, FILES)
    images = load_test_split(version_dir, manifest)
    assert {i.path: i.data for i in images} == FILES
    bucket.blob("datasets/v1/covid/a.png").upload_from_string(b"replaced")
    with pytest.raises(SplitError, match="changed since"):
        load_test_split(version_dir, manifest)


def test_git_split_is_read_at_the_trained_commit_even_after_the_branch_moves(tmp_path):
    import shutil

    from gitrepos import bare_repo, commit_all, git, work_repo

    bare = bare_repo(tmp_path / "dataset.git")
    work = work_repo(tmp_path / "dataset", remote=bare)
    for rel, content in FILES.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(content)
    trained = commit_all(work, "data")
    (work / "normal/b.png").write_bytes(b"relabelled later")
    commit_all(work, "edit after training")
    git("push", "--quiet", "origin", "main", cwd=work)
    version_dir, manifest = _version(tmp_path, f"git+{bare.as_uri()}@{trained}", FILES)

    cache = tmp_path / "cache"
    assert {i.path: i.data for i in load_test_split(version_dir, manifest, cache)} == FILES
    shutil.rmtree(bare)  # the repository is gone: the commit's tree is still in the cache
    assert len(load_test_split(version_dir, manifest, cache)) == 2
    with pytest.raises(SplitError, match=r"cannot read the test split from git\+file://.*cannot fetch"):
        load_test_split(version_dir, manifest, tmp_path / "empty-cache")
