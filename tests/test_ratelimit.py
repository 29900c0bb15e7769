"""Tests of the token bucket, the bucket registry and the Sheets write bucket, on a fake clock."""

from __future__ import annotations

import bisect
import re
import threading

import pytest

from compiler.plan.models import RateLimit, SystemPlan
from runtime.http.ratelimit import (
    DEFAULT_PER_SECONDS,
    DEFAULT_RATE,
    BucketRegistry,
    TokenBucket,
)
from sheets_addon.google.session import write_bucket


class FakeClock:
    """A clock that only moves when something sleeps on it or a test advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_bucket(
    rate: float, per_seconds: float, **kwargs
) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    bucket = TokenBucket(rate, per_seconds, clock=clock, sleep=clock.sleep, **kwargs)
    return bucket, clock


def test_bucket_first_token_free():
    bucket, clock = make_bucket(60, 60)

    waited = bucket.acquire()

    assert waited == 0.0
    assert clock.sleeps == []


def test_bucket_paces_default_capacity():
    bucket, clock = make_bucket(2, 1)

    waits = [bucket.acquire() for _ in range(4)]

    assert waits == [0.0, 0.5, 0.5, 0.5]
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert clock.now == pytest.approx(1.5)


def test_bucket_capacity_allows_burst():
    bucket, clock = make_bucket(1, 2, capacity=3)

    burst = [bucket.acquire() for _ in range(3)]
    fourth = bucket.acquire()

    assert burst == [0.0, 0.0, 0.0]
    assert fourth == pytest.approx(2.0)
    assert clock.sleeps == [pytest.approx(2.0)]


def test_bucket_refills_while_idle():
    bucket, clock = make_bucket(1, 1, capacity=2)
    bucket.acquire()
    bucket.acquire()

    clock.advance(1.5)
    first_after_idle = bucket.acquire()
    second_after_idle = bucket.acquire()

    assert first_after_idle == 0.0
    assert second_after_idle == pytest.approx(0.5)


def test_bucket_idle_refill_stops_at_capacity():
    bucket, clock = make_bucket(1, 1, capacity=2)
    bucket.acquire()

    clock.advance(1000)
    waits = [bucket.acquire() for _ in range(3)]

    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(1.0)


def test_bucket_multiple_tokens_wait_longer():
    bucket, _ = make_bucket(4, 1, capacity=4)
    bucket.acquire(4)

    waited = bucket.acquire(2)

    assert waited == pytest.approx(0.5)


def test_bucket_rejects_tokens_above_capacity():
    bucket, _ = make_bucket(10, 1, capacity=3)

    with pytest.raises(ValueError, match=r"between 1 and the bucket capacity 3, got 4"):
        bucket.acquire(4)


@pytest.mark.parametrize(
    ("tokens", "error"),
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_bucket_rejects_invalid_tokens(tokens, error):
    bucket, _ = make_bucket(10, 1, capacity=3)

    with pytest.raises(error, match=re.escape(f"got {tokens!r}")):
        bucket.acquire(tokens)


@pytest.mark.parametrize(
    ("rate", "per_seconds", "capacity", "message"),
    [
        (0, 1, None, "rate must be a positive number of tokens, got 0"),
        (-5, 1, None, "rate must be a positive number of tokens, got -5"),
        (1, 0, None, "per_seconds must be a positive number of seconds, got 0"),
        (1, 1, 0, "capacity must be at least 1, got 0"),
    ],
)
def test_bucket_rejects_invalid_limits(rate, per_seconds, capacity, message):
    with pytest.raises(ValueError, match=message):
        TokenBucket(rate, per_seconds, capacity=capacity)


def test_bucket_rejects_fractional_capacity():
    with pytest.raises(TypeError, match=r"capacity must be an integer, got 2\.5"):
        TokenBucket(1, 1, capacity=2.5)


def test_bucket_threads_get_distinct_slots():
    # The sleep does nothing, so the clock stays at 0 and each returned wait is
    # the slot its thread reserved. Distinct slots show the lock serialized them.
    clock = FakeClock()
    bucket = TokenBucket(1, 1, clock=clock, sleep=lambda seconds: None)
    waits: list[float] = []
    waits_lock = threading.Lock()
    start = threading.Barrier(10)

    def take_token() -> None:
        start.wait()
        waited = bucket.acquire()
        with waits_lock:
            waits.append(waited)

    threads = [threading.Thread(target=take_token) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(waits) == [float(slot) for slot in range(10)]


def test_registry_shares_bucket_per_key():
    registry = BucketRegistry()

    first = registry.get("sheet-a")
    again = registry.get("sheet-a")
    other = registry.get("sheet-b")

    assert first is again
    assert other is not first
    assert len(registry) == 2


def test_registry_defaults_sixty_per_minute():
    registry = BucketRegistry()

    bucket = registry.get("sheet-a")

    assert (DEFAULT_RATE, DEFAULT_PER_SECONDS) == (60.0, 60.0)
    assert bucket.rate == 60.0
    assert bucket.per_seconds == 60.0
    assert bucket.capacity == 1


def test_registry_buckets_use_registry_clock():
    clock = FakeClock()
    registry = BucketRegistry(clock=clock, sleep=clock.sleep)
    bucket = registry.get("sheet-a", 1, 3)

    bucket.acquire()
    waited = bucket.acquire()

    assert waited == pytest.approx(3.0)
    assert clock.sleeps == [pytest.approx(3.0)]


def test_registry_rejects_conflicting_limits():
    registry = BucketRegistry()
    registry.get("sheet-a", 60, 60)

    with pytest.raises(ValueError, match=r"bucket 'sheet-a' already exists") as caught:
        registry.get("sheet-a", 100, 60)

    assert "rate=100" in str(caught.value)


def test_registry_rejects_empty_key():
    registry = BucketRegistry()

    with pytest.raises(ValueError, match=r"non-empty string, got ''"):
        registry.get("")


# --- The Google Sheets write bucket ---------------------------------------------


def sheets_system(rate_limit: RateLimit | None = None) -> SystemPlan:
    return SystemPlan(id="report", kind="sheets", rate_limit=rate_limit)


def write_times(bucket: TokenBucket, clock: FakeClock, count: int) -> list[float]:
    """Return the clock time at which each of ``count`` writes may go."""
    times = []
    for _ in range(count):
        bucket.acquire()
        times.append(clock.now)
    return times


def busiest_window(times: list[float], seconds: float) -> int:
    """Return the most writes in any window of ``seconds`` that starts at a write."""
    return max(bisect.bisect_left(times, start + seconds) - index
               for index, start in enumerate(times))


def test_sheets_bucket_default_sixty_per_minute():
    clock = FakeClock()
    registry = BucketRegistry(clock=clock, sleep=clock.sleep)
    bucket = write_bucket(sheets_system(), "sheet-a", registry)

    times = write_times(bucket, clock, 300)

    assert (bucket.capacity, bucket.rate, bucket.per_seconds) == (10, 50.0, 60.0)
    assert times[:10] == [0.0] * 10
    assert sum(1 for moment in times if moment < 60.0) == 59
    assert busiest_window(times, 60.0) <= 60
    assert times[10] == pytest.approx(1.2)
    assert times[-1] == pytest.approx(290 * 1.2)


def test_sheets_bucket_shared_per_spreadsheet():
    clock = FakeClock()
    registry = BucketRegistry(clock=clock, sleep=clock.sleep)
    first = write_bucket(sheets_system(), "sheet-a", registry)
    second = write_bucket(sheets_system(), "sheet-a", registry)
    other = write_bucket(sheets_system(), "sheet-b", registry)

    times = write_times(first, clock, 30) + write_times(second, clock, 40)

    assert first is second
    assert other is not first
    assert busiest_window(times, 60.0) <= 60


@pytest.mark.parametrize(
    ("requests", "per_seconds", "capacity", "refill"),
    [(120, 60.0, 10, 110.0), (12, 60.0, 2, 10.0), (5, 60.0, 1, 4.0), (1, 10.0, 1, 1.0),
     (1000, 1.0, 10, 990.0)],
)
def test_sheets_bucket_custom_limit_holds(requests, per_seconds, capacity, refill):
    clock = FakeClock()
    registry = BucketRegistry(clock=clock, sleep=clock.sleep)
    limit = RateLimit(requests=requests, per_seconds=per_seconds)
    bucket = write_bucket(sheets_system(limit), "sheet-a", registry)

    times = write_times(bucket, clock, 3 * requests + 5)

    assert (bucket.capacity, bucket.rate) == (capacity, refill)
    assert busiest_window(times, per_seconds) <= requests
