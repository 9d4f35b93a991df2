"""Parse model refs: `testing:latest`, `testing:7`, `production:current|previous|7`, or a path.

A ref is typed by a person or read from a URL, so it is parsed strictly (core.numbers): ASCII
digits only, no leading zeros or surrounding spaces (each would silently name another version or
another file), and a bounded length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.numbers import ascii_int
from registry.errors import RefError

AREAS = ("testing", "production")
MAX_VERSION_DIGITS = 9  # a billion versions; longer numbers are typos or attacks
MAX_REF_LENGTH = 4096
_REF = re.compile(r"^(?P<area>[A-Za-z_-]+):(?P<which>.*)$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SELECTORS = {"testing": ("latest",), "production": ("current", "previous")}
REF_HELP = "testing:latest, testing:N, production:current, production:previous, production:N or a model file"


@dataclass(frozen=True)
class Ref:
    """A parsed ref: a registry area with a version number or selector, or a local path."""

    area: str  # testing, production or local
    selector: str = ""  # latest/current/previous, or "" when version is given
    version: int = 0
    path: Path | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.area}:{self.selector or self.version}"


def version_number(text: str) -> int | None:
    """N for the canonical spelling of a version number (ASCII, no leading zero, ≤ 9 digits), else None."""
    number = ascii_int(text, MAX_VERSION_DIGITS)
    return number if number else None


def _shown(text: str) -> str:
    """The ref as an error message shows it: repr (control characters visible), long ones cut."""
    return repr(text) if len(text) <= 80 else f"{text[:40]!r}... ({len(text)} characters)"


def parse_ref(text: str) -> Ref:
    """Turn a ref string into a Ref, or raise RefError naming what is wrong."""
    if not text.strip():
        raise RefError(f"empty model ref; use one of {REF_HELP}")
    if text != text.strip():
        raise RefError(f"ref {_shown(text)} has leading or trailing spaces; write it without them")
    if len(text) > MAX_REF_LENGTH:
        raise RefError(f"ref {_shown(text)} is too long; use one of {REF_HELP}")
    if _CONTROL.search(text):
        raise RefError(f"ref {_shown(text)} contains control characters; use one of {REF_HELP}")
    match = _REF.match(text)
    if match and match["area"] in AREAS:
        area, which = match["area"], match["which"]
        if which in _SELECTORS[area]:
            return Ref(area, selector=which)
        version = version_number(which)
        if version is not None:
            return Ref(area, version=version)
        raise RefError(
            f"malformed ref {_shown(text)}: {area} takes {', '.join(_SELECTORS[area])} or a version "
            f"number N >= 1 (ASCII digits, at most {MAX_VERSION_DIGITS}, no leading zero)"
        )
    path = Path(text).expanduser()
    if path.is_file() or (path.is_dir() and (path / "manifest.json").is_file()):
        return Ref("local", path=path)
    if match:
        raise RefError(f"malformed ref {_shown(text)}: unknown area {match['area']!r}; use {REF_HELP}")
    raise RefError(f"unknown ref {_shown(text)}: no such model file; use {REF_HELP}")
