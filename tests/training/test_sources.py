"""--data sources: a folder, a git repository at a revision (real git), each resolved once to a snapshot."""

from __future__ import annotations

import pytest
from gitrepos import bare_repo, commit_all, copy_tree, git, work_repo

from core.errors import MlopsError, UsageError
from training.data import load_dataset, scan_folder
from training.sources import generations_revision, resolve_source


def test_a_folder_has_no_revision_its_fingerprint_names_it(tiny_dataset, tmp_path):
    snapshot = resolve_source(str(tiny_dataset), tmp_path / "cache")
    assert (snapshot.kind, snapshot.revision, snapshot.root) == ("folder", None, tiny_dataset)
    assert snapshot.lineage() == {
        "kind": "folder", "uri": str(tiny_dataset.resolve()), "given": str(tiny_dataset),
        "revision": None,
    }  # fmt: skip


def test_a_git_dataset_is_the_pushed_commit_checked_out_read_only(tiny_dataset, tmp_path):
    bare = bare_repo(tmp_path / "dataset.git")
    work = work_repo(tmp_path / "dataset", remote=bare)
    copy_tree(tiny_dataset, work)
    first = commit_all(work, "20 images per class")
    (work / "a" / "0.png").unlink()
    second = commit_all(work, "drop a/0.png")
    git("push", "--quiet", "origin", "main", cwd=work)

    latest = load_dataset(f"git+{bare.as_uri()}@main", tmp_path / "cache")
    assert latest.uri == f"git+{bare.as_uri()}@{second}"  # reads the same files again, wherever
    assert latest.class_counts == {"a": 19, "b": 20, "c": 20}
    assert latest.root.is_relative_to(tmp_path / "cache")
    source = latest.source.lineage()
    assert (
        source["kind"] == "git"
        and source["revision"] == second
        and source["given"] == f"git+{bare.as_uri()}@main"
    )
    assert (
        source["repo"] == bare.as_uri()
        and source["parents"] == [first]
        and source["subject"] == "drop a/0.png"
    )

    older = load_dataset(f"git+{bare.as_uri()}@{first[:9]}", tmp_path / "cache")
    assert older.class_counts == {"a": 20, "b": 20, "c": 20}
    assert older.fingerprint == scan_folder(tiny_dataset).fingerprint  # the very files that were committed
    assert older.source.revision == first


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(UsageError, match="unsupported git URL scheme"):
        resolve_source("git+http://example.com/d.git@main", tmp_path)
    with pytest.raises(MlopsError, match="cannot fetch"):
        resolve_source(f"git+{(tmp_path / 'none.git').as_uri()}@main", tmp_path)
    with pytest.raises(UsageError, match="no dataset given"):
        resolve_source("  ", tmp_path)


def test_generations_revision_names_the_exact_objects():
    one = generations_revision({"a/1.png": 17, "b/2.png": 4})
    assert one == generations_revision({"b/2.png": 4, "a/1.png": 17})  # order does not matter
    assert one != generations_revision({"a/1.png": 18, "b/2.png": 4})  # an overwritten object does
    assert one.startswith("generations:") and len(one) == len("generations:") + 64
