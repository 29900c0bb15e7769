"""Token buckets that pace the requests sent to a rate-limited API.

A :class:`TokenBucket` contains at most ``capacity`` tokens and refills at ``rate``
tokens per ``per_seconds``. :meth:`TokenBucket.acquire` takes tokens and sleeps
first when the bucket does not contain enough. Each call reserves its tokens under a
lock and sleeps after releasing it, so concurrent threads wait in parallel for
consecutive slots instead of queueing on the lock.

A :class:`BucketRegistry` keeps one bucket per string key, such as one per
spreadsheet id, so that every connector writing to the same target shares one
budget. :meth:`BucketRegistry.shared` returns the registry of the whole process,
from which the reader and the writers of a system take their buckets, so that
its reads and writes together stay within its rate limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# The Google Sheets API v4 usage limits page (developers.google.com/sheets/api/limits)
# lists 60 write requests per minute per user per project, and 300 per project.
DEFAULT_RATE = 60.0
DEFAULT_PER_SECONDS = 60.0


class TokenBucket:
    """A thread-safe token bucket with an injectable clock and sleep.

    ``capacity`` defaults to 1, which spaces requests evenly at
    ``per_seconds / rate`` seconds. A bucket as large as ``rate`` would let a burst
    of a whole window's quota follow the tokens refilled during the previous
    window, so a per-minute quota could see twice its limit in one minute.
    Pass a larger capacity only for an API that counts a sliding window loosely.
    """

    def __init__(
        self,
        rate: float,
        per_seconds: float,
        *,
        capacity: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of tokens, got {rate!r}")
        if not per_seconds > 0:
            raise ValueError(
                f"per_seconds must be a positive number of seconds, got {per_seconds!r}"
            )
        if capacity is None:
            capacity = 1
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an integer, got {capacity!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        self.rate = float(rate)
        self.per_seconds = float(per_seconds)
        self.capacity = capacity
        self._tokens_per_second = self.rate / self.per_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Goes negative while reservations exceed the tokens refilled so far.
        self._tokens = float(capacity)
        self._updated_at = clock()

    def acquire(self, tokens: int = 1) -> float:
        """Take ``tokens`` tokens, sleeping until they are available.

        Returns the seconds this call slept, 0.0 when the tokens were there.
        Raises TypeError when ``tokens`` is not an integer, and ValueError when
        it is outside 1 to the capacity, because a larger request could never be
        served in one piece.
        """
        self._validate_tokens(tokens)
        with self._lock:
            wait_seconds = self._reserve(tokens)
        if wait_seconds > 0:
            logger.debug(
                "waiting %.2f s for %d token(s) at %g per %g s",
                wait_seconds,
                tokens,
                self.rate,
                self.per_seconds,
            )
            self._sleep(wait_seconds)
        return wait_seconds

    def _validate_tokens(self, tokens: int) -> None:
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise TypeError(f"tokens must be an integer, got {tokens!r}")
        if not 1 <= tokens <= self.capacity:
            raise ValueError(
                f"tokens must be between 1 and the bucket capacity {self.capacity}, "
                f"got {tokens!r}; create the bucket with a larger capacity"
            )

    def _reserve(self, tokens: int) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._updated_at)
        refilled = self._tokens + elapsed * self._tokens_per_second
        self._tokens = min(float(self.capacity), refilled) - tokens
        self._updated_at = now
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._tokens_per_second

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self.rate:g}, per_seconds={self.per_seconds:g}, "
            f"capacity={self.capacity})"
        )


class BucketRegistry:
    """One :class:`TokenBucket` per key, created on first use and then shared.

    The Sheets write quota counts requests per user, not per spreadsheet, so a
    process that writes several spreadsheets with one credential should key its
    buckets by credential rather than by spreadsheet id.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}

    def get(
        self,
        key: str,
        rate: float = DEFAULT_RATE,
        per_seconds: float = DEFAULT_PER_SECONDS,
        *,
        capacity: int | None = None,
    ) -> TokenBucket:
        """Return the bucket of ``key``, creating it with these limits if new.

        Raises ValueError when the key already has a bucket with other limits,
        because two connectors pacing one target differently is a configuration
        error that would otherwise go unnoticed.
        """
        if not isinstance(key, str) or not key:
            raise ValueError(f"bucket key must be a non-empty string, got {key!r}")
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(
                    rate,
                    per_seconds,
                    capacity=capacity,
                    clock=self._clock,
                    sleep=self._sleep,
                )
                self._buckets[key] = bucket
                return bucket
        self._check_same_limits(key, bucket, rate, per_seconds, capacity)
        return bucket

    @staticmethod
    def _check_same_limits(
        key: str,
        bucket: TokenBucket,
        rate: float,
        per_seconds: float,
        capacity: int | None,
    ) -> None:
        same_capacity = capacity is None or capacity == bucket.capacity
        if rate == bucket.rate and per_seconds == bucket.per_seconds and same_capacity:
            return
        raise ValueError(
            f"bucket {key!r} already exists as {bucket!r}, but rate={rate!r}, "
            f"per_seconds={per_seconds!r}, capacity={capacity!r} was requested; "
            f"give every connector of this key the same rate limit"
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    @staticmethod
    def shared() -> BucketRegistry:
        """Return the registry of this process, with the real clock and sleep.

        Connectors take the bucket of a system from here under the same key,
        such as ``http:SYSTEM:LIMIT``, so that the source and the destinations
        of one system spend one budget.
        """
        return _SHARED


_SHARED = BucketRegistry()
