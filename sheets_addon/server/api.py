"""The JSON API under ``/api/v1``; ``openapi.py`` describes the same endpoints.

- ``GET /flows``: the flows the caller may see, each with its last run.
- ``POST /flows/<flow>/runs``: queue a run (202); while the flow has a queued or
  running run, return that one (200, ``"reused": true``) and queue nothing.
- ``GET /runs/<id>`` and ``GET /runs/<id>/errors?page=&per_page=``.
- ``POST /runs/<id>/retry``: queue a retry of some or all failed records (202);
  an interrupted run, or a failed one that kept no records, is run again whole.
- ``POST /hooks/<system>``: webhook deliveries, authenticated by signature.
- ``GET /openapi.json``: the OpenAPI 3.1 document, without authentication.

Every other endpoint needs an ``X-Api-Key`` or a Google ID token
(``Authorization: Bearer``); see ``auth.py`` for who may see which flow.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from compiler.plan import FlowPlan
from runtime.references import UnresolvedReference, resolve
from sheets_addon.server.app import Backend, current_backend, error_response
from sheets_addon.server.auth import AuthError, Identity, may_access
from sheets_addon.server.openapi import openapi_document
from sheets_addon.server.ratelimit import retry_after_header
from sheets_addon.server.store import ACTIVE_STATUSES, Event, FlowBusy, JobRequest
from sheets_addon.server.webhooks import (
    WebhookRejected,
    parse_events,
    verify_signature,
)

logger = logging.getLogger(__name__)

api = Blueprint("api_v1", __name__)

MAX_PER_PAGE = 500
MAX_ERROR_IDS = 10_000
Model = TypeVar("Model", bound=BaseModel)


class StartRunBody(BaseModel):
    """Body of ``POST /flows/<flow>/runs``: empty, or an empty object."""

    model_config = ConfigDict(extra="forbid")


class RetryBody(BaseModel):
    """Body of ``POST /runs/<id>/retry``."""

    model_config = ConfigDict(extra="forbid")

    error_ids: list[str] | None = Field(default=None, min_length=1,
                                        max_length=MAX_ERROR_IDS)
    """Errors to retry; all errors of the run when left out."""


class BadRequest(Exception):
    """The request is invalid; the message names the value and the fix."""

    def __init__(self, message: str, code: str = "bad_request",
                 status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@api.errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> Response:
    return error_response(exc.status, exc.code, str(exc))


@api.errorhandler(AuthError)
def _auth_error(exc: AuthError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="syncplan"'} if exc.status == 401 else {}
    return error_response(exc.status, exc.code, str(exc), headers)


# --- authentication and rate limits ---------------------------------------------


def _authenticate(backend: Backend) -> Identity:
    key = request.headers.get("X-Api-Key")
    authorization = request.headers.get("Authorization", "")
    if key:
        record = backend.store.check_api_key(key.strip())
        if record is None:
            raise AuthError(401, "invalid_api_key",
                            "the X-Api-Key is unknown or revoked; create a key with"
                            " 'syncplan keys create --name NAME'")
        return Identity(kind="api_key", subject=record.key_id, name=record.name)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        if backend.verifier is None:
            raise AuthError(401, "google_sign_in_disabled",
                            "this server runs in dev mode without an OAuth client"
                            " id, so it accepts API keys only; send X-Api-Key")
        return backend.verifier.verify(token.strip())
    raise AuthError(401, "missing_credentials",
                    "send a Google ID token as 'Authorization: Bearer <token>' or an"
                    " API key as 'X-Api-Key: <key>'")


def _rate_limited(backend: Backend, bucket: str) -> Response | None:
    wait = backend.limiter.take(bucket)
    if not wait:
        return None
    header = retry_after_header(wait)
    return error_response(429, "rate_limited",
                          f"too many requests; retry after {header} s",
                          {"Retry-After": header})


Handler = Callable[..., Any]


def authenticated(handler: Handler) -> Handler:
    """Run ``handler`` for an authenticated, not rate-limited caller (``g.identity``)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        backend = current_backend()
        try:
            identity = _authenticate(backend)
        except AuthError as exc:
            # Failed attempts spend the client address's bucket, so guessing
            # keys or replaying tokens is throttled too.
            limited = _rate_limited(backend, _address_bucket())
            if limited is not None:
                return limited
            logger.info("request %s %s rejected: %s", request.method, request.path,
                        exc.code)
            raise
        limited = _rate_limited(backend, identity.bucket)
        if limited is not None:
            logger.info("caller %s rate limited on %s", identity.label, request.path)
            return limited
        g.identity = identity
        return handler(*args, **kwargs)

    return wrapper


# --- request parsing -----------------------------------------------------------------


def _body(model: type[Model]) -> Model:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return model()
    if request.mimetype != "application/json":
        raise BadRequest(f"the body has Content-Type {request.mimetype!r}; send"
                         " application/json", "unsupported_media_type", 415)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", "invalid_json") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}:"
            f" {error['msg']}" for error in exc.errors()[:5])
        raise BadRequest(f"invalid body: {problems}", "invalid_body") from None


def _positive_query_int(name: str, default: int, maximum: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise BadRequest(f"query parameter {name}={text!r} is invalid; give a whole"
                         f" number from 1 to {maximum}")
    return int(text)


# --- helpers -------------------------------------------------------------------------


def _flow_or_404(backend: Backend, flow_id: str) -> FlowPlan:
    try:
        return backend.plan.flow(flow_id)
    except KeyError:
        raise BadRequest(f"no flow {flow_id!r}; GET /api/v1/flows lists the flows"
                         " you may start", "not_found", 404) from None


def _check_access(flow: FlowPlan) -> None:
    identity: Identity = g.identity
    if not may_access(identity, flow):
        logger.info("caller %s denied access to flow %s", identity.label, flow.id)
        raise AuthError(403, "forbidden",
                        f"{identity.label} may not use flow {flow.id!r}; ask the"
                        " owner of the spec to add you to the flow's permissions")


def _run_or_404(backend: Backend, run_id: str) -> dict[str, Any]:
    job = backend.store.job(run_id)
    if job is not None:
        return job.as_run()
    stored = backend.store.stored_run(run_id)
    if stored is None:
        raise BadRequest(f"no run {run_id!r}; take run ids from GET /api/v1/flows"
                         " or from the answer that started the run", "not_found", 404)
    return stored


def _accessible_run(backend: Backend, run_id: str) -> dict[str, Any]:
    run = _run_or_404(backend, run_id)
    try:
        flow = backend.plan.flow(run["flow"])
    except KeyError:
        if g.identity.kind != "api_key":
            raise AuthError(403, "forbidden", f"run {run_id!r} belongs to a flow"
                            " that is no longer in the spec") from None
        return run
    _check_access(flow)
    return run


def _destinations(flow: FlowPlan) -> list[str]:
    return [destination.system for destination in flow.destinations]


def _trigger(flow: FlowPlan) -> dict[str, Any]:
    return flow.trigger.model_dump(exclude_none=True)


# --- endpoints -----------------------------------------------------------------------


@api.get("/openapi.json")
def openapi() -> Any:
    return openapi_document()


@api.get("/flows")
@authenticated
def list_flows() -> Any:
    backend = current_backend()
    visible = [flow for flow in backend.plan.flows if may_access(g.identity, flow)]
    last = backend.store.last_runs(flow.id for flow in visible)
    return {"flows": [{"id": flow.id, "description": flow.description,
                       "trigger": _trigger(flow), "last_run": last.get(flow.id)}
                      for flow in visible]}


@api.post("/flows/<flow_id>/runs")
@authenticated
def start_run(flow_id: str) -> Any:
    backend = current_backend()
    flow = _flow_or_404(backend, flow_id)
    _check_access(flow)
    _body(StartRunBody)
    job, reused = backend.store.enqueue(JobRequest(
        flow=flow.id, resources=_destinations(flow),
        requested_by=g.identity.label, trigger="api"))
    if reused:
        logger.info("run of flow %s requested by %s: run %s is already %s",
                    flow.id, g.identity.label, job.run_id, job.status)
        return jsonify({"run": job.as_run(), "reused": True}), 200
    backend.pool.notify()
    logger.info("run %s of flow %s queued by %s", job.run_id, flow.id,
                g.identity.label)
    return jsonify({"run": job.as_run()}), 202


@api.get("/runs/<run_id>")
@authenticated
def get_run(run_id: str) -> Any:
    return {"run": _accessible_run(current_backend(), run_id)}


@api.get("/runs/<run_id>/errors")
@authenticated
def list_errors(run_id: str) -> Any:
    backend = current_backend()
    _accessible_run(backend, run_id)
    page = _positive_query_int("page", 1, 1_000_000)
    per_page = _positive_query_int("per_page", 50, MAX_PER_PAGE)
    errors, total = backend.store.error_page(run_id, page, per_page)
    return {"errors": errors, "page": page, "per_page": per_page, "total": total}


@api.post("/runs/<run_id>/retry")
@authenticated
def retry_run(run_id: str) -> Any:
    backend = current_backend()
    run = _accessible_run(backend, run_id)
    flow = _flow_or_404(backend, run["flow"])
    body = _body(RetryBody)
    if run["status"] in ACTIVE_STATUSES:
        raise BadRequest(f"run {run_id!r} is still {run['status']}; retry it after"
                         " it ends", "run_active", 409)
    kind = _retry_kind(backend, run, body.error_ids)
    try:
        job = backend.store.enqueue_retry(JobRequest(
            flow=flow.id, resources=_destinations(flow),
            requested_by=g.identity.label, trigger="retry", kind=kind,
            retry_of=run_id, error_ids=body.error_ids))
    except FlowBusy as busy:
        raise BadRequest(f"flow {flow.id!r} has run {busy.job.run_id!r}"
                         f" {busy.job.status}; retry after it ends", "flow_busy",
                         409) from None
    backend.pool.notify()
    logger.info("run %s of flow %s queued by %s to retry run %s (%s, %s error(s))",
                job.run_id, flow.id, g.identity.label, run_id, kind,
                "all" if body.error_ids is None else len(body.error_ids))
    return jsonify({"run": job.as_run()}), 202


def _retry_kind(backend: Backend, run: dict[str, Any],
                error_ids: list[str] | None) -> str:
    """Return retry (the failed records) or rerun (the whole flow again)."""
    known = backend.store.error_ids(run["id"])
    if error_ids is not None:
        unknown = sorted(set(error_ids) - known)
        if unknown:
            raise BadRequest(f"run {run['id']!r} has no error {unknown[0]!r}; take"
                             " the ids from GET /api/v1/runs/<id>/errors",
                             "unknown_error_id")
        return "retry"
    if run["status"] == "interrupted" or (not known and run["status"] == "failed"):
        return "rerun"
    if not known:
        raise BadRequest(f"run {run['id']!r} {run['status']} without errors, so"
                         " there is nothing to retry; start a new run instead",
                         "nothing_to_retry", 409)
    return "retry"


@api.post("/hooks/<system>")
def receive_webhook(system: str) -> Any:
    backend = current_backend()
    config = backend.webhooks.get(system)
    if config is None:
        limited = _rate_limited(backend, _address_bucket())
        if limited is not None:
            return limited
        logger.info("webhook delivery for unknown system %r rejected", system)
        raise BadRequest(f"system {system!r} declares no webhook; add 'webhook:' to"
                         " the system in the spec", "not_found", 404)
    body = request.get_data(cache=True)
    try:
        secret = resolve(config.secret, backend.root)
    except UnresolvedReference as exc:
        logger.error("webhook of system %s cannot be checked: %s", system, exc)
        return error_response(503, "webhook_misconfigured",
                              f"the webhook secret of system {system!r} is not"
                              " configured on this server")
    try:
        verify_signature(config, secret, method=request.method,
                         uri=_signed_uri(backend), body=body,
                         headers=request.headers)
    except WebhookRejected as exc:
        return _rejected_delivery(backend, system, exc)
    # The system's bucket is charged only now, after the signature check, so
    # unsigned requests cannot use it up and get genuine deliveries a 429.
    limited = _rate_limited(backend, f"hook:{system}")
    if limited is not None:
        logger.warning("webhook delivery for system %s rate limited: responded 429",
                       system)
        return limited
    try:
        events = parse_events(config, body)
    except WebhookRejected as exc:
        logger.warning("webhook delivery for system %s rejected: %s", system,
                       exc.code)
        return error_response(exc.status, exc.code, str(exc))
    return _accept_events(backend, system, events)


def _address_bucket() -> str:
    return f"addr:{request.remote_addr}"


def _rejected_delivery(backend: Backend, system: str,
                       exc: WebhookRejected) -> Response:
    if exc.status >= 500:  # the server's setup is wrong, not the sender
        logger.error("webhook of system %s cannot be checked: %s", system, exc)
        return error_response(exc.status, exc.code, str(exc))
    # Failed signatures spend the sender address's bucket, the same one that
    # failed logins spend, so guessing signatures is throttled too.
    limited = _rate_limited(backend, _address_bucket())
    if limited is not None:
        return limited
    logger.warning("webhook delivery for system %s from %s rejected: %s", system,
                   request.remote_addr, exc.code)
    return error_response(exc.status, exc.code, str(exc))


def _signed_uri(backend: Backend) -> str:
    base = backend.public_url or request.host_url.rstrip("/")
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


def _accept_events(backend: Backend, system: str, events: list[Event]) -> Any:
    flows = [flow for flow in backend.plan.flows
             if flow.trigger.kind == "webhook" and flow.trigger.system == system]
    requests_by_type: dict[str | None, list[JobRequest]] = {}
    for event_type in {event.event_type for event in events}:
        requests_by_type[event_type] = [
            JobRequest(flow=flow.id, resources=_destinations(flow),
                       requested_by=f"webhook {system}", trigger="webhook")
            for flow in flows
            if flow.trigger.event is None or flow.trigger.event == event_type]
    fresh, jobs = backend.store.record_events(system, events, requests_by_type)
    if jobs:
        backend.pool.notify()
    for event in events:
        state = "new" if event in fresh else "duplicate"
        logger.info("webhook event %s (%s) of system %s received: %s", event.event_id,
                    event.event_type, system, state)
    for job in jobs:
        logger.info("run %s of flow %s queued by webhook of system %s", job.run_id,
                    job.flow, system)
    return jsonify({"received": len(events), "new": len(fresh),
                    "duplicates": len(events) - len(fresh),
                    "runs": [job.as_run() for job in jobs]}), 202
