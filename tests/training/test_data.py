"""Dataset loading: layouts, bad files, fingerprint."""

from __future__ import annotations

import base64
import hashlib
import shutil

import pytest

from core.errors import MlopsError
from training.data import load_dataset, scan_folder


def test_lists_classes_and_images(tiny_dataset):
    ds = scan_folder(tiny_dataset)
    assert ds.classes == ["a", "b", "c"]
    assert ds.class_counts == {"a": 20, "b": 20, "c": 20}
    assert ds.skipped == []
    for item in ds.items:  # the content hash is the sha256 of the file's bytes; the label its folder
        assert item.sha256 == hashlib.sha256((tiny_dataset / item.path).read_bytes()).hexdigest()
        assert item.label == item.path.split("/")[0]


def test_bad_files_are_reported_and_skipped(tiny_dataset):
    (tiny_dataset / "a" / "empty.png").write_bytes(b"")
    (tiny_dataset / "a" / "notes.txt").write_text("hello")
    (tiny_dataset / "b" / "fake.png").write_bytes(b"this is not a png at all")
    good = (tiny_dataset / "c" / "0.png").read_bytes()
    (tiny_dataset / "c" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tiny_dataset / "c" / "gif.jpg").write_bytes(b"GIF89a" + b"\0" * 20)
    ds = scan_folder(tiny_dataset)
    reasons = {row["path"]: row["reason"] for row in ds.skipped}
    truncated = reasons.pop("c/truncated.png", "not skipped")
    assert truncated.startswith("cannot decode image")  # the rest is PIL's own wording
    assert reasons == {
        "a/empty.png": "empty file",
        "a/notes.txt": "not a PNG/JPEG/DICOM file name (.txt)",
        "b/fake.png": "content is not PNG or JPEG",
        "c/gif.jpg": "content is not PNG or JPEG",
    }
    assert ds.class_counts == {"a": 20, "b": 20, "c": 20}
    assert not {i.path for i in ds.items} & set(reasons)


def test_kaggle_layout_ignores_masks(tmp_path, png):
    root = tmp_path / "COVID-19_Radiography_Dataset"
    for c, label in enumerate(("COVID", "Normal", "Viral Pneumonia")):
        for i in range(3):
            png(root / label / "images" / f"{label}-{i}.png", seed=c * 10 + i)
            png(root / label / "masks" / f"{label}-{i}.png", seed=500 + c * 10 + i)
    (root / "COVID.metadata.xlsx").write_bytes(b"PK\x03\x04")  # top-level files are not classes
    ds = load_dataset(str(root), tmp_path / "cache")
    assert ds.classes == ["COVID", "Normal", "Viral Pneumonia"]
    assert ds.class_counts == {"COVID": 3, "Normal": 3, "Viral Pneumonia": 3}
    assert all("/images/" in item.path for item in ds.items)
    assert ds.skipped == []


def test_jpeg_is_accepted(tiny_dataset):
    from PIL import Image

    Image.new("RGB", (20, 20), (10, 200, 30)).save(tiny_dataset / "a" / "x.jpeg", format="JPEG")
    assert scan_folder(tiny_dataset).class_counts["a"] == 21


def test_fingerprint_follows_content_not_names(tiny_dataset, tmp_path, png):
    before = scan_folder(tiny_dataset).fingerprint
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    (copy / "a" / "0.png").rename(copy / "a" / "renamed.png")
    assert scan_folder(copy).fingerprint == before  # same images, same labels
    png(tiny_dataset / "a" / "new.png", seed=99_999)
    added = scan_folder(tiny_dataset).fingerprint
    assert added != before
    shutil.move(tiny_dataset / "a" / "new.png", tiny_dataset / "b" / "new.png")
    assert scan_folder(tiny_dataset).fingerprint not in {before, added}  # a relabel changes it too


# Two 1x1 grayscale PNGs (black, white) as fixed bytes, and their sha256 (computed with sha256sum).
BLACK_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)
WHITE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAsTj2FAAAAABJRU5ErkJggg=="
)
BLACK_SHA = "eaa4a94ea300e0d2c775968cbe42f0b5b51ceafdeb73d64e9efddf6d4e880865"
WHITE_SHA = "d44c0303173ecdb8ba72a7ab688f020583b31865537e2f9ab57e56aeec687807"


def test_fingerprint_of_a_known_dataset_is_fixed(tmp_path):
    """The fingerprint names data in every manifest; retrain compares it, so it must never drift.

    Expected: sha256 of the sorted "label<TAB>sha256" lines joined by newlines, computed outside
    Python: printf 'dark\\t<black sha>\\nlight\\t<white sha>' | sha256sum.
    """
    root = tmp_path / "known"
    (root / "dark").mkdir(parents=True)
    (root / "light").mkdir()
    (root / "dark" / "black.png").write_bytes(BLACK_PNG)
    (root / "light" / "white.png").write_bytes(WHITE_PNG)
    ds = scan_folder(root)
    assert [(i.path, i.sha256, i.label) for i in ds.items] == [
        ("dark/black.png", BLACK_SHA, "dark"),
        ("light/white.png", WHITE_SHA, "light"),
    ]
    assert ds.fingerprint == "677f32687e69f7a7f0eca1479883d7259b4544390aae557455f186afbf274480"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "is not a folder"),
        (lambda root: (root / "only").mkdir(parents=True), "need at least 2"),
    ],
)
def test_unusable_dataset_is_a_clear_error(tmp_path, setup, message):
    root = tmp_path / "ds"
    setup(root)
    with pytest.raises(MlopsError, match=message):
        scan_folder(root)


def test_class_with_no_usable_images_is_an_error(tiny_dataset):
    (tiny_dataset / "d").mkdir()
    (tiny_dataset / "d" / "x.png").write_bytes(b"")
    with pytest.raises(MlopsError, match="class folder\\(s\\) d hold no usable images"):
        scan_folder(tiny_dataset)


def test_unsupported_scheme(tmp_path):
    with pytest.raises(MlopsError, match="unsupported scheme"):
        load_dataset("s3://bucket/x", tmp_path)


def test_big_datasets_report_progress(tiny_dataset, monkeypatch, capsys):
    monkeypatch.setattr("training.data.PROGRESS_EVERY", 25)
    ds = scan_folder(tiny_dataset)
    assert capsys.readouterr().err.splitlines() == [
        "checked 25/60 files",
        "checked 50/60 files",
        "checked 60/60 files",
    ]
    assert len(ds.items) == 60


def test_dicom_files_are_images_and_undecodable_ones_are_skipped(tiny_dataset):
    from dicom_files import JPEG_LOSSLESS, WINDOWED, dicom_bytes

    (tiny_dataset / "a" / "scan.dcm").write_bytes(dicom_bytes(WINDOWED))
    (tiny_dataset / "b" / "lossless.dcm").write_bytes(dicom_bytes(JPEG_LOSSLESS))
    (tiny_dataset / "c" / "fake.dcm").write_bytes(b"not a dicom file at all" * 10)
    ds = scan_folder(tiny_dataset)
    assert "a/scan.dcm" in [i.path for i in ds.items]
    reasons = {s["path"]: s["reason"] for s in ds.skipped}
    assert "JPEG Lossless" in reasons["b/lossless.dcm"] and "cannot decode" in reasons["b/lossless.dcm"]
    assert "not DICOM" in reasons["c/fake.dcm"]
