"""Wait for a condition with a deadline instead of a fixed sleep: as fast as the system, never flaky-slow."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(what: str, condition: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.05) -> T:
    """Poll until condition() is truthy and return its value; fail the test naming WHAT past timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def seconds_until(what: str, condition: Callable[[], object], timeout_s: float = 30.0) -> float:
    """Seconds until condition() held (polled with wait_for)."""
    start = time.monotonic()
    wait_for(what, condition, timeout_s)
    return time.monotonic() - start
