"""Content digests of folders (a model test suite): what a trust policy pins and a test attestation names."""

from __future__ import annotations

import hashlib
from pathlib import Path

# Not content: bytecode caches and VCS metadata change without the tests changing.
_SKIP_PARTS = {"__pycache__", ".git", ".pytest_cache"}


def tree_digest(folder: Path) -> str:
    """`sha256:HEX` over every regular file under folder (relative path and content), in path order."""
    folder = Path(folder)
    hasher = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(folder)
        if _SKIP_PARTS.intersection(rel.parts) or path.suffix == ".pyc":
            continue
        hasher.update(rel.as_posix().encode() + b"\0")
        hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + hasher.hexdigest()
