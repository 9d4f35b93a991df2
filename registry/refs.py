"""Parse model refs: `testing:latest`, `testing:7`, `production:current|previous|7`, or a path."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from registry.errors import RefError

AREAS = ("testing", "production")
_REF = re.compile(r"^(?P<area>[A-Za-z_-]+):(?P<which>.*)$")
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


def parse_ref(text: str) -> Ref:
    """Turn a ref string into a Ref, or raise RefError naming what is wrong."""
    text = text.strip()
    if not text:
        raise RefError(f"empty model ref; use one of {REF_HELP}")
    match = _REF.match(text)
    if match and match["area"] in AREAS:
        area, which = match["area"], match["which"]
        if which in _SELECTORS[area]:
            return Ref(area, selector=which)
        if which.isdigit() and int(which) > 0:
            return Ref(area, version=int(which))
        raise RefError(f"malformed ref {text!r}: {area} takes {', '.join(_SELECTORS[area])} or N >= 1")
    path = Path(text).expanduser()
    if path.is_file() or (path.is_dir() and (path / "manifest.json").is_file()):
        return Ref("local", path=path)
    if match:
        raise RefError(f"malformed ref {text!r}: unknown area {match['area']!r}; use {REF_HELP}")
    raise RefError(f"unknown ref {text!r}: no such model file; use {REF_HELP}")
