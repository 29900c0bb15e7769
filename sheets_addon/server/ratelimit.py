"""Per-caller token buckets: ``burst`` requests at once, refilled at ``rate`` per second.

Buckets live in the memory of one process, so with several server processes
each one limits on its own and a caller gets up to that many times the rate.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by caller; ``take`` spends one token."""

    def __init__(self, burst: int, rate: float) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError(f"rate limit burst={burst!r}, rate={rate!r} is invalid;"
                             " give a burst of at least 1 and a positive rate")
        self.burst = burst
        self.rate = rate
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Spend a token of ``key``; return 0, or the seconds until one is free."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._drop_full(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst,
                                bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate

    def _drop_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket, so forgetting it
        # bounds memory without letting anyone past the limit.
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst:
                del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    """Return a Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
