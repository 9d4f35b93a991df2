"""core.safe_paths: hostile names never write or delete outside their root (Hypothesis, files, real GCS)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.errors import MlopsError
from core.safe_paths import (
    MAX_NAME_BYTES,
    MAX_SEGMENT_BYTES,
    UnsafePath,
    check_name,
    check_plain_name,
    remove_files_except,
    safe_join,
)

# Segments an attacker would try, mixed with ordinary ones and arbitrary text (unicode, controls).
HOSTILE = st.sampled_from(
    ["..", ".", "", "a", "b.png", "covid", "link", "\\..", "..\\x", "x\x00y", "nl\n", "\u2028", "é", "\x85",
     "~", "...", "..a", " ", "a" * 300, "\udcff"]
)  # fmt: skip
SEGMENT = st.one_of(HOSTILE, st.text(max_size=12), st.text(alphabet="./\\", max_size=6))
NAMES = st.one_of(
    st.lists(SEGMENT, min_size=1, max_size=8).map("/".join),
    st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=40),
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_runs = itertools.count()


def _listing(root: Path) -> dict[str, bytes | str]:
    """Every entry under root (symlinks listed, not followed) with its bytes or link target."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = "->" + os.readlink(path)
            elif path.is_file():
                found[rel] = path.read_bytes()
            else:
                found[rel] = "dir"
    return found


def _arena(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh root with symlinks out to a sentinel folder beside it (which holds a file)."""
    base = tmp_path / f"run{next(_runs)}"
    root, sentinel = base / "root", base / "sentinel"
    (root / "covid").mkdir(parents=True)
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("sentinel")
    (root / "link").symlink_to(sentinel, target_is_directory=True)
    (root / "covid" / "out.png").symlink_to(sentinel / "keep.txt")
    return root, sentinel


@pytest.mark.parametrize(
    "name",
    ["..", "../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a", "a\\b", "a\x00b", "a\nb", "a\u2028b",
     "a\x85b", "a\x7fb", "", "x" * (MAX_SEGMENT_BYTES + 1), "a/" * (MAX_NAME_BYTES // 2) + "a", "\udcff"],
)  # fmt: skip
def test_hostile_names_are_refused_with_the_name_in_the_message(name):
    with pytest.raises(UnsafePath) as caught:
        check_name(name, "object gs://b/" + name)
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize("name", ["a", "covid/images/0001.png", "é/ü.png", "..a/b", "a..b", "x" * 255, "a b"])
def test_ordinary_names_pass(name):
    assert check_name(name, "t") == name


@pytest.mark.parametrize("name", ["..evil", ".git", "a/b", "a\\b", "x\ty", "", ".."])
def test_plain_names_refuse_hidden_nested_and_control(name):
    with pytest.raises(UnsafePath, match="is not a plain name"):
        check_plain_name(name, "class folder")


def test_a_symlink_inside_the_root_cannot_carry_a_name_out(tmp_path):
    root, _sentinel = _arena(tmp_path)
    with pytest.raises(UnsafePath, match="through a symbolic link"):
        safe_join(root, "link/new.png", "object")
    with pytest.raises(UnsafePath, match="through a symbolic link"):
        safe_join(root, "covid/out.png", "object")
    assert safe_join(root, "covid/new.png", "object") == root / "covid" / "new.png"


@FUZZ
@given(name=NAMES)
def test_writing_through_safe_join_never_lands_outside(tmp_path, name):
    root, sentinel = _arena(tmp_path)
    before = _listing(sentinel), _listing(root.parent)
    try:
        path = safe_join(root, name, "fuzz")
    except UnsafePath:
        assert _listing(root.parent) == before[1]  # refused: nothing anywhere changed
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        return  # a name of an existing folder: nothing to write
    path.write_bytes(b"written")
    assert os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)
    assert _listing(sentinel) == before[0]


@FUZZ
@given(keep=st.lists(NAMES, max_size=6), extra=st.lists(st.sampled_from(["a.png", "covid/b.png", "x/y/z"])))
def test_cleanup_only_ever_deletes_inside_its_root(tmp_path, keep, extra):
    root, sentinel = _arena(tmp_path)
    for rel in extra:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    outside_before = _listing(root.parent / "sentinel")
    removed = remove_files_except(root, keep, within=root.parent)
    assert _listing(sentinel) == outside_before  # the links' targets survive; only links went
    assert all(not (root / rel).is_symlink() and not (root / rel).exists() for rel in removed)
    assert set(removed) <= {"link", "covid/out.png", *extra}


def test_cleanup_refuses_a_root_outside_its_bound(tmp_path):
    root, sentinel = _arena(tmp_path)
    with pytest.raises(UnsafePath, match="refusing to delete"):
        remove_files_except(root / "link", [], within=root)
    assert (sentinel / "keep.txt").read_text() == "sentinel"


@pytest.fixture(scope="module")
def fuzz_bucket(fake_gcs):
    """One bucket for every example; each example writes under its own prefix."""
    return fake_gcs.client().create_bucket("safe-paths-fuzz")


@pytest.mark.gcs
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=1, max_size=3))
def test_downloading_hostile_object_names_never_touches_outside_the_cache(fuzz_bucket, tmp_path, names):
    """The real download (client + fake-gcs-server): a bad name refuses all, and nothing leaves the cache."""
    from training.gcs import download_prefix

    run = next(_runs)
    bucket = fuzz_bucket
    stored = []
    for name in names:
        try:
            bucket.blob(f"run{run}/data/{name}").upload_from_string(b"payload")
        except Exception:  # the emulator refuses some names (e.g. over its own length limit)
            continue
        stored.append(name)
    assume(stored)
    base = tmp_path / f"gcs{run}"
    cache, sentinel = base / "a" / "b" / "cache", base / "sentinel"
    (cache / "gcs" / bucket.name / f"run{run}" / "data" / "covid").mkdir(parents=True)
    (cache / "gcs" / bucket.name / f"run{run}" / "data" / "stale.png").write_text("stale, inside the cache")
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("sentinel")
    (base / "beside.txt").write_text("beside")
    outside_before = {k: v for k, v in _listing(base).items() if not k.startswith("a/b/cache")}
    try:
        root, generations = download_prefix(f"gs://{bucket.name}/run{run}/data", cache)
    except UnsafePath:
        assert (cache / "gcs" / bucket.name / f"run{run}" / "data" / "stale.png").exists()  # nothing deleted
    except MlopsError as exc:  # e.g. a name GCS lists as a folder placeholder: no objects at all
        assert "no objects under this prefix" in str(exc)
    else:
        assert all(
            os.path.realpath(root / rel).startswith(os.path.realpath(cache) + os.sep) for rel in generations
        )
    assert {k: v for k, v in _listing(base).items() if not k.startswith("a/b/cache")} == outside_before
