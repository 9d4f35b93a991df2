"""The audit log page's filters: by actor, action, version and date, newest first, paginated."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from core.errors import UsageError


@dataclass(frozen=True)
class AuditFilter:
    """What the person asked to see; empty fields match everything."""

    actor: str = ""
    action: str = ""
    version: int | None = None
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_args(cls, args: Any) -> AuditFilter:
        """Parse query arguments; UsageError names a bad one."""
        version = (args.get("version") or "").strip()
        if version and not re.fullmatch(r"[0-9]{1,9}", version):  # ASCII: int() refuses "²"
            raise UsageError(f"version={version!r} is not a version number")
        return cls(
            actor=(args.get("actor") or "").strip(),
            action=(args.get("action") or "").strip(),
            version=int(version) if version else None,
            since=_day(args, "since"),
            until=_day(args, "until"),
        )

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether one event passes every filter."""
        day = str(event.get("at", ""))[:10]
        return (
            (not self.actor or event.get("actor") == self.actor)
            and (not self.action or event.get("action") == self.action)
            and (self.version is None or event.get("version") == self.version)
            and (self.since is None or day >= self.since.isoformat())
            and (self.until is None or day <= self.until.isoformat())
        )


def _day(args: Any, name: str) -> date | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a date; use YYYY-MM-DD") from None


def select(
    events: list[dict[str, Any]], wanted: AuditFilter, page: int, size: int
) -> tuple[list[dict[str, Any]], int, int, int]:
    """(events on the page, newest first; page number; page count; matching count)."""
    matching = [e for e in reversed(events) if wanted.matches(e)]
    pages = max(1, math.ceil(len(matching) / size))
    page = min(max(1, page), pages)
    return matching[(page - 1) * size : page * size], page, pages, len(matching)


def choices(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The actors and actions that occur, for the filter menus."""
    return {
        "actors": sorted({str(e.get("actor")) for e in events if e.get("actor")}),
        "actions": sorted({str(e.get("action")) for e in events if e.get("action")}),
    }
