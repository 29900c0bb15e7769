"""Fault injection: make the next matching requests fail or stall.

Faults are queued from Python (there is no HTTP control API).  Each fault
matches on the HTTP method and a regular expression searched in the decoded
request path (for example ``r":batchUpdate$"`` or ``r"/values/"``), and
applies to the next ``times`` matching requests, oldest fault first.

Kinds:

* ``error``: respond with an :class:`~.errors.ApiError` (429 quota, 500, 503
  bodies as Google sends them, with an optional ``Retry-After``) without
  touching the state;
* ``delay``: sleep, then handle the request normally (a slow response);
* ``timeout_after_apply``: apply the request, then either hold the response
  for ``seconds`` (longer than the client's read timeout) or, with
  ``drop=True``, close the connection without answering.  Either way the
  write has happened, which is the case retry logic must survive without
  duplicating data;
* ``error_after_apply``: apply the request, then respond with the error
  (a 503 or 500 whose write did happen).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Callable

from .errors import ApiError

logger = logging.getLogger(__name__)

KINDS = ("error", "delay", "timeout_after_apply", "error_after_apply")


@dataclass
class Fault:
    """One queued fault and how many more requests it applies to."""

    kind: str
    times: int = 1
    method: str | None = None
    path_pattern: str | None = None
    # An ApiError, or a function of (method, path) building one per request.
    error: ApiError | Callable[[str, str], ApiError] | None = None
    seconds: float = 0.0
    drop: bool = False
    hits: int = 0
    _regex: re.Pattern | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is invalid; use one of {', '.join(KINDS)}")
        if self.times < 1:
            raise ValueError(f"fault times {self.times!r} must be at least 1")
        if self.kind in ("error", "error_after_apply") and self.error is None:
            raise ValueError(f"an {self.kind!r} fault needs an ApiError; build one with sheets_addon.emulator.errors")
        if self.seconds < 0:
            raise ValueError(f"fault seconds {self.seconds!r} must not be negative")
        self.method = self.method.upper() if self.method else None
        self._regex = re.compile(self.path_pattern) if self.path_pattern else None

    def error_for(self, method: str, path: str) -> ApiError:
        """Return the error to respond to ``method path`` with."""
        if callable(self.error):
            return self.error(method, path)
        assert self.error is not None
        return self.error

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self._regex is None or self._regex.search(path) is not None


class FaultQueue:
    """Thread-safe FIFO of faults, consumed by the request handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        logger.info("queued %s fault for %s %s x%d", fault.kind, fault.method or "*", fault.path_pattern or "*", fault.times)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Return the first fault matching the request, consuming one use."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    fault.hits += 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
