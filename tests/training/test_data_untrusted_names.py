"""Folder datasets from others: symlinks out of the root are bad files, odd class names stop (exit 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import EXIT_FAILED_CHECK, CheckFailed
from training.data import scan_folder

OUTSIDE = "a symbolic link that leaves the dataset root; not read"


@pytest.fixture
def outside(tmp_path: Path, png) -> Path:
    """Valid images outside the dataset: had they been read, they would be usable items."""
    folder = tmp_path / "outside"
    for i in range(5):
        png(folder / f"{i}.png", seed=9000 + i)
    return folder


def test_a_symlinked_file_leaving_the_root_is_skipped_and_never_read(tiny_dataset, outside):
    clean = scan_folder(tiny_dataset)
    (tiny_dataset / "a" / "secret.png").symlink_to(outside / "0.png")

    scanned = scan_folder(tiny_dataset)

    assert {"path": "a/secret.png", "reason": OUTSIDE} in scanned.skipped
    assert all(item.path != "a/secret.png" for item in scanned.items)
    assert scanned.class_counts == clean.class_counts
    assert scanned.fingerprint == clean.fingerprint  # the outside image's content never entered


def test_a_symlinked_class_folder_leaving_the_root_is_skipped_and_never_read(tiny_dataset, outside):
    clean = scan_folder(tiny_dataset)
    (tiny_dataset / "d").symlink_to(outside, target_is_directory=True)
    (tiny_dataset / "b" / "more").symlink_to(outside, target_is_directory=True)

    scanned = scan_folder(tiny_dataset)

    assert scanned.classes == ["a", "b", "c"]
    assert {"path": "d", "reason": OUTSIDE} in scanned.skipped
    assert {"path": "b/more", "reason": OUTSIDE} in scanned.skipped
    assert scanned.fingerprint == clean.fingerprint


def test_a_symlink_that_stays_inside_the_root_is_still_used(tiny_dataset):
    (tiny_dataset / "c" / "alias.png").symlink_to(tiny_dataset / "a" / "0.png")
    scanned = scan_folder(tiny_dataset)
    assert any(item.path == "c/alias.png" for item in scanned.items)
    assert scanned.skipped == []


@pytest.mark.parametrize("name", ["..evil", "...", "x\x1bname", "back\\slash", "line\u2028break", "nl\n"])
def test_a_class_folder_that_is_not_a_plain_name_stops_the_scan(tiny_dataset, name):
    (tiny_dataset / name).mkdir()
    shutil.copy(tiny_dataset / "a" / "0.png", tiny_dataset / name / "0.png")
    with pytest.raises(CheckFailed, match="class folder") as caught:
        scan_folder(tiny_dataset)
    assert repr(name) in str(caught.value)


def test_ordinary_hidden_folders_are_still_ignored(tiny_dataset):
    (tiny_dataset / ".git").mkdir()
    shutil.copy(tiny_dataset / "a" / "0.png", tiny_dataset / ".git" / "0.png")
    assert scan_folder(tiny_dataset).classes == ["a", "b", "c"]


def test_a_file_name_with_control_characters_is_skipped(tiny_dataset):
    shutil.copy(tiny_dataset / "a" / "0.png", tiny_dataset / "a" / "x\nevil.png")
    scanned = scan_folder(tiny_dataset)
    assert [s["path"] for s in scanned.skipped] == ["a/x\nevil.png"]
    assert "control character U+000A" in scanned.skipped[0]["reason"]


def test_mlops_train_on_a_dotdot_class_folder_exits_3(tiny_dataset, cli):
    (tiny_dataset / "..evil").mkdir()
    shutil.copy(tiny_dataset / "a" / "0.png", tiny_dataset / "..evil" / "0.png")
    result = cli("train", "--data", str(tiny_dataset), "--epochs", "1", "--image-size", "16")
    assert result.code == EXIT_FAILED_CHECK, result.err
    assert "'..evil'" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("uri", ["/tmp/data\nset", "gs://bucket/pre\x1bfix", "git+file:///repo\x7f@main"])
def test_a_dataset_uri_with_control_characters_is_a_usage_error(tmp_path, uri):
    from core.errors import UsageError
    from training.sources import resolve_source

    with pytest.raises(UsageError, match="control character"):
        resolve_source(uri, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
