"""Credentials of an ``http`` system: static headers and query values, or OAuth2.

``build_authenticator`` reads ``system.auth``, resolves its references just
before use and returns an ``Authenticator``. ``type`` selects the scheme:

``bearer``
    ``token``, sent as ``Authorization: Bearer TOKEN``.
``api_key``
    ``key``, sent in the header named by ``header`` or in the query parameter
    named by ``query`` (exactly one of the two).
``basic``
    ``username`` and ``password``, sent as HTTP Basic authentication.
``oauth2_client_credentials``
    ``token_url``, ``client_id``, ``client_secret`` and an optional ``scope``.
``oauth2_refresh_token``
    ``token_url``, ``client_id``, ``refresh_token`` and an optional
    ``client_secret`` and ``scope``.

The two OAuth2 kinds post the grant to ``token_url`` (RFC 6749 sections 4.4
and 6) with the client credentials in the form body, or as HTTP Basic
authentication when ``client_auth: basic``. The access token is requested
before the first request and again when it is about to expire (``expires_in``)
or when the API responds with 401.

Secrets are never logged: the ``Authenticator`` exposes them only through
``apply`` and ``secrets``, and the messages of ``AuthFailed`` name settings and
the token endpoint, never a value.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from runtime.http import redact_url
from runtime.references import UnresolvedReference, resolve
from runtime.sources.base import SourceUnavailable

__all__ = [
    "AUTH_TYPES",
    "AuthFailed",
    "Authenticator",
    "OAuth2Authenticator",
    "StaticAuthenticator",
    "TokenPoster",
    "build_authenticator",
]

logger = logging.getLogger(__name__)

AUTH_TYPES = (
    "bearer",
    "api_key",
    "basic",
    "oauth2_client_credentials",
    "oauth2_refresh_token",
)
# A token is renewed this many seconds before its expiry, but at most a tenth of
# its lifetime early, so a request never starts with a token about to lapse.
EXPIRY_MARGIN_SECONDS = 60.0
# How much of a token endpoint's error text goes into a message.
MAX_ERROR_TEXT = 200

# Sends one form POST to a token endpoint: (url, form fields, basic auth or None).
TokenPoster = Callable[[str, dict[str, str], tuple[str, str] | None], requests.Response]


class AuthFailed(Exception):
    """Credentials could not be obtained; the message names no secret."""


class Authenticator:
    """Adds credentials to a request. The base class adds none."""

    refreshable = False

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        """Add the credentials to the request's headers or query parameters."""

    def refresh(self) -> None:
        """Obtain new credentials after the API rejected the current ones."""
        raise AuthFailed("these credentials cannot be refreshed")

    def secrets(self) -> tuple[str, ...]:
        """Return the secret values in use, so that logs can mask them."""
        return ()


class StaticAuthenticator(Authenticator):
    """Fixed headers and query parameters: bearer, api_key and basic."""

    def __init__(self, headers: dict[str, str], params: dict[str, str],
                 secrets: tuple[str, ...]) -> None:
        self._headers = headers
        self._params = params
        self._secrets = secrets

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers.update(self._headers)
        params.update(self._params)

    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def __repr__(self) -> str:
        return "StaticAuthenticator(...)"


class OAuth2Authenticator(Authenticator):
    """An OAuth2 access token, requested when missing, expiring or rejected."""

    refreshable = True

    def __init__(
        self,
        *,
        token_url: str,
        grant: dict[str, str],
        client_id: str,
        client_secret: str | None,
        client_auth: str,
        post: TokenPoster,
        clock: Callable[[], float],
    ) -> None:
        self._token_url = token_url
        self._grant = grant
        self._client_id = client_id
        self._client_secret = client_secret
        self._client_auth = client_auth
        self._post = post
        self._clock = clock
        self._access_token: str | None = None
        self._renew_at: float | None = None
        self.token_requests = 0

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        if self._access_token is None:
            self._request_token()
        elif self._renew_at is not None and self._clock() >= self._renew_at:
            logger.info("the access token from %s is about to expire; renewing it",
                        redact_url(self._token_url))
            self._request_token()
        headers["Authorization"] = f"Bearer {self._access_token}"

    def refresh(self) -> None:
        logger.info("the API rejected the access token with HTTP 401; requesting a"
                    " new one from %s", redact_url(self._token_url))
        self._request_token()

    def secrets(self) -> tuple[str, ...]:
        values = [self._client_secret, self._access_token, *self._grant.values()]
        return tuple(value for value in values if value)

    def _request_token(self) -> None:
        form = dict(self._grant)
        basic: tuple[str, str] | None = None
        if self._client_auth == "basic":
            basic = (self._client_id, self._client_secret or "")
        else:
            form["client_id"] = self._client_id
            if self._client_secret:
                form["client_secret"] = self._client_secret
        self.token_requests += 1
        response = self._post(self._token_url, form, basic)
        document = self._token_document(response)
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthFailed(
                f"the token endpoint {redact_url(self._token_url)} responded without an"
                f" access_token (found keys {sorted(document)!r}); check `token_url`"
            )
        self._access_token = token
        self._renew_at = self._renewal_time(document.get("expires_in"))
        self._keep_rotated_refresh_token(document.get("refresh_token"))

    def _token_document(self, response: requests.Response) -> dict[str, Any]:
        url = redact_url(self._token_url)
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
        if response.status_code != 200 or not isinstance(document, dict):
            raise AuthFailed(
                f"the token endpoint {url} responded with HTTP {response.status_code}"
                f"{_oauth_error_text(document)}; check `auth.client_id`, the client"
                " secret or refresh token it refers to, `auth.scope` and"
                " `auth.token_url`"
            )
        return document

    def _renewal_time(self, expires_in: Any) -> float | None:
        try:
            lifetime = float(expires_in)
        except (TypeError, ValueError):
            return None  # a token without expires_in is renewed only after a 401
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 10)
        return self._clock() + lifetime - margin

    def _keep_rotated_refresh_token(self, new_token: Any) -> None:
        old_token = self._grant.get("refresh_token")
        if old_token is None or not isinstance(new_token, str):
            return
        if new_token == old_token:
            return
        self._grant["refresh_token"] = new_token
        # NOTE: the rotated refresh token lives only in memory for this run. A
        # provider that revokes the old one makes the next run fail until the
        # secret behind `auth.refresh_token` is updated.
        logger.warning(
            "the token endpoint %s issued a new refresh token; it is used for the rest"
            " of this run but not saved, so update the secret that"
            " `auth.refresh_token` refers to if the provider revokes the old one",
            redact_url(self._token_url),
        )

    def __repr__(self) -> str:
        return f"OAuth2Authenticator(token_url={redact_url(self._token_url)!r})"


def _oauth_error_text(document: Any) -> str:
    if not isinstance(document, dict):
        return ""
    parts = [document.get("error"), document.get("error_description")]
    text = ": ".join(str(part) for part in parts if isinstance(part, str) and part)
    return f" ({text[:MAX_ERROR_TEXT]})" if text else ""


def build_authenticator(
    auth: dict[str, Any] | None,
    *,
    system_id: str,
    base_dir: Path,
    post: TokenPoster,
    clock: Callable[[], float],
) -> Authenticator:
    """Resolve the references of ``auth`` and return its authenticator.

    Raises ``SourceUnavailable`` when a setting is missing or a reference
    cannot be resolved; the message names the setting, never its value.
    """
    if auth is None:
        return Authenticator()
    kind = auth.get("type")
    values = _AuthValues(auth, system_id, base_dir)
    if kind == "bearer":
        token = values.get("token")
        return StaticAuthenticator({"Authorization": f"Bearer {token}"}, {}, (token,))
    if kind == "api_key":
        return _api_key(values, auth, system_id)
    if kind == "basic":
        username = values.get("username")
        password = values.get("password")
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return StaticAuthenticator({"Authorization": f"Basic {encoded}"}, {},
                                   (password, encoded))
    if kind in ("oauth2_client_credentials", "oauth2_refresh_token"):
        return _oauth2(kind, values, auth, post, clock)
    raise SourceUnavailable(
        f"http system {system_id!r}: `auth.type` must be one of"
        f" {', '.join(AUTH_TYPES)}, got {kind!r}"
    )


def _api_key(values: _AuthValues, auth: dict[str, Any],
             system_id: str) -> StaticAuthenticator:
    key = values.get("key")
    header, query = auth.get("header"), auth.get("query")
    if isinstance(header, str) and header and query is None:
        return StaticAuthenticator({header: key}, {}, (key,))
    if isinstance(query, str) and query and header is None:
        return StaticAuthenticator({}, {query: key}, (key,))
    raise SourceUnavailable(
        f"http system {system_id!r}: an api_key needs exactly one of `auth.header`"
        f" (such as X-Api-Key) or `auth.query` (such as api_key), got header"
        f" {header!r} and query {query!r}"
    )


def _oauth2(kind: str, values: _AuthValues, auth: dict[str, Any], post: TokenPoster,
            clock: Callable[[], float]) -> OAuth2Authenticator:
    token_url = values.get("token_url")
    grant = {"grant_type": "client_credentials"}
    client_secret: str | None
    if kind == "oauth2_refresh_token":
        grant = {"grant_type": "refresh_token",
                 "refresh_token": values.get("refresh_token")}
        client_secret = values.get("client_secret", required=False) or None
    else:
        client_secret = values.get("client_secret")
    scope = auth.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(item) for item in scope)
    if scope:
        grant["scope"] = str(scope)
    client_auth = auth.get("client_auth", "body")
    if client_auth not in ("body", "basic"):
        raise SourceUnavailable(
            f"http system {values.system_id!r}: `auth.client_auth` must be body or"
            f" basic, got {client_auth!r}"
        )
    return OAuth2Authenticator(
        token_url=token_url,
        grant=grant,
        client_id=values.get("client_id"),
        client_secret=client_secret,
        client_auth=client_auth,
        post=post,
        clock=clock,
    )


class _AuthValues:
    """Reads settings of ``auth``, resolving references and naming what is missing."""

    def __init__(self, auth: dict[str, Any], system_id: str, base_dir: Path) -> None:
        self._auth = auth
        self.system_id = system_id
        self._base_dir = base_dir

    def get(self, name: str, *, required: bool = True) -> str:
        """Return the resolved setting, or "" when it is optional and not set."""
        raw = self._auth.get(name)
        where = f"http system {self.system_id!r}: `auth.{name}`"
        if raw is None and not required:
            return ""
        if not isinstance(raw, str) or not raw:
            raise SourceUnavailable(
                f"{where} is missing; set it to a reference such as"
                f" ${{env:{self.system_id.upper()}_{name.upper()}}}"
            )
        try:
            value = resolve(raw, self._base_dir)
        except UnresolvedReference as exc:
            raise SourceUnavailable(f"{where}: {exc}") from None
        if not value:
            raise SourceUnavailable(f"{where} refers to an empty value; set the"
                                    " variable or file it refers to")
        return value
