"""Who is calling: Google ID tokens, API keys, and the per-flow permissions.

The add-on sends ``Authorization: Bearer <ID token>`` (from Apps Script's
``ScriptApp.getIdentityToken()``). ``GoogleTokenVerifier`` checks it with
google-auth's ``id_token.verify_token``: the RS256 signature against Google's
certificates, the audience (the OAuth client id this server is configured
with), ``iat`` and ``exp``; then the issuer (``accounts.google.com`` with or
without ``https://``) and ``email_verified``. The certificates are fetched once
and kept for the ``max-age`` of their ``Cache-Control`` header.

Server-to-server callers send ``X-Api-Key``; see ``ServerStore.check_api_key``.

Permissions: an API key may see and start every flow. A Google user may see and
start a flow only when the flow's ``permissions`` list the user's email or the
domain of that email; a flow without ``permissions`` is for API keys only.
Tokens and keys are never logged or echoed in an error message.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
import requests
from google.oauth2 import id_token

from compiler.plan import FlowPlan

logger = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CLOCK_SKEW_SECONDS = 10
# A token whose key id is not among the cached certificates makes the cache
# refetch (Google rotates keys), but at most this often, so forged key ids
# cannot make the server hammer the certificate endpoint.
MIN_REFETCH_SECONDS = 60.0
DEFAULT_CERTS_MAX_AGE = 300.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


class AuthError(Exception):
    """The request is not authenticated (401) or not allowed (403)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    kind: str
    """google (an ID token) or api_key."""
    subject: str
    """Stable id: the token's ``sub`` or the key id."""
    email: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """Caller description for logs: an email or a key id, never a secret."""
        if self.kind == "google":
            return str(self.email)
        return f"api-key {self.subject} ({self.name})"

    @property
    def bucket(self) -> str:
        """Rate-limit bucket name of this caller."""
        return f"{self.kind}:{self.subject}"


def may_access(identity: Identity, flow: FlowPlan) -> bool:
    """Return whether ``identity`` may see and start ``flow``."""
    if identity.kind == "api_key":
        return True
    permissions = flow.permissions
    if not permissions or not identity.email:
        return False
    email = identity.email.casefold()
    if email in {entry.casefold() for entry in permissions.get("emails", [])}:
        return True
    domain = email.rpartition("@")[2]
    return domain in {entry.casefold().lstrip("@")
                      for entry in permissions.get("domains", [])}


class CachingCertsRequest(google.auth.transport.Request):
    """A google-auth transport that keeps GET responses for their max-age.

    Only the certificate URL goes through it, so caching every GET by URL is
    right here and nowhere else.
    """

    def __init__(self, session: requests.Session | None = None) -> None:
        self._inner = google.auth.transport.requests.Request(
            session or requests.Session())
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, float, Any]] = {}

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Any = None, timeout: Any = None, **kwargs: Any) -> Any:
        if method != "GET":
            return self._inner(url, method=method, body=body, headers=headers,
                               timeout=timeout, **kwargs)
        with self._lock:  # one fetch at a time, the others reuse its result
            cached = self._cache.get(url)
            now = time.monotonic()
            if cached is not None and now < cached[1]:
                return cached[2]
            response = self._inner(url, method="GET", headers=headers,
                                   timeout=timeout or 10, **kwargs)
            if response.status == 200:
                max_age = _max_age(response.headers.get("cache-control", ""))
                self._cache[url] = (now, now + max_age, response)
                logger.info("fetched Google's certificates from %s; cached for"
                            " %.0f s", url, max_age)
            return response

    def forget_unless_recent(self, url: str, min_age: float) -> None:
        """Drop the cached response of ``url`` when it is older than ``min_age``."""
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and time.monotonic() - cached[0] >= min_age:
                del self._cache[url]

    def cached_key_ids(self, url: str) -> set[str] | None:
        with self._lock:
            cached = self._cache.get(url)
        if cached is None or time.monotonic() >= cached[1]:
            return None
        try:
            return set(json.loads(cached[2].data.decode("utf-8")))
        except (ValueError, TypeError):
            return None


def _max_age(cache_control: str) -> float:
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else DEFAULT_CERTS_MAX_AGE


def _decode_segment(segment: str) -> Any:
    """Return the JSON value of one base64url segment of a JWT, or None."""
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        return None


def _unverified_key_id(token: str) -> str | None:
    decoded = _decode_segment(token.split(".", 1)[0])
    kid = decoded.get("kid") if isinstance(decoded, dict) else None
    return kid if isinstance(kid, str) else None


def _shape_problem(token: str) -> str | None:
    """Tell why ``token`` cannot be a Google ID token, before any certificate fetch.

    Google signs ID tokens as RS256 JWTs with a key id. A value without that
    header and a JSON object as payload is rejected at once, so an unreachable
    certificate endpoint cannot turn junk into a 503.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return "it is not a JWT (three base64url parts joined by dots)"
    header = _decode_segment(parts[0])
    if not isinstance(header, dict) or not isinstance(header.get("kid"), str):
        return "its header is not a JSON object with a key id ('kid')"
    if header.get("alg") != "RS256":
        return f"it is signed with {header.get('alg')!r}, and Google signs with 'RS256'"
    if not isinstance(_decode_segment(parts[1]), dict):
        return "its payload is not a JSON object"
    return None


class GoogleTokenVerifier:
    """Verify Google ID tokens for one OAuth client id."""

    def __init__(self, client_id: str, certs_url: str = GOOGLE_CERTS_URL) -> None:
        self.client_id = client_id
        self.certs_url = certs_url
        self._request = CachingCertsRequest()

    def verify(self, token: str) -> Identity:
        """Return the caller the token names; raise ``AuthError`` when it is invalid."""
        problem = _shape_problem(token)
        if problem is not None:
            raise AuthError(401, "invalid_token",
                            f"the ID token is invalid: {problem}; sign in again")
        kid = _unverified_key_id(token)
        known = self._request.cached_key_ids(self.certs_url)
        if kid is not None and known is not None and kid not in known:
            self._request.forget_unless_recent(self.certs_url, MIN_REFETCH_SECONDS)
        try:
            claims = id_token.verify_token(token, self._request,
                                           audience=self.client_id,
                                           certs_url=self.certs_url,
                                           clock_skew_in_seconds=CLOCK_SKEW_SECONDS)
        except google.auth.exceptions.TransportError as exc:
            logger.error("cannot fetch Google's certificates from %s: %s",
                         self.certs_url, exc)
            raise AuthError(503, "certificates_unavailable",
                            "cannot fetch Google's certificates to verify the ID"
                            " token; try again shortly") from None
        except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
            # google-auth quotes a malformed token in its message; never echo it.
            reason = str(exc).replace(token, "<token>")[:300]
            raise AuthError(401, "invalid_token",
                            f"the ID token is invalid: {reason}; sign in again"
                            ) from None
        return _identity(claims)


def _identity(claims: dict[str, Any]) -> Identity:
    issuer = claims.get("iss")
    if issuer not in GOOGLE_ISSUERS:
        raise AuthError(401, "invalid_token",
                        f"the ID token was issued by {issuer!r}, not by Google"
                        " (accounts.google.com); sign in with a Google account")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise AuthError(401, "invalid_token",
                        "the ID token carries no email; request the email scope"
                        " in the add-on manifest")
    if claims.get("email_verified") not in (True, "true"):
        raise AuthError(401, "email_not_verified",
                        f"the email {email!r} of the ID token is not verified;"
                        " verify it with Google first")
    return Identity(kind="google", subject=str(claims.get("sub", email)), email=email)
