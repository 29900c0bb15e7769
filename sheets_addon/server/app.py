"""The Flask app factory of the backend the Google Sheets add-on calls.

``create_app(project, ...)`` compiles the spec project once, opens its state
store, starts the worker pool and returns a WSGI app serving the JSON API under
``/api/v1`` (see ``sheets_addon.server.api``) and ``/healthz``. The app refuses
to start without an OAuth client id, because the add-on's ID tokens cannot be
checked without one, unless ``dev_mode`` is set: then only API keys are
accepted and a warning is logged. Dev mode binding to loopback only is checked
by ``syncplan serve``, which has the address.

``create_app_from_env()`` reads the same settings from ``SYNCPLAN_*`` variables,
for WSGI servers that call a factory
(``waitress-serve --call sheets_addon.server:create_app_from_env``), and makes
the server's log lines reach stderr (see ``sheets_addon.server.logs``).

Every error answer is JSON ``{"error": {"code": ..., "message": ...}}``; an
unexpected exception answers 500 with a request id and is logged with its
traceback, never shown to the caller.
"""

from __future__ import annotations

import atexit
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from compiler import compile_project, format_text, has_errors
from compiler.plan import Plan
from runtime.state import StateStore
from sheets_addon.server.auth import GOOGLE_CERTS_URL, GoogleTokenVerifier
from sheets_addon.server.logs import LOG_LEVEL_ENV, configure_logging, parse_level
from sheets_addon.server.queue import RunExecutor, WorkerPool
from sheets_addon.server.ratelimit import RateLimiter
from sheets_addon.server.store import ServerStore
from sheets_addon.server.webhooks import WebhookConfig, webhook_configs

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_RATE_BURST = 120
DEFAULT_RATE_PER_SECOND = 5.0
DEFAULT_WEBHOOK_RETENTION_DAYS = 7.0
EXTENSION = "syncplan"

_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden",
                404: "not_found", 405: "method_not_allowed", 409: "conflict",
                413: "payload_too_large", 415: "unsupported_media_type",
                429: "rate_limited", 500: "internal_error",
                503: "service_unavailable"}


class ServerConfigError(Exception):
    """The server cannot start with these settings; the message names the fix."""


@dataclass
class Backend:
    """Everything the request handlers share: plan, stores, pool, auth, limits."""

    plan: Plan
    root: Path
    state: StateStore
    store: ServerStore
    pool: WorkerPool
    verifier: GoogleTokenVerifier | None
    limiter: RateLimiter
    webhooks: dict[str, WebhookConfig]
    public_url: str | None = None
    dev_mode: bool = False
    closed: bool = field(default=False)

    def close(self, wait_seconds: float = 10.0, *, abandon: bool = False) -> None:
        """Stop the workers, then close the stores; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self.pool.stop(wait_seconds, abandon=abandon)
        if not abandon:
            self.store.close()
            self.state.close()


def create_app(project: Path | str, *, state_path: Path | str | None = None,
               oauth_client_id: str | None = None, dev_mode: bool = False,
               certs_url: str = GOOGLE_CERTS_URL, workers: int = 2,
               lease_seconds: float = 30.0, poll_seconds: float = 1.0,
               rate_limit_burst: int = DEFAULT_RATE_BURST,
               rate_limit_per_second: float = DEFAULT_RATE_PER_SECOND,
               public_url: str | None = None, proxy_hops: int = 0,
               max_body_bytes: int = MAX_BODY_BYTES,
               webhook_retention_days: float = DEFAULT_WEBHOOK_RETENTION_DAYS
               ) -> Flask:
    """Build the backend app for the spec project at ``project`` and start its workers.

    ``state_path`` defaults to ``.syncplan/state.db`` in the project.
    ``public_url`` is the scheme and host callers use (such as
    ``https://sync.agency.example``); webhook signatures that cover the URL are
    checked against it, and without it against the request's own URL.
    ``proxy_hops`` trusts that many reverse proxies' ``X-Forwarded-*`` headers.
    Webhook event ids are kept ``webhook_retention_days``; a delivery repeated
    within that window starts nothing.
    Call ``app.extensions["syncplan"].close()`` to stop the workers.
    """
    if not oauth_client_id and not dev_mode:
        raise ServerConfigError(
            "no OAuth client id: the add-on's Google ID tokens cannot be verified"
            " without one; pass the add-on's client id (--client-id or"
            " SYNCPLAN_OAUTH_CLIENT_ID), or set dev mode explicitly to accept API"
            " keys only")
    if webhook_retention_days <= 0:
        raise ServerConfigError(f"webhook retention of {webhook_retention_days!r}"
                                " days is invalid; give a positive number of days")
    plan, root = _compile(Path(project))
    state_file = Path(state_path) if state_path else root / ".syncplan" / "state.db"
    state = StateStore(state_file)
    store = ServerStore(state_file,
                        webhook_retention_seconds=webhook_retention_days * 86400)
    pool = WorkerPool(store, state, RunExecutor(plan, root, state), workers=workers,
                      lease_seconds=lease_seconds, poll_seconds=poll_seconds)
    backend = Backend(
        plan=plan, root=root, state=state, store=store, pool=pool,
        verifier=GoogleTokenVerifier(oauth_client_id, certs_url)
        if oauth_client_id else None,
        limiter=RateLimiter(rate_limit_burst, rate_limit_per_second),
        webhooks=webhook_configs(plan), public_url=public_url.rstrip("/")
        if public_url else None, dev_mode=dev_mode)
    if dev_mode:
        logger.warning("dev mode: Google ID tokens are not accepted, only API keys;"
                       " never expose this server beyond loopback")
    app = _flask_app(backend, max_body_bytes)
    if proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxy_hops,  # type: ignore[method-assign]
                                x_proto=proxy_hops, x_host=proxy_hops)
    pool.start()
    logger.info("serving project %r (%d flow(s)) with state %s", plan.project,
                len(plan.flows), state_file)
    return app


def create_app_from_env() -> Flask:
    """Build the app from ``SYNCPLAN_*`` environment variables (for WSGI servers).

    ``SYNCPLAN_PROJECT`` (required), ``SYNCPLAN_STATE``,
    ``SYNCPLAN_OAUTH_CLIENT_ID``, ``SYNCPLAN_DEV`` (1 for dev mode),
    ``SYNCPLAN_WORKERS``, ``SYNCPLAN_PUBLIC_URL``, ``SYNCPLAN_PROXY_HOPS``,
    ``SYNCPLAN_RATE_LIMIT_BURST``, ``SYNCPLAN_RATE_LIMIT_PER_SECOND``,
    ``SYNCPLAN_GOOGLE_CERTS_URL``, ``SYNCPLAN_WEBHOOK_RETENTION_DAYS``,
    ``SYNCPLAN_LOG_LEVEL`` (INFO by default).

    WSGI servers leave the root logger unconfigured, so this adds a stderr
    handler to the package loggers unless a handler already takes their records.
    """
    try:
        configure_logging(parse_level(os.environ.get(LOG_LEVEL_ENV)))
    except ValueError as exc:
        raise ServerConfigError(str(exc)) from None
    project = os.environ.get("SYNCPLAN_PROJECT")
    if not project:
        raise ServerConfigError("SYNCPLAN_PROJECT is not set; set it to the spec"
                                " project folder to serve")
    app = create_app(
        project,
        state_path=os.environ.get("SYNCPLAN_STATE") or None,
        oauth_client_id=os.environ.get("SYNCPLAN_OAUTH_CLIENT_ID") or None,
        dev_mode=os.environ.get("SYNCPLAN_DEV", "") in ("1", "true", "yes"),
        certs_url=os.environ.get("SYNCPLAN_GOOGLE_CERTS_URL") or GOOGLE_CERTS_URL,
        workers=_env_int("SYNCPLAN_WORKERS", 2),
        rate_limit_burst=_env_int("SYNCPLAN_RATE_LIMIT_BURST", DEFAULT_RATE_BURST),
        rate_limit_per_second=_env_float("SYNCPLAN_RATE_LIMIT_PER_SECOND",
                                         DEFAULT_RATE_PER_SECOND),
        public_url=os.environ.get("SYNCPLAN_PUBLIC_URL") or None,
        proxy_hops=_env_int("SYNCPLAN_PROXY_HOPS", 0),
        webhook_retention_days=_env_float("SYNCPLAN_WEBHOOK_RETENTION_DAYS",
                                          DEFAULT_WEBHOOK_RETENTION_DAYS))
    backend: Backend = app.extensions[EXTENSION]
    atexit.register(backend.close)
    return app


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ServerConfigError(f"{name}={text!r} is not a whole number; set it to"
                                " one or unset it") from None


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ServerConfigError(f"{name}={text!r} is not a number; set it to one"
                                " or unset it") from None


def _compile(project: Path) -> tuple[Plan, Path]:
    result = compile_project(project)
    if result.plan is None or has_errors(result.diagnostics):
        raise ServerConfigError(f"the spec at {str(project)!r} has errors, so the"
                                " server cannot start:\n"
                                + format_text(result.diagnostics))
    assert result.root is not None
    return result.plan, result.root


def _flask_app(backend: Backend, max_body_bytes: int) -> Flask:
    from sheets_addon.server.api import api  # the routes need the app's helpers

    app = Flask(__name__, static_folder=None)  # an API serves no files
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = backend
    app.register_blueprint(api, url_prefix="/api/v1")
    app.before_request(_assign_request_id)
    app.after_request(_add_request_id)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app


def current_backend() -> Backend:
    from flask import current_app

    return current_app.extensions[EXTENSION]


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """Return the JSON error response every failure of the API uses."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _assign_request_id() -> None:
    g.request_id = uuid.uuid4().hex[:16]


def _add_request_id(response: Response) -> Response:
    response.headers["X-Request-Id"] = getattr(g, "request_id", "")
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = {405: f"method {request.method} is not allowed on {request.path};"
                    " see /api/v1/openapi.json for the methods",
               404: f"no endpoint {request.path}; see /api/v1/openapi.json",
               413: "the request body is larger than the limit of"
                    f" {request.max_content_length or MAX_BODY_BYTES} bytes; send"
                    " a smaller body"}.get(status, exc.description or exc.name)
    response = error_response(status, _ERROR_CODES.get(status, "error"), message)
    if status == 405 and exc.get_response().headers.get("Allow"):
        response.headers["Allow"] = exc.get_response().headers["Allow"]
    return response


def _unexpected_error(exc: Exception) -> Response:
    request_id = getattr(g, "request_id", "-")
    logger.exception("request %s %s %s failed", request_id, request.method,
                     request.path)
    return error_response(500, "internal_error",
                          f"internal error; the server log has the details under"
                          f" request id {request_id}")
