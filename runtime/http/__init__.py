"""HTTP helpers shared by every connector: retries and request pacing.

:func:`send` sends one request with bounded, logged retries under a
:class:`RetryPolicy`, and :class:`TokenBucket` paces requests to a rate limit.
:class:`BucketRegistry` shares one bucket per target. The errors :func:`send`
raises once it stops trying form this hierarchy::

    HTTPFailure                  base; .method, .url (redacted), .attempts,
    │                            .last_response
    ├── RetryExhausted           every allowed attempt failed
    ├── DeadlineExceeded         the next sleep would pass the deadline
    └── AmbiguousWrite           a write may have applied, so it was not resent
        └── AmbiguousWriteApplied    on_ambiguous reported that it applied

A response with a status that is not retried (400, 401, 404, a 403 without a
rate-limit reason) is returned, not raised.
"""

from runtime.http.ratelimit import BucketRegistry, TokenBucket
from runtime.http.retry import (
    DEFAULT_TIMEOUT,
    AmbiguousWrite,
    AmbiguousWriteApplied,
    DeadlineExceeded,
    GoogleError,
    GoogleErrorKind,
    HTTPFailure,
    RetryExhausted,
    RetryPolicy,
    classify_google_error,
    flow_retry_policy,
    parse_retry_after,
    redact_url,
    send,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AmbiguousWrite",
    "AmbiguousWriteApplied",
    "BucketRegistry",
    "DeadlineExceeded",
    "GoogleError",
    "GoogleErrorKind",
    "HTTPFailure",
    "RetryExhausted",
    "RetryPolicy",
    "TokenBucket",
    "classify_google_error",
    "flow_retry_policy",
    "parse_retry_after",
    "redact_url",
    "send",
]
