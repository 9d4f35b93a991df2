"""sha256 and size of files, in chunks so a 200 MB model never sits in memory."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(root: Path, skip: tuple[str, ...] = ("manifest.json",)) -> dict[str, dict[str, Any]]:
    """`{relpath: {"sha256", "size"}}` for every file under root, except top-level names in skip."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in skip:
            continue
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files
