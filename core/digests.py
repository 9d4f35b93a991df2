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


BUILTIN_SUITE_PACKAGE = "unit_testing"  # the built-in model test suite (unit_testing/suites.py BUILTIN_DIR)


def builtin_suite_digest() -> str | None:
    """The digest of the installed built-in model test suite (None where it is not installed, as in the
    serving image). Found by package name, not imported: core sits below the suite's layer."""
    import importlib.util

    spec = importlib.util.find_spec(BUILTIN_SUITE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return tree_digest(Path(next(iter(spec.submodule_search_locations))))
