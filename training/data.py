"""Dataset scanning: the local snapshot of a source (training.sources) → checked, hashed images.

Layouts: `<class>/*.png|jpg|dcm` or the Kaggle COVID-19 Radiography Database `<class>/images/*.png`
beside `<class>/masks/` (masks are ignored). Every file is checked (non-empty, PNG/JPEG/DICOM by
content, fully decodable); bad ones are reported in `skipped`, never trained on.
"""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from core.dicom import DICOM_SUFFIXES, DicomError, is_dicom, render_dicom
from core.errors import CheckFailed, MlopsError
from core.safe_paths import UnsafePath, check_plain_name, is_inside, name_problem
from training.sources import Snapshot, resolve_source

PROGRESS_EVERY = 2000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", *DICOM_SUFFIXES}
IGNORED_DIRS = {"masks"}  # Kaggle layout: segmentation masks beside the images
_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


@dataclass(frozen=True)
class Item:
    """One usable image: path relative to the dataset root, content hash, class label."""

    path: str
    sha256: str
    label: str


@dataclass(frozen=True)
class Dataset:
    """The usable images of a dataset, with what was skipped and why."""

    uri: str
    root: Path
    classes: list[str]
    items: list[Item]
    skipped: list[dict[str, str]] = field(default_factory=list)
    source: Snapshot | None = None  # where the files came from and the revision that names them
    # A TFRecord snapshot's reader (training.snapshot.Records): the stored tensors train, only the
    # test split's files are on disk (under root).
    records: Any = None

    @property
    def fingerprint(self) -> str:
        """sha256 over the sorted (label, content hash) pairs: same images + labels, same name."""
        lines = sorted(f"{item.label}\t{item.sha256}" for item in self.items)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    @property
    def class_counts(self) -> dict[str, int]:
        return {c: sum(1 for item in self.items if item.label == c) for c in self.classes}

    def path_of(self, item: Item) -> Path:
        return self.root / item.path


def check_image(path: Path) -> tuple[str | None, str]:
    """(sha256, "") for a usable PNG/JPEG/DICOM file, else (None, reason)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None, f"not a PNG/JPEG/DICOM file name ({path.suffix or 'no suffix'})"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if not data:
        return None, "empty file"
    if path.suffix.lower() in DICOM_SUFFIXES:
        return _check_dicom(data)
    if not any(data.startswith(magic) for magic in _MAGIC):
        return None, "content is not PNG or JPEG"
    try:
        with Image.open(path) as image:
            image.load()  # full decode: a truncated file fails here, not mid-training
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        return None, f"cannot decode image: {exc}"
    return hashlib.sha256(data).hexdigest(), ""


def _check_dicom(data: bytes) -> tuple[str | None, str]:
    """(sha256, "") for a DICOM file that renders to an image (core.dicom), else (None, reason)."""
    if not is_dicom(data):
        return None, "content is not DICOM (no 'DICM' marker)"
    try:
        render_dicom(data, what="DICOM file")  # full decode: an undecodable syntax fails here
    except DicomError as exc:
        return None, str(exc)
    return hashlib.sha256(data).hexdigest(), ""


OUTSIDE = "a symbolic link that leaves the dataset root; not read"


def _class_files(root: Path, class_dir: Path, skipped: list[dict[str, str]]) -> list[Path]:
    """Every file under a class folder, ignoring masks/ folders and hidden entries.

    No symlink is followed out of the dataset root: one that leaves it (a file or a folder) goes
    into `skipped` unread. Symlinked sub-folders are not walked (as pathlib's rglob never did).
    """
    files = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d.lower() not in IGNORED_DIRS and not d.startswith("."))
        for name in [*filenames, *(d for d in dirnames if (base / d).is_symlink())]:
            path = base / name
            if name.startswith("."):
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() and not is_inside(root, path):
                skipped.append({"path": rel, "reason": OUTSIDE})
            elif (why := name_problem(rel)) is not None:  # a name no later step could store or read back
                skipped.append({"path": rel, "reason": f"not a safe file name: {why}"})
            elif path.is_file():
                files.append(path)
    return sorted(files)


def _class_dirs(root: Path, skipped: list[dict[str, str]]) -> list[Path]:
    """The class folders of root: plain names only, none leading outside it.

    Hidden folders (`.git`, `.ipynb_checkpoints`) are tools' own and ignored, as they always were. A
    name starting with `..` is no tool's: it reads as a parent reference, so it is refused with the
    other names that are not plain (a '/', a backslash, control characters) rather than guessed at.
    """
    dirs = []
    for entry in sorted(root.iterdir()):
        if (entry.name.startswith(".") and not entry.name.startswith("..")) or not entry.is_dir():
            continue
        try:
            check_plain_name(entry.name, f"dataset {root}: class folder")
        except UnsafePath as exc:
            raise CheckFailed(f"{exc}; rename or remove that folder (class names are folder names)") from None
        if not is_inside(root, entry):
            skipped.append({"path": entry.name, "reason": OUTSIDE})
            continue
        dirs.append(entry)
    return dirs


def scan_folder(root: Path, uri: str | None = None, source: Snapshot | None = None) -> Dataset:
    """Check and hash every image under root/<class>/; the class list is the sorted folder names."""
    if not root.is_dir():
        raise MlopsError(f"dataset {root} is not a folder; give a folder of class sub-folders")
    skipped: list[dict[str, str]] = []
    class_dirs = _class_dirs(root, skipped)
    if len(class_dirs) < 2:
        raise MlopsError(
            f"dataset {root} has {len(class_dirs)} class folder(s); need at least 2 (one per class)"
        )
    jobs = [(d.name, f) for d in class_dirs for f in _class_files(root, d, skipped)]
    results: list[tuple[str | None, str]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes outside the GIL
        for start in range(0, len(jobs), PROGRESS_EVERY):
            chunk = jobs[start : start + PROGRESS_EVERY]
            results.extend(pool.map(lambda job: check_image(job[1]), chunk))
            if len(jobs) > PROGRESS_EVERY:  # big datasets (Kaggle: 21k files) take a while
                print(f"checked {len(results)}/{len(jobs)} files", file=sys.stderr, flush=True)
    items = []
    for (label, path), (sha, reason) in zip(jobs, results, strict=True):
        rel = path.relative_to(root).as_posix()
        if sha is None:
            skipped.append({"path": rel, "reason": reason})
        else:
            items.append(Item(rel, sha, label))
    skipped.sort(key=lambda entry: entry["path"])
    classes = [d.name for d in class_dirs]
    empty = [c for c in classes if not any(i.label == c for i in items)]
    if empty:
        raise MlopsError(f"dataset {root}: class folder(s) {', '.join(empty)} hold no usable images")
    return Dataset(uri or str(root), root, classes, items, skipped, source)


def scan_snapshot(snapshot: Snapshot) -> Dataset:
    """Scan a resolved source; the Dataset keeps the source (and its revision) for the lineage."""
    return scan_folder(snapshot.root, uri=snapshot.uri, source=snapshot)


def load_dataset(uri: str, cache_dir: Path) -> Dataset:
    """A Dataset from a folder, gs://BUCKET/PREFIX or git+URL@REV (downloaded under cache_dir)."""
    return scan_snapshot(resolve_source(uri, cache_dir))
