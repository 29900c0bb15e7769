"""Send the requests of one ``http`` stream: origin check, auth, retries, redirects.

``Fetcher.fetch`` sends one page request through ``runtime.http.send``, which
retries 429 and 5xx responses and transport errors with back-off and
``Retry-After`` under the retry policy's deadline, and takes a token from the
system's token bucket before every attempt. On top of that it:

- sends nothing to a URL whose scheme, host or port differs from ``base_url``
  (``ForeignURL``), for page URLs and redirect targets alike;
- follows at most ``MAX_REDIRECTS`` redirects itself, so that each target is
  checked before anything is sent there;
- handles a 401 with one token refresh and one repeat of the same request when
  the credentials can be refreshed (OAuth2), and fails on a second 401;
- raises ``RequestFailed`` for any other status outside 2xx, and when
  ``send`` gives up.

POST streams are searches that change nothing, so every request is sent as
idempotent and may be resent after a timeout. Query parameters travel in the
``params`` argument, never inside the URL that ``send`` logs, and while a
stream is read its secrets are masked in urllib3's request log lines.
"""

from __future__ import annotations

import contextlib
import decimal
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from runtime.http import HTTPFailure, RetryPolicy, TokenBucket, redact_url, send
from runtime.sources.http.auth import Authenticator, AuthFailed
from runtime.sources.http.settings import SystemSettings, origin_of

__all__ = [
    "MAX_REDIRECTS",
    "Fetcher",
    "ForeignURL",
    "PageRequest",
    "RequestFailed",
    "masked_secrets",
]

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
# How much of an error response's body goes into a message.
MAX_BODY_TEXT = 200
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# urllib3 logs each request line, query string included, on this logger at DEBUG.
_REQUEST_LINE_LOGGERS = ("urllib3.connectionpool",)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One request of a stream: the URL without query, its query and JSON body."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    body: Any = field(default=None, repr=False)


class RequestFailed(Exception):
    """A request failed for good; the message names no secret."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ForeignURL(Exception):
    """A URL points outside the base URL's origin, so nothing was sent there."""


class Fetcher:
    """Sends the requests of one stream with the system's credentials and budget."""

    def __init__(
        self,
        *,
        settings: SystemSettings,
        session: requests.Session,
        policy: RetryPolicy,
        bucket: TokenBucket | None,
        sleep: Callable[[float], None],
    ) -> None:
        self._settings = settings
        self._session = session
        self._policy = policy
        self._bucket = bucket
        self._sleep = sleep
        self.auth: Authenticator = Authenticator()
        self.requests_sent = 0

    def check_origin(self, url: str) -> None:
        """Raise ``ForeignURL`` unless ``url`` is on the base URL's origin."""
        if origin_of(url) == self._settings.origin:
            return
        raise ForeignURL(
            f"the URL {redact_url(url)!r} is not on the origin of `base_url`"
            f" {redact_url(self._settings.base_url)!r} (scheme, host and port must"
            " match), so it was not requested"
        )

    def fetch(self, request: PageRequest) -> requests.Response:
        """Send ``request``, following same-origin redirects, and return a 2xx."""
        current = request
        for _ in range(MAX_REDIRECTS + 1):
            self.check_origin(current.url)
            response = self._send_authorized(current)
            if response.status_code not in _REDIRECT_STATUSES:
                break
            current = self._redirected(current, response)
        else:
            raise RequestFailed(
                f"{request.method} {_without_query(request.url)} was redirected more"
                f" than {MAX_REDIRECTS} times; check `base_url` and `path`"
            )
        if not 200 <= response.status_code < 300:
            raise RequestFailed(self._status_message(current, response),
                                status=response.status_code)
        return response

    def post_token(self, url: str, form: dict[str, str],
                   basic: tuple[str, str] | None) -> requests.Response:
        """Send one OAuth2 token request; the ``TokenPoster`` of the authenticator."""
        try:
            return send(
                self._session, "POST", url, policy=self._policy, sleep=self._sleep,
                timeout=self._settings.timeout, allow_redirects=False, data=form,
                auth=basic, headers={"Accept": "application/json"},
            )
        except HTTPFailure as exc:
            raise AuthFailed(f"the token request failed: {exc}") from None
        except requests.RequestException as exc:
            raise AuthFailed(f"the token request to {_without_query(url)} failed with"
                             f" {type(exc).__name__}") from None

    def _send_authorized(self, request: PageRequest) -> requests.Response:
        response = self._send(request)
        if response.status_code != 401 or not self.auth.refreshable:
            return response
        response.close()
        self.auth.refresh()
        response = self._send(request)
        if response.status_code == 401:
            raise RequestFailed(
                f"{request.method} {_without_query(request.url)} responded with HTTP"
                " 401 again with a new access token; check the client's permissions and"
                " `auth.scope`",
                status=401,
            )
        return response

    def _send(self, request: PageRequest) -> requests.Response:
        headers = {"Accept": "application/json", **self._settings.stream.headers}
        params = dict(request.params)
        self.auth.apply(headers, params)
        data = None
        if request.body is not None:
            headers.setdefault("Content-Type", "application/json")
            data = json.dumps(request.body, default=_json_number).encode("utf-8")
        self.requests_sent += 1
        try:
            return send(
                self._session, request.method, request.url, policy=self._policy,
                bucket=self._bucket, sleep=self._sleep, idempotent=True,
                timeout=self._settings.timeout, allow_redirects=False,
                headers=headers, params=params, data=data,
            )
        except HTTPFailure as exc:
            raise RequestFailed(str(exc)) from None
        except requests.RequestException as exc:
            # The exception's text can contain the query string, so only its type
            # goes into the message.
            raise RequestFailed(
                f"{request.method} {_without_query(request.url)} failed with"
                f" {type(exc).__name__}"
            ) from None

    def _redirected(self, request: PageRequest,
                    response: requests.Response) -> PageRequest:
        location = response.headers.get("Location", "")
        response.close()
        target = urljoin(request.url, location)
        self.check_origin(target)
        logger.info("following HTTP %d redirect from %s to %s", response.status_code,
                    _without_query(request.url), redact_url(target))
        if response.status_code in (307, 308):
            return PageRequest(request.method, target, {}, request.body)
        return PageRequest("GET", target)

    def _status_message(self, request: PageRequest, response: requests.Response) -> str:
        text = response.text.strip().replace("\n", " ")
        for secret in self.auth.secrets():
            text = text.replace(secret, "***")
        snippet = f": {text[:MAX_BODY_TEXT]!r}" if text else ""
        return (f"{request.method} {_without_query(request.url)} responded with HTTP"
                f" {response.status_code}{snippet}")


def _without_query(url: str) -> str:
    parts = urlsplit(redact_url(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def _json_number(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} {value!r} cannot be sent as JSON")


class _SecretMask(logging.Filter):
    """Replaces the registered secrets by *** in the messages of a logger."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, secrets: tuple[str, ...]) -> None:
        with self._lock:
            for secret in secrets:
                self._counts[secret] = self._counts.get(secret, 0) + 1

    def remove(self, secrets: tuple[str, ...]) -> None:
        with self._lock:
            for secret in secrets:
                left = self._counts.get(secret, 0) - 1
                if left > 0:
                    self._counts[secret] = left
                else:
                    self._counts.pop(secret, None)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._counts)
        if not secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in secrets:
            masked = masked.replace(secret, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


_MASK = _SecretMask()
for _name in _REQUEST_LINE_LOGGERS:
    logging.getLogger(_name).addFilter(_MASK)


@contextlib.contextmanager
def masked_secrets(secrets: tuple[str, ...]) -> Iterator[None]:
    """Mask ``secrets`` in urllib3's request log lines while the block runs.

    Only static credentials can reach a query string, so they are registered
    here. An OAuth2 access token travels in the Authorization header, which
    urllib3 does not log.
    """
    _MASK.add(secrets)
    try:
        yield
    finally:
        _MASK.remove(secrets)
