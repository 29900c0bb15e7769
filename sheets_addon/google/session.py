"""A gspread client whose requests go through syncplan's own retries and budget.

gspread's ``BackOffHTTPClient`` retries silently, without a deadline, and would
resend a write that timed out after it applied. Here every request goes through
``runtime.http.send`` instead: 429 and 5xx answers are retried with full-jitter
back-off under a deadline, ``Retry-After`` is honored, each retry is logged, and
writes draw from a token bucket per spreadsheet (``write_bucket``: at most 60 in
any minute unless the system's ``rate_limit`` sets another limit). A write that may
have applied is resent only after the backend has read the cells back and found
them unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gspread
from gspread.exceptions import APIError
from gspread.http_client import HTTPClient

from compiler.plan import SystemPlan
from runtime.http import BucketRegistry, RetryPolicy, TokenBucket, send

logger = logging.getLogger(__name__)

# Google's default write quota: 60 write requests per minute per user per
# project, refilled every minute (developers.google.com/workspace/sheets/api/limits).
DEFAULT_WRITES = 60
DEFAULT_PER_SECONDS = 60.0
# At most this many writes go at once before the bucket paces them, because a
# bucket of capacity one would add a second to every write of a small sync.
BURST = 10
REQUEST_TIMEOUT = (10.0, 120.0)

_BUCKETS = BucketRegistry()
# POST methods that only read: they are retried like reads and cost no write token.
READ_ONLY_POSTS = (":batchGetByDataFilter", ":getByDataFilter")

AmbiguityCheck = Callable[[Exception], bool]


class SyncplanHTTPClient(HTTPClient):
    """gspread's HTTP client with syncplan's retries, budget and ambiguity checks."""

    policy: RetryPolicy = RetryPolicy()
    bucket: TokenBucket | None = None
    ambiguity_check: AmbiguityCheck | None = None

    def request(self, method: str, endpoint: str, params: Any = None,
                data: Any = None, json: Any = None, files: Any = None,
                headers: Any = None) -> Any:
        verb = method.upper()
        reading = verb == "GET" or endpoint.split("?")[0].endswith(READ_ONLY_POSTS)
        response = send(
            self.session, verb, endpoint, policy=self.policy,
            bucket=None if reading else self.bucket, idempotent=reading,
            on_ambiguous=None if reading else self.ambiguity_check,
            params=params, data=data, json=json, files=files, headers=headers,
            timeout=self.timeout or REQUEST_TIMEOUT)
        if response.ok:
            return response
        raise APIError(response)


def retry_policy(system: SystemPlan) -> RetryPolicy:
    """Return the retry policy of a Sheets system: the defaults, with 503 ambiguous.

    Whether Sheets can respond with 503 after it committed a write is not documented,
    and resending a row deletion that did apply deletes other rows. So a write
    that got a 503 is resent only after the backend has read the spreadsheet
    back; reads are retried as usual.
    """
    defaults = RetryPolicy()
    return RetryPolicy(ambiguous_statuses=defaults.ambiguous_statuses | {503})


def build_client(system: SystemPlan, spreadsheet_id: str, *,
                 credentials: Any = None, emulator: str | None = None
                 ) -> tuple[gspread.Client, Callable[[AmbiguityCheck | None], None]]:
    """Return a gspread client for one spreadsheet and a setter of its ambiguity check."""
    if emulator is not None:
        session = _emulator_session(emulator)
    else:
        from google.auth.transport.requests import AuthorizedSession

        session = AuthorizedSession(credentials)
    client = gspread.Client(auth=None, session=session,
                            http_client=SyncplanHTTPClient)
    http = client.http_client
    assert isinstance(http, SyncplanHTTPClient)
    http.policy = retry_policy(system)
    http.bucket = write_bucket(system, spreadsheet_id)

    def set_check(check: AmbiguityCheck | None) -> None:
        http.ambiguity_check = check

    return client, set_check


def write_bucket(system: SystemPlan, spreadsheet_id: str,
                 registry: BucketRegistry = _BUCKETS) -> TokenBucket:
    """Return the write bucket of a spreadsheet, shared by every client of it.

    A token bucket of capacity C refilled at r per P seconds allows C + r
    writes in a window of P seconds. The quota R must hold in every window of P
    seconds, burst included. So C is at most a sixth of R (10 of 60) and r is
    R - C: the burst goes at once, then the bucket paces the rest. A window's
    last token comes one write early, which leaves a margin for network delay.
    """
    rate, per = DEFAULT_WRITES, DEFAULT_PER_SECONDS
    if system.rate_limit is not None:
        rate, per = system.rate_limit.requests, system.rate_limit.per_seconds
    capacity = max(1, min(BURST, int(rate) // 6))
    refill = rate - capacity if rate - capacity >= 1 else rate
    return registry.get(f"sheets:{spreadsheet_id}", refill, per, capacity=capacity)


def emulator_address(address: str) -> tuple[str, int]:
    """Return the host and port of a Sheets emulator address such as 127.0.0.1:8085.

    Raises ``ValueError`` for a host other than loopback, so that no request
    meant for an emulator can leave this machine.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        raise ValueError(f"the Sheets emulator address {address!r} must be a loopback"
                         " host and port, such as 127.0.0.1:8085")
    return host, int(port)


def _emulator_session(address: str) -> Any:
    from sheets_addon.emulator import EmulatorSession

    host, port = emulator_address(address)
    return EmulatorSession(host, port)
