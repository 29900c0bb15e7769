"""Request log: every request the emulator received, with byte counts.

``bytes_received`` counts request bodies and ``bytes_sent`` response bodies
(headers excluded), which is what the cost of a sync is measured in.  The
kind of each request is the API method name, such as ``values.get`` or
``spreadsheets.batchUpdate``; see :func:`server.classify`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestRecord:
    """One request; ``status`` is None when a fault dropped the connection.

    The record is written just before the response is sent, so ``status``
    is the one sent unless the client disconnected first.
    """

    method: str
    path: str
    query: str
    kind: str
    request_bytes: int
    response_bytes: int
    status: int | None
    fault: str | None
    duration_seconds: float


class RequestLog:
    """Thread-safe list of :class:`RequestRecord` with running totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def requests_count(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def bytes_received(self) -> int:
        with self._lock:
            return sum(record.request_bytes for record in self._records)

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return sum(record.response_bytes for record in self._records)

    def counts_by_kind(self) -> dict[str, int]:
        """Return how many requests of each kind were received."""
        with self._lock:
            return dict(Counter(record.kind for record in self._records))

    def counts_by_status(self) -> dict[int | None, int]:
        """Return how many responses of each status were sent (None: dropped)."""
        with self._lock:
            return dict(Counter(record.status for record in self._records))

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
