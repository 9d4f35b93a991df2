"""git+URL@REV sources with the real git binary: parsing, revisions to commits, read-only trees, the cache."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from gitrepos import bare_repo, commit_all, git, work_repo

from core import git_source
from core.errors import MlopsError, UsageError


@pytest.mark.parametrize(
    ("text", "url", "rev"),
    [
        ("git+file:///srv/data.git@main", "file:///srv/data.git", "main"),
        ("git+file:///srv/data.git", "file:///srv/data.git", None),
        ("git+https://github.com/org/data.git@v1.2", "https://github.com/org/data.git", "v1.2"),
        # The user in an ssh URL is not the revision: only an @ in the path starts one.
        ("git+ssh://git@github.com/org/data.git@feature/new-scans", "ssh://git@github.com/org/data.git",
         "feature/new-scans"),
        ("git+ssh://git@github.com/org/data.git", "ssh://git@github.com/org/data.git", None),
    ],
)  # fmt: skip
def test_parse_reads_urls_as_pip_writes_them(text, url, rev):
    assert git_source.parse(text) == git_source.GitSpec(url, rev)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("file:///srv/data.git@main", "git+URL@REV"),
        ("git+http://example.com/data.git@main", "unsupported git URL scheme 'http'"),
        ("git+/srv/data.git@main", "unsupported git URL scheme"),
        ("git+file:///srv/data.git@", "empty revision"),
        ("git+https://example.com/data.git@main#subdirectory=x", "no ?query or #fragment"),
        ("git+https://example.com/data.git@--upload-pack=evil", "is not a commit, tag or branch"),
        ("git+https:///data.git@main", "no repository"),
    ],
)
def test_parse_refuses_what_it_cannot_name_exactly(text, why):
    with pytest.raises(UsageError, match=re.escape(why)):
        git_source.parse(text)


def test_public_url_drops_passwords_and_tokens():
    assert git_source.public_url("https://bot:s3cret@github.com/o/r.git") == "https://github.com/o/r.git"
    assert git_source.public_url("https://ghp_token@github.com/o/r.git") == "https://github.com/o/r.git"
    assert git_source.public_url("ssh://git@github.com/o/r.git") == "ssh://git@github.com/o/r.git"
    assert git_source.public_url("file:///srv/r.git") == "file:///srv/r.git"


@pytest.fixture
def remote(tmp_path: Path) -> dict:
    """A bare repository with two commits on main (the second tagged v2) pushed from a work tree."""
    bare = bare_repo(tmp_path / "remote.git")
    work = work_repo(tmp_path / "work", remote=bare)
    (work / "a").mkdir()
    (work / "a" / "one.txt").write_text("first\n")
    first = commit_all(work, "first")
    (work / "a" / "two.txt").write_text("second\n")
    os.symlink("/etc/hostname", work / "a" / "escape.txt")  # must not reach outside the tree
    second = commit_all(work, "add two")
    git("tag", "v2", cwd=work)
    git("push", "--quiet", "origin", "main", "v2", cwd=work)
    return {"bare": bare, "work": work, "first": first, "second": second, "url": bare.as_uri()}


def test_a_branch_a_tag_and_a_short_commit_resolve_to_the_full_commit(remote, tmp_path):
    cache = tmp_path / "cache"
    for rev in ("main", "v2", remote["second"][:8], remote["second"]):
        tree = git_source.checkout(f"git+{remote['url']}@{rev}", cache)
        assert tree.commit == remote["second"]
        assert tree.uri == f"git+{remote['url']}@{remote['second']}"
        assert tree.requested == rev
    assert git_source.checkout(f"git+{remote['url']}", cache).commit == remote["second"]  # no @REV: HEAD
    old = git_source.checkout(f"git+{remote['url']}@{remote['first'][:10]}", cache)
    assert old.commit == remote["first"]
    assert sorted(p.name for p in (old.root / "a").iterdir()) == ["one.txt"]  # that commit's files only
    assert old.parents == ()
    new = git_source.checkout(f"git+{remote['url']}@main", cache)
    assert new.parents == (remote["first"],)
    assert new.subject == "add two"
    assert new.lineage()["commit"] == remote["second"] and new.lineage()["repo"] == remote["url"]


def test_the_tree_is_read_only_and_stays_inside_itself(remote, tmp_path):
    tree = git_source.checkout(f"git+{remote['url']}@main", tmp_path / "cache")
    one = tree.root / "a" / "one.txt"
    assert one.read_text() == "first\n"
    # No write bit for anyone (checked on the mode: root, which runs CI here, ignores it).
    assert one.stat().st_mode & 0o222 == 0
    escape = tree.root / "a" / "escape.txt"
    assert not escape.is_symlink() and escape.read_text() == "/etc/hostname"  # the link's text, no more
    assert not (tree.root / ".git").exists()


def test_a_branch_moves_with_a_push_and_a_commit_is_served_from_the_cache(remote, tmp_path):
    cache = tmp_path / "cache"
    assert git_source.checkout(f"git+{remote['url']}@main", cache).commit == remote["second"]
    (remote["work"] / "a" / "three.txt").write_text("third\n")
    third = commit_all(remote["work"], "three")
    git("push", "--quiet", "origin", "main", cwd=remote["work"])
    assert git_source.checkout(f"git+{remote['url']}@main", cache).commit == third  # fetched again

    shutil.rmtree(remote["bare"])  # the remote is gone: a full commit id still resolves from the cache
    again = git_source.checkout(f"git+{remote['url']}@{third}", cache)
    assert (again.root / "a" / "three.txt").read_text() == "third\n"
    with pytest.raises(MlopsError, match="cannot fetch"):
        git_source.checkout(f"git+{remote['url']}@main", cache)  # a branch needs the remote


def test_a_tampered_tree_is_checked_out_again(remote, tmp_path):
    cache = tmp_path / "cache"
    tree = git_source.checkout(f"git+{remote['url']}@{remote['second']}", cache)
    (tree.root / "a" / "stray.png").write_bytes(b"not pushed")
    again = git_source.checkout(f"git+{remote['url']}@{remote['second']}", cache)
    assert not (again.root / "a" / "stray.png").exists()


def test_unknown_revisions_and_repositories_are_clear_errors(remote, tmp_path):
    with pytest.raises(MlopsError, match="has no revision 'no-such-branch'"):
        git_source.checkout(f"git+{remote['url']}@no-such-branch", tmp_path / "cache")
    missing = (tmp_path / "nowhere.git").as_uri()
    with pytest.raises(MlopsError, match=f"cannot fetch {missing}"):
        git_source.checkout(f"git+{missing}@main", tmp_path / "cache")
    empty = bare_repo(tmp_path / "empty.git")
    with pytest.raises(MlopsError, match="has no revision 'main'"):
        git_source.checkout(f"git+{empty.as_uri()}@main", tmp_path / "cache")
    with pytest.raises(MlopsError, match=r"has no commit on its default branch \(HEAD\)"):
        git_source.checkout(f"git+{empty.as_uri()}", tmp_path / "cache")


def test_worktree_commit_names_the_commit_and_uncommitted_changes(remote, tmp_path):
    facts = git_source.worktree_commit(remote["work"])
    assert facts == {"repo": remote["url"], "commit": remote["second"], "dirty": False}
    (remote["work"] / "a" / "new.txt").write_text("not committed\n")
    assert git_source.worktree_commit(remote["work"])["dirty"] is True
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_source.worktree_commit(plain) is None


@pytest.mark.parametrize(
    "rev",
    ["../../x", "main/../../x", "a..b", "/abs", "x//y", ".hidden", "v1.lock", "x.", "nul\x00", "e\x1b[2J"],
)
def test_a_revision_that_is_no_ref_name_is_refused_before_anything_is_fetched(remote, tmp_path, rev):
    cache = tmp_path / "cache"
    with pytest.raises(UsageError, match=r"is not a commit, tag or branch name|control character") as caught:
        git_source.checkout(f"git+{remote['url']}@{rev}", cache)
    assert repr(rev) in str(caught.value) or "control character" in str(caught.value)
    assert not cache.exists()  # refused at parse time: no mirror fetched, no tree written


def test_a_weird_revision_through_mlops_train_is_a_usage_error(remote, cli, settings):
    result = cli("train", "--data", f"git+{remote['url']}@../../x", "--epochs", "1")
    assert result.code == 2, result.err
    assert "'../../x' is not a commit, tag or branch name" in result.err and "Traceback" not in result.err
    assert not (settings.cache_dir / "git").exists()
