"""A loopback stand-in for Google's ID token issuer, for tests of token checks.

``TokenIssuer`` generates an RSA key and a self-signed certificate for it, serves
the certificate the way https://www.googleapis.com/oauth2/v1/certs does (a JSON
object ``{key id: PEM certificate}`` with a ``Cache-Control: max-age`` header)
from an HTTP server on 127.0.0.1, and signs ID tokens with that key. A backend
configured with ``issuer.certs_url`` then verifies those tokens through its real
code path, signature check included.

Usage::

    with TokenIssuer() as issuer:
        app = create_app(project, oauth_client_id=issuer.audience,
                         certs_url=issuer.certs_url)
        token = issuer.token(email="ana@agency.example")
        expired = issuer.token(exp=int(time.time()) - 60)
        forged = issuer.forged_token()     # right key id, wrong key
        assert issuer.fetches == 1         # how often the certificates were read

The API (``TokenIssuer(...)``, ``start``/``stop`` or ``with``, ``certs_url``,
``audience``, ``fetches``, ``token``, ``forged_token``) is kept stable because
tests outside this module build on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

DEFAULT_AUDIENCE = "syncplan-test.apps.googleusercontent.com"
DEFAULT_EMAIL = "ana@agency.example"
GOOGLE_ISSUER = "https://accounts.google.com"
TOKEN_LIFETIME_SECONDS = 3600


class _Key:
    """An RSA key pair with a self-signed certificate and a google-auth signer."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        self.signer = crypt.RSASigner.from_string(pem, key_id=kid)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncplan test")])
        now = dt.datetime.now(dt.timezone.utc)
        certificate = (x509.CertificateBuilder()
                       .subject_name(name).issuer_name(name)
                       .public_key(private.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - dt.timedelta(days=1))
                       .not_valid_after(now + dt.timedelta(days=30))
                       .sign(private, hashes.SHA256()))
        self.certificate_pem = certificate.public_bytes(
            serialization.Encoding.PEM).decode("ascii")


class TokenIssuer:
    """Sign Google-style ID tokens and serve the certificates that verify them.

    ``max_age`` is the ``Cache-Control: max-age`` (seconds) sent with the
    certificates; ``audience`` is the default ``aud`` claim, the OAuth client id
    the backend under test must be configured with.
    """

    def __init__(self, *, audience: str = DEFAULT_AUDIENCE, max_age: int = 3600,
                 kid: str = "syncplan-test-key") -> None:
        self.audience = audience
        self.max_age = max_age
        self._key = _Key(kid)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._fetches = 0

    # --- lifecycle --------------------------------------------------------

    def start(self) -> TokenIssuer:
        """Start the certificate server on a free loopback port."""
        if self._server is not None:
            return self
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                issuer._serve_certs(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="token-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the certificate server; tokens already signed stay valid."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> TokenIssuer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what tests read --------------------------------------------------

    @property
    def certs_url(self) -> str:
        """URL of the certificates, ``http://127.0.0.1:PORT/oauth2/v1/certs``."""
        if self._server is None:
            raise RuntimeError("the TokenIssuer is not started; call start() or use"
                               " it in a with block first")
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/v1/certs"

    @property
    def fetches(self) -> int:
        """Number of times the certificates were requested since start."""
        with self._lock:
            return self._fetches

    @property
    def kid(self) -> str:
        """Key id in the header of every token this issuer signs."""
        return self._key.kid

    def claims(self, email: str | None = DEFAULT_EMAIL, audience: str | None = None,
               **overrides: Any) -> dict[str, Any]:
        """Return the claims ``token`` would sign; None (email or override) drops one."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": GOOGLE_ISSUER,
            "aud": audience or self.audience,
            "azp": audience or self.audience,
            "sub": hashlib.sha256((email or "").encode("utf-8")).hexdigest()[:21],
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, email: str | None = DEFAULT_EMAIL, audience: str | None = None,
              **overrides: Any) -> str:
        """Sign an ID token for ``email`` (None: no email claim); overrides replace claims.

        For example ``iss="evil.example"``, ``exp=int(time.time()) - 60`` or
        ``email_verified=False``; ``name=None`` leaves the claim ``name`` out.
        """
        payload = self.claims(email, audience, **overrides)
        return jwt.encode(self._key.signer, payload).decode("ascii")

    def forged_token(self, email: str | None = DEFAULT_EMAIL,
                     audience: str | None = None,
                     **overrides: Any) -> str:
        """Sign a token with another key under this issuer's key id: a bad signature."""
        other = _Key(self._key.kid)
        payload = self.claims(email, audience, **overrides)
        return jwt.encode(other.signer, payload).decode("ascii")

    # --- the certificate endpoint -----------------------------------------

    def _serve_certs(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.split("?")[0] != "/oauth2/v1/certs":
            handler.send_error(404)
            return
        with self._lock:
            self._fetches += 1
        body = json.dumps({self._key.kid: self._key.certificate_pem}).encode("utf-8")
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Cache-Control",
                            f"public, max-age={self.max_age}, must-revalidate,"
                            " no-transform")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
