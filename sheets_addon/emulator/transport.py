"""Send gspread's Google-bound requests to the loopback emulator.

gspread 6.x builds absolute URLs from constants in ``gspread.urls``
(``https://sheets.googleapis.com/v4/spreadsheets...`` and
``https://www.googleapis.com/drive/v3/files...``) and sends them through the
``requests.Session`` handed to ``gspread.Client(auth=None, session=...)``.
:class:`LoopbackAdapter` is mounted on that session for every scheme: it
rewrites those two hosts to ``http://127.0.0.1:PORT`` and raises
:class:`BlockedRequestError` for any other destination, so no request can
leave the machine.  Nothing in gspread is patched.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

# Hosts whose requests are redirected to the emulator.
GOOGLE_API_HOSTS = frozenset({"sheets.googleapis.com", "www.googleapis.com"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class BlockedRequestError(requests.exceptions.RequestException):
    """A request aimed somewhere other than the emulator was stopped."""


class LoopbackAdapter(HTTPAdapter):
    """Transport adapter that only ever connects to the emulator's port."""

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_host = host
        self.target_port = port

    def rewrite(self, url: str) -> str:
        """Return the loopback URL for ``url``; raise if it may not be sent."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host in GOOGLE_API_HOSTS:
            netloc = f"{self._netloc_host()}:{self.target_port}"
            return urlunsplit(("http", netloc, parts.path, parts.query, ""))
        if host in LOOPBACK_HOSTS and parts.port == self.target_port:
            return url
        raise BlockedRequestError(
            f"Request to {url!r} blocked: the emulator session only sends to "
            f"{', '.join(sorted(GOOGLE_API_HOSTS))} (redirected to port {self.target_port}). "
            "Point the code at the emulator or use another session."
        )

    def _netloc_host(self) -> str:
        return f"[{self.target_host}]" if ":" in self.target_host else self.target_host

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        original = request.url or ""
        request.url = self.rewrite(original)
        logger.debug("routing %s %s to %s", request.method, original, request.url)
        response = super().send(request, **kwargs)
        # Callers (and gspread's error messages) see the URL they asked for.
        response.url = original
        return response


class EmulatorSession(requests.Session):
    """A ``requests.Session`` wired to the emulator with a bearer token.

    Every scheme is mounted on :class:`LoopbackAdapter`, including plain
    ``http://`` and ``https://`` prefixes, so no other adapter can be used.
    """

    def __init__(self, host: str, port: int, token: str | None = "emulator-token") -> None:
        self._sealed = False
        super().__init__()
        self.trust_env = False
        adapter = LoopbackAdapter(host, port)
        for default_adapter in self.adapters.values():
            default_adapter.close()
        self.adapters.clear()
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self._sealed = True
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def mount(self, prefix: str, adapter: Any) -> None:  # type: ignore[override]
        # requests.Session.__init__ mounts its defaults before they are replaced.
        if self._sealed and not isinstance(adapter, LoopbackAdapter):
            raise BlockedRequestError(
                f"Mounting {type(adapter).__name__} on {prefix!r} is not allowed on an emulator "
                "session; it would let requests leave loopback."
            )
        super().mount(prefix, adapter)
