"""The one rule for turning an untrusted outside name into a local path under a root.

Outside names are object names in a bucket, file lists in a manifest or snapshot, dataset prefixes,
git revisions, class folder names: anything someone other than the local user chose. Each is checked
before it touches the disk: a '/'-separated relative name with no `.`/`..` or empty segments, no
backslash, no control or line-separator characters, at most 255 UTF-8 bytes a segment and 4096 in
all, and, once joined, still inside its root after every symlink is followed. A name that fails is
refused whole, with an UnsafePath naming it and saying why; callers check every name before they
write anything, so one bad name leaves nothing written.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from core.errors import MlopsError

MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux and macOS file systems
MAX_NAME_BYTES = 4096  # PATH_MAX on Linux
# Line and paragraph separators end a line in logs and terminals as a newline does.
_LINE_BREAKS = {"\u2028", "\u2029"}


class UnsafePath(MlopsError):
    """An outside name would leave its root or cannot be a local file name; nothing was written."""


def control_character(text: str) -> str | None:
    """'the control character U+000A' for the first control or line-separator character, else None."""
    for char in text:
        # Cc: C0 and C1 control characters and DEL (NUL, newline, escape, ...).
        if unicodedata.category(char) == "Cc" or char in _LINE_BREAKS:
            return f"the control character U+{ord(char):04X}"
    return None


def _bad_char(name: str) -> str | None:
    """Why a character of name cannot be in a file name, or None."""
    if "\\" in name:
        return "a backslash (a separator on Windows, never part of a name here)"
    if any(0xD800 <= ord(char) <= 0xDFFF for char in name):
        return "bytes that are not UTF-8"
    return control_character(name)


def name_problem(name: str) -> str | None:
    """Why name is not a safe '/'-separated relative name, or None when it is."""
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not text"
    if not name:
        return "it is empty"
    if (why := _bad_char(name)) is not None:
        return f"it holds {why}"
    if name.startswith("/"):
        return "it is absolute (starts with '/')"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            what = "an empty segment ('//' or a trailing '/')" if not segment else f"a {segment!r} segment"
            return f"it has {what}"
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def check_name(name: str, what: str) -> str:
    """name if it is a safe relative name, else UnsafePath naming `what` and why."""
    if (why := name_problem(name)) is not None:
        raise UnsafePath(f"{what}: {name!r} is not a safe relative name: {why}")
    return name


def check_plain_name(name: str, what: str) -> str:
    """name if it is one plain file name (no '/', not hidden, no control characters), else UnsafePath."""
    why = name_problem(name)
    if why is None and "/" in name:
        why = "it holds a '/'"
    if why is None and name.startswith("."):
        why = "it starts with '.'"
    if why is not None:
        raise UnsafePath(f"{what}: {name!r} is not a plain name: {why}")
    return name


def is_inside(root: Path, path: Path) -> bool:
    """Whether path, every symlink followed, is root or lies under it (root's symlinks followed too)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def safe_join(root: Path, name: str, what: str) -> Path:
    """root / name, refused (UnsafePath) unless name is a safe relative name that stays inside root."""
    path = Path(root) / check_name(name, what)
    if not is_inside(root, path):
        raise UnsafePath(f"{what}: {name!r} leads outside {root} through a symbolic link")
    return path


def remove_files_except(root: Path, keep: Iterable[str], within: Path) -> list[str]:
    """Delete every file under root whose relative name is not in keep; returns what was deleted.

    Only ever deletes inside `within` (root must resolve under it): the walk follows no symlink, and
    a symlink found is removed itself (unless kept), never what it points at.
    """
    if not is_inside(within, root):
        raise UnsafePath(f"{root} is not inside {within}; refusing to delete anything there")
    if not root.is_dir() or root.is_symlink():
        return []
    kept, removed = set(keep), []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        # os.walk lists a symlink to a folder among dirnames but does not enter it: remove it as a file.
        links = [d for d in dirnames if (base / d).is_symlink()]
        for name in [*filenames, *links]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if rel not in kept:
                path.unlink()
                removed.append(rel)
    return sorted(removed)
