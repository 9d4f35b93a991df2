"""The time window `mlops monitor` looks at: a duration back from now, or explicit --since/--until."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Window:
    """Records with since <= t < until (epoch seconds)."""

    since: float
    until: float

    def to_dict(self) -> dict[str, str]:
        """ISO times, for JSON and the report."""
        return {"since": iso(self.since), "until": iso(self.until)}


def iso(t: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_duration(text: str) -> float:
    """'90m', '24h', '7d', '2w', '30s' → seconds."""
    match = _DURATION.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"window {text!r} is not a duration; use e.g. 90m, 24h, 7d")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def parse_time(text: str) -> float:
    """An ISO 8601 time (UTC when it names no zone) → epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"time {text!r} is not ISO 8601; use e.g. 2025-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def make_window(duration: str, since: str | None = None, until: str | None = None) -> Window:
    """The window ending at UNTIL (default now) and starting at SINCE (default UNTIL - DURATION)."""
    end = parse_time(until) if until else time.time()
    start = parse_time(since) if since else end - parse_duration(duration)
    if start >= end:
        raise UsageError(f"the window is empty: since {iso(start)} is not before until {iso(end)}")
    return Window(start, end)
