"""The OpenAPI document against the code: routes, methods, and every error status.

One live backend (Google sign-in through a loopback token issuer, plus an API
key) serves every case. Each row of ``ERROR_CASES`` provokes one error of one
operation. The tests check that the status is documented for that operation and
that the body matches the ``Error`` schema. They also check that the table and
the document list the same statuses. The statuses the server code can raise are read from
its source, so a new one without a row fails here too.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import hmac
import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import sheets_addon.server.api as api_module
from sheets_addon.server import create_app
from sheets_addon.server.auth import GoogleTokenVerifier
from sheets_addon.server.openapi import openapi_document
from sheets_addon.server.ratelimit import RateLimiter
from support import (
    HOOK_SECRET_ENV,
    LiveServer,
    open_gate,
    server_env,
    write_server_project,
)
from support.google_tokens import TokenIssuer

SERVER_SOURCES = Path(api_module.__file__).parent
DOCUMENT = openapi_document()
API_PREFIX = "/api/v1"
PARTNER = "lee@partner.example"  # may use flow rows only, by domain
FINAL = ("succeeded", "failed", "interrupted")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclasses.dataclass
class Live:
    """The running backend, the callers, and runs made for the cases."""

    server: LiveServer
    backend: Any
    app: Any
    issuer: TokenIssuer
    root: Path
    key: str
    partner_token: str
    rows_run: str = ""
    private_run: str = ""
    slow_run: str = ""

    def call(self, method: str, path: str, *, auth: str | None = "key",
             **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if auth == "key":
            headers["X-Api-Key"] = self.key
        elif auth == "partner":
            headers["Authorization"] = f"Bearer {self.partner_token}"
        return requests.request(method, self.server.url(API_PREFIX + path),
                                headers=headers, timeout=10, **kwargs)

    def wait(self, run_id: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.call("GET", f"/runs/{run_id}").json()["run"]["status"] in FINAL:
                return
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not end within 20 s")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    saved = {name: os.environ.get(name) for name in server_env()}
    os.environ.update(server_env())
    root = write_server_project(tmp_path_factory.mktemp("openapi") / "project")
    issuer = TokenIssuer().start()
    app = create_app(root, oauth_client_id=issuer.audience,
                     certs_url=issuer.certs_url, poll_seconds=0.2,
                     rate_limit_burst=10_000)
    backend = app.extensions["syncplan"]
    _record, key = backend.store.create_api_key("openapi")
    live = Live(LiveServer(app).start(), backend, app, issuer, root, key,
                issuer.token(PARTNER))
    try:
        live.rows_run = live.call("POST", "/flows/rows/runs").json()["run"]["id"]
        live.private_run = live.call("POST", "/flows/private/runs").json()["run"]["id"]
        live.wait(live.rows_run)
        live.wait(live.private_run)
        live.slow_run = live.call("POST", "/flows/slow/runs").json()["run"]["id"]
        yield live
    finally:
        live.server.stop()
        open_gate(root)
        backend.close(wait_seconds=5)
        issuer.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def error_validator() -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource("urn:openapi",
                                        DRAFT202012.create_resource(DOCUMENT))
    return jsonschema.Draft202012Validator(
        {"$ref": "urn:openapi#/components/schemas/Error"}, registry=registry)


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Return operationId -> (path, method, operation) from the document."""
    found = {}
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found[operation["operationId"]] = (path, method.upper(), operation)
    return found


def resolved_response(operation: dict[str, Any], status: int) -> dict[str, Any]:
    response = operation["responses"][str(status)]
    reference = response.get("$ref")
    if reference is None:
        return response
    return DOCUMENT["components"]["responses"][reference.rsplit("/", 1)[1]]


def url_path(path: str) -> str:
    """Return the URL path of a document path, with its servers applied."""
    servers = DOCUMENT["paths"][path].get("servers", DOCUMENT["servers"])
    base = servers[0]["url"].rstrip("/")
    return base + path


def broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("deliberate failure for the 500 case")


def signed_hook(live: Live, body: bytes, system: str = "hooks") -> requests.Response:
    signature = hmac.new(server_env()[HOOK_SECRET_ENV].encode(), body,
                         hashlib.sha256).hexdigest()
    return requests.post(live.server.url(f"{API_PREFIX}/hooks/{system}"), data=body,
                         headers={"X-Signature": signature}, timeout=10)


def limited(live: Live, patch: pytest.MonkeyPatch, bucket: str) -> None:
    """Swap in a limiter whose ``bucket`` is empty for 1,000 s."""
    limiter = RateLimiter(1, 0.001)
    limiter.take(bucket)
    patch.setattr(live.backend, "limiter", limiter)


def key_bucket(live: Live) -> str:
    return "api_key:" + live.key.split("_")[1]


def dead_certificates(live: Live, patch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    patch.setattr(live.backend, "verifier", GoogleTokenVerifier(
        live.issuer.audience, f"http://127.0.0.1:{port}/certs"))


Case = Callable[[Live, pytest.MonkeyPatch], requests.Response]
BIG = b"[" + b"0," * (1024 * 1024) + b"0]"
HOOK_BODY = json.dumps({"meta": {"id": "case", "type": "deal.created"}}).encode()


def authenticated_cases(operation: str, method: str, path: Callable[[Live], str],
                        store_method: str) -> list[tuple[str, int, str, Case]]:
    """Return the cases every authenticated operation shares."""
    return [
        (operation, 401, "missing_credentials",
         lambda live, patch: live.call(method, path(live), auth=None)),
        (operation, 429, "rate_limited",
         lambda live, patch: (limited(live, patch, key_bucket(live)),
                              live.call(method, path(live)))[1]),
        (operation, 500, "internal_error",
         lambda live, patch: (patch.setattr(live.backend.store, store_method, broken),
                              live.call(method, path(live)))[1]),
        (operation, 503, "certificates_unavailable",
         lambda live, patch: (dead_certificates(live, patch),
                              live.call(method, path(live), auth="partner"))[1]),
    ]


ERROR_CASES: list[tuple[str, int, str, Case]] = [
    *authenticated_cases("listFlows", "GET", lambda live: "/flows", "last_runs"),
    *authenticated_cases("startRun", "POST", lambda live: "/flows/rows/runs",
                         "enqueue"),
    ("startRun", 400, "invalid_json",
     lambda live, patch: live.call("POST", "/flows/rows/runs", data=b"{",
                                   headers={"Content-Type": "application/json"})),
    ("startRun", 403, "forbidden",
     lambda live, patch: live.call("POST", "/flows/slow/runs", auth="partner")),
    ("startRun", 404, "not_found",
     lambda live, patch: live.call("POST", "/flows/nope/runs")),
    ("startRun", 413, "payload_too_large",
     lambda live, patch: live.call("POST", "/flows/rows/runs", data=BIG,
                                   headers={"Content-Type": "application/json"})),
    ("startRun", 415, "unsupported_media_type",
     lambda live, patch: live.call("POST", "/flows/rows/runs", data=b"a=1",
                                   headers={"Content-Type": "text/plain"})),
    *authenticated_cases("getRun", "GET", lambda live: f"/runs/{live.rows_run}",
                         "job"),
    ("getRun", 403, "forbidden",
     lambda live, patch: live.call("GET", f"/runs/{live.private_run}",
                                   auth="partner")),
    ("getRun", 404, "not_found", lambda live, patch: live.call("GET", "/runs/nope")),
    *authenticated_cases("listRunErrors", "GET",
                         lambda live: f"/runs/{live.rows_run}/errors", "error_page"),
    ("listRunErrors", 400, "bad_request",
     lambda live, patch: live.call("GET", f"/runs/{live.rows_run}/errors?page=0")),
    ("listRunErrors", 403, "forbidden",
     lambda live, patch: live.call("GET", f"/runs/{live.private_run}/errors",
                                   auth="partner")),
    ("listRunErrors", 404, "not_found",
     lambda live, patch: live.call("GET", "/runs/nope/errors")),
    *authenticated_cases("retryRun", "POST",
                         lambda live: f"/runs/{live.rows_run}/retry",
                         "enqueue_retry"),
    ("retryRun", 400, "unknown_error_id",
     lambda live, patch: live.call("POST", f"/runs/{live.rows_run}/retry",
                                   json={"error_ids": ["nope"]})),
    ("retryRun", 403, "forbidden",
     lambda live, patch: live.call("POST", f"/runs/{live.private_run}/retry",
                                   auth="partner")),
    ("retryRun", 404, "not_found",
     lambda live, patch: live.call("POST", "/runs/nope/retry")),
    ("retryRun", 409, "run_active",
     lambda live, patch: live.call("POST", f"/runs/{live.slow_run}/retry")),
    ("retryRun", 413, "payload_too_large",
     lambda live, patch: live.call("POST", f"/runs/{live.rows_run}/retry", data=BIG,
                                   headers={"Content-Type": "application/json"})),
    ("retryRun", 415, "unsupported_media_type",
     lambda live, patch: live.call("POST", f"/runs/{live.rows_run}/retry",
                                   data=b"a=1",
                                   headers={"Content-Type": "text/plain"})),
    ("receiveWebhook", 400, "invalid_json",
     lambda live, patch: signed_hook(live, b"{not json")),
    ("receiveWebhook", 401, "invalid_signature",
     lambda live, patch: live.call("POST", "/hooks/hooks", auth=None,
                                   data=HOOK_BODY,
                                   headers={"X-Signature": "00" * 32})),
    ("receiveWebhook", 404, "not_found",
     lambda live, patch: live.call("POST", "/hooks/nope", auth=None,
                                   data=HOOK_BODY)),
    ("receiveWebhook", 413, "payload_too_large",
     lambda live, patch: live.call("POST", "/hooks/hooks", auth=None, data=BIG)),
    ("receiveWebhook", 429, "rate_limited",
     lambda live, patch: (limited(live, patch, "hook:hooks"),
                          signed_hook(live, HOOK_BODY))[1]),
    ("receiveWebhook", 500, "internal_error",
     lambda live, patch: (patch.setattr(live.backend.store, "record_events", broken),
                          signed_hook(live, HOOK_BODY))[1]),
    ("receiveWebhook", 503, "webhook_misconfigured",
     lambda live, patch: (patch.delenv(HOOK_SECRET_ENV),
                          signed_hook(live, HOOK_BODY))[1]),
    ("getOpenApi", 500, "internal_error",
     lambda live, patch: (patch.setattr(api_module, "openapi_document", broken),
                          live.call("GET", "/openapi.json", auth=None))[1]),
    ("getHealth", 500, "internal_error",
     lambda live, patch: (patch.setitem(live.app.view_functions, "healthz", broken),
                          requests.get(live.server.url("/healthz"), timeout=10))[1]),
]


@pytest.mark.parametrize(("operation_id", "status", "code", "case"), ERROR_CASES,
                         ids=[f"{row[0]}-{row[1]}-{row[2]}" for row in ERROR_CASES])
def test_error_status_is_documented(live: Live, operation_id: str, status: int,
                                    code: str, case: Case) -> None:
    _path, _method, operation = operations()[operation_id]
    with pytest.MonkeyPatch.context() as patch:
        response = case(live, patch)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert str(status) in operation["responses"]
    error_validator().validate(response.json())
    for header in resolved_response(operation, status).get("headers", {}):
        assert header in response.headers, header
    # The signed deliveries of the 429, 500 and 503 cases must not be stored,
    # or the vendor's resend would count as a duplicate.
    assert "case" not in stored_event_ids(live)


def stored_event_ids(live: Live) -> set[str]:
    with sqlite3.connect(live.root / ".syncplan" / "state.db") as db:
        return {row[0] for row in db.execute("SELECT event_id FROM webhook_events")}


def test_unknown_signature_scheme_is_documented_503(live: Live) -> None:
    _path, _method, operation = operations()["receiveWebhook"]
    config = live.backend.webhooks["hooks"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(live.backend.webhooks, "hooks",
                      dataclasses.replace(config, signature="unknown_scheme"))
        response = signed_hook(live, HOOK_BODY)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "webhook_misconfigured"
    assert "503" in operation["responses"]


def test_error_cases_cover_document() -> None:
    documented = {(operation_id, int(status))
                  for operation_id, (_p, _m, operation) in operations().items()
                  for status in operation["responses"] if int(status) >= 400}
    exercised = {(row[0], row[1]) for row in ERROR_CASES}

    assert documented - exercised == set()
    assert exercised - documented == set()


def statuses_raised_in_source() -> set[int]:
    """Return the HTTP statuses the server modules pass to their error types."""
    statuses = set()
    for source in SERVER_SOURCES.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            name = node.func.id
            numbers = [arg.value for arg in node.args
                       if isinstance(arg, ast.Constant) and isinstance(arg.value, int)]
            numbers += [keyword.value.value for keyword in node.keywords
                        if keyword.arg == "status"
                        and isinstance(keyword.value, ast.Constant)]
            if name == "BadRequest" and not numbers:
                numbers = [400]
            if name in ("BadRequest", "AuthError", "WebhookRejected",
                        "error_response"):
                statuses.update(number for number in numbers if number >= 400)
    return statuses


def test_source_statuses_have_cases() -> None:
    raised = statuses_raised_in_source()
    exercised = {row[1] for row in ERROR_CASES}

    assert {400, 401, 403, 404, 409, 415, 429, 500, 503} <= raised
    assert raised - exercised == set()


# --- routes and methods ----------------------------------------------------------------


def flask_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_routes_match_document(live: Live) -> None:
    routes = {flask_path(rule.rule): set(rule.methods) - {"HEAD", "OPTIONS"}
              for rule in live.app.url_map.iter_rules()}
    documented = {url_path(path): {method.upper() for method in item
                                   if method in ("get", "post", "put", "patch",
                                                 "delete")}
                  for path, item in DOCUMENT["paths"].items()}

    assert routes == documented


def test_other_methods_are_405_with_allow(live: Live) -> None:
    for path, item in DOCUMENT["paths"].items():
        allowed = {method.upper() for method in item if method.upper() in HTTP_METHODS}
        concrete = url_path(path).replace("{flow_id}", "rows").replace(
            "{run_id}", live.rows_run).replace("{system}", "hooks")
        for method in sorted(set(HTTP_METHODS) - allowed):
            response = requests.request(method, live.server.url(concrete),
                                        headers={"X-Api-Key": live.key}, timeout=10)
            assert response.status_code == 405, (method, path)
            assert response.json()["error"]["code"] == "method_not_allowed"
            error_validator().validate(response.json())
            allow = {value.strip() for value in response.headers["Allow"].split(",")}
            assert allow - {"HEAD", "OPTIONS"} == allowed, (method, path)
    assert "MethodNotAllowed" in DOCUMENT["components"]["responses"]
    assert "405" in DOCUMENT["info"]["description"]


def test_rate_limits_documented_per_process() -> None:
    description = DOCUMENT["components"]["responses"]["RateLimited"]["description"]

    assert "per server process" in description
    assert "process" in DOCUMENT["info"]["description"]
