"""A token bucket: RATE requests a second on average, BURST at once; thread-safe (gthread workers)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Holds up to BURST tokens, refilled at RATE per second; each request takes one."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate_per_s > 0 and burst >= 1")
        self._rate, self._burst, self._clock = rate_per_s, float(burst), clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token: 0 when granted, else the whole seconds to wait before one is there."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0
            return max(1, math.ceil((1 - self._tokens) / self._rate))
