"""Send one HTTP request with syncplan's own bounded, logged retries.

:func:`send` is the only retry loop that connectors use. They must not enable
gspread's ``BackOffHTTPClient`` or urllib3's ``Retry`` (:func:`send` rejects a
session whose adapter has urllib3 retries), so every resend is counted, paced
and logged in one place. Its contract:

- it takes a token from the optional :class:`~runtime.http.ratelimit.TokenBucket`
  before every attempt, the first one included;
- it retries the statuses of :attr:`RetryPolicy.statuses`, a 403 whose Google
  error body names a rate limit, and transport failures (connection errors,
  timeouts, a body cut off mid-transfer);
- it returns any other response at once, success or not, because the caller
  decides what a 400 or a 404 means;
- before each retry it sleeps the ``Retry-After`` delay (capped), or else a
  full-jitter exponential back-off with a floor for Google quota errors;
- it stops with :class:`RetryExhausted` after ``attempts`` attempts, and with
  :class:`DeadlineExceeded` when the next sleep would end past the deadline;
- it never blindly resends a non-idempotent request that may have applied
  (see :class:`AmbiguousWrite`).

Every retry is logged at WARNING on this module's logger with the attempt, the
delay, the cause, the method and the URL with its secret query parameters
removed. Headers and bodies are never logged.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from compiler.plan.models import RetryPlan

from runtime.http.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

# (connect, read) seconds, used when the caller passes no timeout, because a
# request without one can hang past any deadline.
DEFAULT_TIMEOUT = (10.0, 60.0)

# Query parameter names whose values are credentials, compared case-insensitively.
SECRET_QUERY_PARAMETERS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_secret",
        "password",
        "signature",
        "sig",
    }
)

_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_JITTER_MODES = ("full", "none")
_RETRY_AFTER_SECONDS = re.compile(r"\d+(\.\d+)?", re.ASCII)
# Caps the back-off exponent so that base * 2**n stays a finite float.
_MAX_BACKOFF_EXPONENT = 64


# --------------------------------------------------------------------------
# Errors


class HTTPFailure(Exception):
    """Base of the errors that :func:`send` raises once it stops trying.

    ``url`` has its secret query parameters removed. ``last_response`` is the
    last response received, or None when the last attempt raised a transport
    error, which is then chained as ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        attempts: int,
        last_response: requests.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.attempts = attempts
        self.last_response = last_response


class RetryExhausted(HTTPFailure):
    """Every allowed attempt failed with a retryable cause."""


class DeadlineExceeded(HTTPFailure):
    """The next retry would have slept past :attr:`RetryPolicy.deadline_seconds`."""


class AmbiguousWrite(HTTPFailure):
    """A non-idempotent request failed in a way that may have applied it.

    A read timeout, a dropped connection or a gateway error after the request
    was sent leaves the server state unknown, so :func:`send` does not resend
    without the caller's ``on_ambiguous`` check. The message is meant for the
    person running syncplan. A caller that can check whether the write landed
    should pass ``on_ambiguous`` to :func:`send` so that it resends when the
    write did not land. The Sheets backend reads the target range back, and
    the http destination runs its lookup.
    """


class AmbiguousWriteApplied(AmbiguousWrite):
    """``on_ambiguous`` reported that the ambiguous write did apply.

    The write is done and was not resent. Callers usually treat this as success.
    """


# --------------------------------------------------------------------------
# Policy


@dataclass(frozen=True)
class RetryPolicy:
    """Limits and back-off of :func:`send`. Times are in seconds.

    ``attempts`` counts every request sent, the first one included. Before
    retry ``n`` (1-based), the back-off ceiling is
    ``min(max_seconds, base_seconds * 2 ** (n - 1))``. With ``jitter="full"`` the
    delay is drawn uniformly from 0 to that ceiling; with ``"none"`` it is the
    ceiling. A Google per-user or per-project quota error raises the delay to at
    least ``user_quota_min_seconds`` or ``project_quota_min_seconds``. A
    ``Retry-After`` header replaces both, capped at ``retry_after_cap_seconds``.
    ``deadline_seconds`` is the total budget from the first attempt.

    ``ambiguous_statuses`` lists the statuses that, on a non-idempotent request,
    may mean the write applied: a 500 can come after a partial commit, and
    a gateway (502, 504) can time out while the backend carries on. 429 and 503
    reject a request before it runs, so they are retried even for writes.
    """

    attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    deadline_seconds: float = 120.0
    retry_after_cap_seconds: float = 60.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    ambiguous_statuses: frozenset[int] = frozenset({500, 502, 504})
    jitter: str = "full"
    # The per-user quota counts only this credential's requests, which the
    # token bucket paces when one is given, so a short floor is enough. The per-project
    # quota is shared by every user of the Google Cloud project's OAuth client,
    # whose traffic this process cannot see or slow. A short delay would spend
    # the attempts before the minute window refills, so its floor is longer.
    # NOTE: both floors are judgment values, not numbers published by Google.
    user_quota_min_seconds: float = 2.0
    project_quota_min_seconds: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"attempts must be an integer, got {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts!r}")
        self._check_non_negative("base_seconds", self.base_seconds)
        self._check_non_negative("max_seconds", self.max_seconds)
        self._check_non_negative(
            "retry_after_cap_seconds", self.retry_after_cap_seconds
        )
        self._check_non_negative("user_quota_min_seconds", self.user_quota_min_seconds)
        self._check_non_negative(
            "project_quota_min_seconds", self.project_quota_min_seconds
        )
        if not self.deadline_seconds > 0:
            raise ValueError(
                f"deadline_seconds must be positive, got {self.deadline_seconds!r}"
            )
        if self.jitter not in _JITTER_MODES:
            raise ValueError(
                f"jitter must be one of {_JITTER_MODES!r}, got {self.jitter!r}"
            )
        self._check_statuses("statuses", self.statuses)
        self._check_statuses("ambiguous_statuses", self.ambiguous_statuses)

    @staticmethod
    def _check_non_negative(name: str, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")

    @staticmethod
    def _check_statuses(name: str, statuses: frozenset[int]) -> None:
        if not isinstance(statuses, frozenset):
            raise TypeError(f"{name} must be a frozenset of ints, got {statuses!r}")
        invalid = sorted(
            repr(status)
            for status in statuses
            if isinstance(status, bool)
            or not isinstance(status, int)
            or not 100 <= status <= 599
        )
        if invalid:
            raise ValueError(
                f"{name} must hold HTTP status codes from 100 to 599, "
                f"got {', '.join(invalid)}"
            )

    def backoff_seconds(self, retry_number: int) -> float:
        """Draw the back-off delay before retry ``retry_number`` (1-based)."""
        exponent = min(max(retry_number - 1, 0), _MAX_BACKOFF_EXPONENT)
        ceiling = min(self.max_seconds, self.base_seconds * 2**exponent)
        if self.jitter == "full":
            return self.rng.uniform(0, ceiling)
        return ceiling


# --------------------------------------------------------------------------
# Google error bodies
#
# Shapes come from two public sources. Sheets API v4 returns the google.rpc
# error model:
#   {"error": {"code": 429, "message": "Quota exceeded for quota metric ...",
#              "status": "RESOURCE_EXHAUSTED",
#              "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
#                           "reason": "RATE_LIMIT_EXCEEDED",
#                           "domain": "googleapis.com",
#                           "metadata": {
#                               "quota_metric": "sheets.googleapis.com/write_requests",
#                               "quota_limit": "WriteRequestsPerMinutePerUser",
#                               "consumer": "projects/...",
#                               "service": "sheets.googleapis.com"}}]}}
# with "WriteRequestsPerMinutePerProject" (and quota_unit "1/min/{project}") for
# the per-project quota. This is how 429 bodies of sheets.googleapis.com look in
# public bug reports, and the google.api.ErrorReason enum documents
# RATE_LIMIT_EXCEEDED, with quota_metric and quota_limit in the metadata, for
# rate quota errors. Older APIs such as Drive v3 use the legacy form
#   {"error": {"code": 403, "message": "...",
#              "errors": [{"domain": "usageLimits",
#                          "reason": "userRateLimitExceeded"}]}}
# whose rate-limit reasons the Drive "Resolve errors" guide lists.

_RATE_LIMIT_REASONS = frozenset(
    {"RATE_LIMIT_EXCEEDED", "rateLimitExceeded", "userRateLimitExceeded"}
)
_BACKEND_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"})
_BACKEND_REASONS = frozenset({"backendError", "internalError"})
_ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


def flow_retry_policy(plan: RetryPlan) -> RetryPolicy:
    """Return the policy of a flow's ``on_error.retry``, shared by reads and writes."""
    if plan.backoff == "none":
        return RetryPolicy(attempts=plan.attempts, base_seconds=0.0, max_seconds=0.0)
    if plan.backoff == "fixed":
        return RetryPolicy(attempts=plan.attempts, base_seconds=plan.base_seconds,
                           max_seconds=plan.base_seconds, jitter="none")
    return RetryPolicy(attempts=plan.attempts, base_seconds=plan.base_seconds,
                       max_seconds=plan.max_seconds)


class GoogleErrorKind(enum.StrEnum):
    """Category of a Google error, as far as retrying is concerned."""

    USER_QUOTA = "per-user quota"
    PROJECT_QUOTA = "per-project quota"
    RATE_LIMIT = "rate limit"
    BACKEND = "backend error"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class GoogleError:
    """The parts of a Google JSON error body that decide how to retry."""

    kind: GoogleErrorKind
    code: int | None
    status: str | None
    reason: str | None
    message: str
    quota_metric: str | None = None
    quota_limit: str | None = None

    @property
    def is_rate_limit(self) -> bool:
        return self.kind in (
            GoogleErrorKind.USER_QUOTA,
            GoogleErrorKind.PROJECT_QUOTA,
            GoogleErrorKind.RATE_LIMIT,
        )

    def describe(self) -> str:
        """Format status, reason and quota for logs, without the message text.

        The message can contain the project number, so it stays out of logs.
        """
        parts = [part for part in (self.status, self.reason) if part]
        text = " ".join(parts)
        if self.kind is not GoogleErrorKind.OTHER:
            detail = str(self.kind)
            if self.quota_limit:
                detail = f"{detail} {self.quota_limit}"
            text = f"{text} ({detail})" if text else detail
        return text


def classify_google_error(response: requests.Response) -> GoogleError | None:
    """Parse a Google JSON error body, or return None when the body is not one.

    Tells apart per-user and per-project quota errors (from the ErrorInfo
    ``quota_limit``), other rate limits, backend errors (status UNAVAILABLE,
    INTERNAL or DEADLINE_EXCEEDED) and everything else.
    """
    error = _error_object(response)
    if error is None:
        return None
    code = error.get("code") if isinstance(error.get("code"), int) else None
    status = _string_or_none(error.get("status"))
    message = _string_or_none(error.get("message")) or ""
    info = _error_info(error)
    metadata = info.get("metadata") if isinstance(info.get("metadata"), dict) else {}
    reason = _string_or_none(info.get("reason")) or _legacy_reason(error)
    quota_limit = _string_or_none(metadata.get("quota_limit"))
    kind = _error_kind(code, status, reason, quota_limit)
    return GoogleError(
        kind=kind,
        code=code,
        status=status,
        reason=reason,
        message=message,
        quota_metric=_string_or_none(metadata.get("quota_metric")),
        quota_limit=quota_limit,
    )


def _error_object(response: requests.Response) -> dict[str, Any] | None:
    body = response.content
    if not body or not body.lstrip().startswith(b"{"):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else None


def _error_info(error: Mapping[str, Any]) -> Mapping[str, Any]:
    details = error.get("details")
    if not isinstance(details, list):
        return {}
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _ERROR_INFO_TYPE:
            return detail
    return {}


def _legacy_reason(error: Mapping[str, Any]) -> str | None:
    errors = error.get("errors")
    if not isinstance(errors, list):
        return None
    for item in errors:
        if isinstance(item, dict) and _string_or_none(item.get("reason")):
            return item["reason"]
    return None


def _error_kind(
    code: int | None, status: str | None, reason: str | None, quota_limit: str | None
) -> GoogleErrorKind:
    is_rate_limit = (
        reason in _RATE_LIMIT_REASONS or status == "RESOURCE_EXHAUSTED" or code == 429
    )
    if is_rate_limit:
        # Check "PerUser" first: "...PerMinutePerUser" is a per-user limit
        # inside one project.
        if (
            quota_limit and "PerUser" in quota_limit
        ) or reason == "userRateLimitExceeded":
            return GoogleErrorKind.USER_QUOTA
        if quota_limit and "PerProject" in quota_limit:
            return GoogleErrorKind.PROJECT_QUOTA
        return GoogleErrorKind.RATE_LIMIT
    if status in _BACKEND_STATUSES or reason in _BACKEND_REASONS:
        return GoogleErrorKind.BACKEND
    return GoogleErrorKind.OTHER


def _string_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------
# URLs and Retry-After


def redact_url(url: str) -> str:
    """Return ``url`` without secret query parameters, user info or fragment.

    Removes every parameter named in :data:`SECRET_QUERY_PARAMETERS`, so the
    result is safe to log.
    """
    parts = urlsplit(url)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name.lower() not in SECRET_QUERY_PARAMETERS
    ]
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


def _url_without_query(url: str) -> str:
    parts = urlsplit(redact_url(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def parse_retry_after(
    value: str | None, *, now: dt.datetime | None = None
) -> float | None:
    """Parse a ``Retry-After`` header into seconds from ``now``.

    Accepts delay-seconds (a decimal fraction is tolerated) or an HTTP-date,
    which is compared with ``now`` (default: the current UTC time). A date in
    the past gives 0.0. Returns None for a missing or unparsable value.
    """
    if value is None:
        return None
    text = value.strip()
    if _RETRY_AFTER_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # HTTP-dates are always GMT, and "-0000" parses as naive.
        when = when.replace(tzinfo=dt.UTC)
    current = now if now is not None else dt.datetime.now(dt.UTC)
    return max(0.0, (when - current).total_seconds())


# --------------------------------------------------------------------------
# One attempt's failure


@dataclass(slots=True)
class _Failure:
    """The cause of one failed attempt, with the facts that the next step needs."""

    cause: str
    response: requests.Response | None = None
    exception: Exception | None = None
    google: GoogleError | None = None
    retry_after: float | None = None
    # True when the request may have reached the server and applied.
    may_have_applied: bool = False


def _response_failure(
    response: requests.Response, policy: RetryPolicy
) -> _Failure | None:
    """Describe a retryable response, or return None for one to hand back."""
    google = classify_google_error(response)
    retryable = response.status_code in policy.statuses or (
        response.status_code == 403 and google is not None and google.is_rate_limit
    )
    if not retryable:
        return None
    cause = f"HTTP {response.status_code}"
    if google is not None and google.describe():
        cause = f"{cause} {google.describe()}"
    return _Failure(
        cause=cause,
        response=response,
        google=google,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        may_have_applied=response.status_code in policy.ambiguous_statuses,
    )


def _transport_failure(exc: requests.RequestException) -> _Failure:
    return _Failure(
        cause=type(exc).__name__,
        exception=exc,
        may_have_applied=not _was_never_sent(exc),
    )


def _was_never_sent(exc: requests.RequestException) -> bool:
    """Tell whether the request failed before any byte reached the server.

    A connect timeout, a refused connection and a failed DNS lookup all happen
    before the request is written, so even a write can be resent safely.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    # requests wraps urllib3's MaxRetryError, whose reason is the socket error.
    return any(
        isinstance(getattr(arg, "reason", None), NewConnectionError) for arg in exc.args
    )


# --------------------------------------------------------------------------
# The retry loop


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    bucket: TokenBucket | None = None,
    idempotent: bool = True,
    on_ambiguous: Callable[[Exception], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    **request_kwargs: Any,
) -> requests.Response:
    """Send a request through ``session``, retrying as the module docstring describes.

    ``request_kwargs`` go to :meth:`requests.Session.request`. ``timeout``
    defaults to :data:`DEFAULT_TIMEOUT`. The deadline bounds the sleeps between
    attempts, so a request already in flight can still run past it by up to its
    timeout.

    For ``idempotent=False``, a failure that may have applied the request is
    passed to ``on_ambiguous``: a transport error, or an HTTPError carrying the
    response for an ``ambiguous_statuses`` status. A True return means the
    caller checked that the write did not apply, so the request is retried.
    False raises :class:`AmbiguousWriteApplied`. Without a callback,
    :class:`AmbiguousWrite` is raised at once. Errors raised by the callback
    propagate unchanged.

    Raises ValueError when the session's adapter for ``url`` has urllib3
    retries of its own, which would resend requests unseen. An SSL error
    propagates unchanged, because a certificate failure does not heal with time.
    """
    _reject_adapter_retries(session, url)
    request_kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        if bucket is not None:
            bucket.acquire()
        outcome = _send_once(session, method, url, policy, request_kwargs)
        if isinstance(outcome, requests.Response):
            return outcome
        failure = outcome
        if failure.may_have_applied and not idempotent:
            _settle_ambiguous(failure, on_ambiguous, method, url, attempt)
        if attempt >= policy.attempts:
            raise _exhausted(failure, method, url, attempt)
        delay, delay_source = _next_delay(policy, failure, attempt)
        elapsed = clock() - started
        if elapsed + delay > policy.deadline_seconds:
            raise _deadline_exceeded(
                failure, method, url, attempt, delay, elapsed, policy
            )
        _log_retry(method, url, attempt, policy.attempts, failure, delay, delay_source)
        if failure.response is not None:
            failure.response.close()
        sleep(delay)


def _send_once(
    session: requests.Session,
    method: str,
    url: str,
    policy: RetryPolicy,
    request_kwargs: dict[str, Any],
) -> requests.Response | _Failure:
    try:
        response = session.request(method, url, **request_kwargs)
    except requests.exceptions.SSLError:
        raise
    except _TRANSPORT_ERRORS as exc:
        return _transport_failure(exc)
    failure = _response_failure(response, policy)
    return response if failure is None else failure


def _reject_adapter_retries(session: requests.Session, url: str) -> None:
    adapter = session.get_adapter(url)
    retries = getattr(adapter, "max_retries", None)
    if not isinstance(retries, Retry):
        return
    counts = (
        retries.total,
        retries.connect,
        retries.read,
        retries.status,
        retries.other,
    )
    enabled = [
        count
        for count in counts
        if isinstance(count, int) and not isinstance(count, bool) and count > 0
    ]
    if enabled:
        raise ValueError(
            f"the session's adapter for {_url_without_query(url)!r} has urllib3 "
            f"retries enabled ({retries!r}); mount requests.adapters.HTTPAdapter() "
            f"without max_retries so that send() is the only retry loop"
        )


def _settle_ambiguous(
    failure: _Failure,
    on_ambiguous: Callable[[Exception], bool] | None,
    method: str,
    url: str,
    attempt: int,
) -> None:
    """Raise unless ``on_ambiguous`` confirms the write did not apply."""
    error = failure.exception or requests.HTTPError(
        failure.cause, response=failure.response
    )
    target = f"{method} {_url_without_query(url)}"
    if on_ambiguous is None:
        raise AmbiguousWrite(
            f"{target} may have been applied: it failed with {failure.cause} after "
            f"the request was sent. It was not resent, because a resend could "
            f"apply it twice. Check whether the change is there before running "
            f"again",
            method=method,
            url=redact_url(url),
            attempts=attempt,
            last_response=failure.response,
        ) from failure.exception
    if not on_ambiguous(error):
        raise AmbiguousWriteApplied(
            f"{target} failed with {failure.cause}, and on_ambiguous reported that "
            f"the write applied, so it was not resent; treat the write as done",
            method=method,
            url=redact_url(url),
            attempts=attempt,
            last_response=failure.response,
        ) from failure.exception
    failure.cause = f"{failure.cause}, write reported not applied"


def _next_delay(
    policy: RetryPolicy, failure: _Failure, attempt: int
) -> tuple[float, str]:
    """Return the seconds to sleep before the next attempt and where they come from."""
    if failure.retry_after is not None:
        return min(failure.retry_after, policy.retry_after_cap_seconds), "Retry-After"
    delay = policy.backoff_seconds(attempt)
    floor = _quota_floor(policy, failure.google)
    if floor > delay:
        return floor, f"{failure.google.kind} minimum"
    return delay, "back-off"


def _quota_floor(policy: RetryPolicy, google: GoogleError | None) -> float:
    if google is None:
        return 0.0
    if google.kind is GoogleErrorKind.PROJECT_QUOTA:
        return policy.project_quota_min_seconds
    if google.kind is GoogleErrorKind.USER_QUOTA:
        return policy.user_quota_min_seconds
    return 0.0


def _log_retry(
    method: str,
    url: str,
    attempt: int,
    attempts: int,
    failure: _Failure,
    delay: float,
    delay_source: str,
) -> None:
    safe_url = redact_url(url)
    logger.warning(
        "%s %s: attempt %d of %d failed with %s; retrying in %.2f s (%s)",
        method,
        safe_url,
        attempt,
        attempts,
        failure.cause,
        delay,
        delay_source,
        extra={
            "http_method": method,
            "http_url": safe_url,
            "http_attempt": attempt,
            "http_cause": failure.cause,
            "http_delay_seconds": round(delay, 2),
        },
    )


def _exhausted(
    failure: _Failure, method: str, url: str, attempt: int
) -> RetryExhausted:
    error = RetryExhausted(
        f"{method} {_url_without_query(url)} failed after {attempt} attempt(s); "
        f"last cause: {failure.cause}. {_advice(failure, url)}",
        method=method,
        url=redact_url(url),
        attempts=attempt,
        last_response=failure.response,
    )
    # NOTE: the chained requests exception's own message can contain the full
    # URL with its query string, so a traceback of it is not secret-free.
    error.__cause__ = failure.exception
    return error


def _deadline_exceeded(
    failure: _Failure,
    method: str,
    url: str,
    attempt: int,
    delay: float,
    elapsed: float,
    policy: RetryPolicy,
) -> DeadlineExceeded:
    error = DeadlineExceeded(
        f"{method} {_url_without_query(url)} stopped after {attempt} attempt(s): "
        f"the next retry in {delay:.2f} s would pass the {policy.deadline_seconds:g} s "
        f"deadline ({elapsed:.2f} s used); last cause: {failure.cause}. "
        f"{_advice(failure, url)}",
        method=method,
        url=redact_url(url),
        attempts=attempt,
        last_response=failure.response,
    )
    error.__cause__ = failure.exception
    return error


def _advice(failure: _Failure, url: str) -> str:
    """Say what the operator can do about the last cause."""
    google = failure.google
    if failure.exception is not None:
        host = urlsplit(url).hostname or url
        return (
            f"Check that {host} is reachable from this machine and that the "
            f"request timeout fits the server's response time, then rerun the flow."
        )
    if google is not None and google.kind is GoogleErrorKind.PROJECT_QUOTA:
        return (
            f"The per-project quota {google.quota_limit} is shared by every user of "
            f"the Google Cloud project: request a higher quota in the Cloud console "
            f"or run fewer syncs at once."
        )
    if google is not None and google.kind is GoogleErrorKind.USER_QUOTA:
        return (
            f"The per-user quota {google.quota_limit} is used up: lower this system's "
            f"rate limit or spread the writes over more time."
        )
    if failure.response is not None and (
        failure.response.status_code == 429
        or (google is not None and google.is_rate_limit)
    ):
        return (
            "The server is rate limiting: lower this system's rate limit "
            "or rerun later."
        )
    return (
        "The server kept failing: rerun the flow later, and check the service's "
        "status page if it persists."
    )
