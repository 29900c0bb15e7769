"""The OpenAPI 3.1 document of the JSON API, served at ``/api/v1/openapi.json``.

Kept as Python data beside the routes in ``api.py`` so both change together;
the tests validate it with openapi-spec-validator and check real responses
against its schemas.
"""

from __future__ import annotations

import copy
from typing import Any

API_VERSION = "1.0.0"

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every failure answer.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable"
                         " code, such as not_found or rate_limited."},
                "message": {"type": "string", "description": "What failed and what"
                            " to do next."}}}},
    },
    "Counts": {
        "type": "object",
        "description": "Record counts of a run; 0 until the run ends.",
        "required": ["read", "filtered", "created", "updated", "unchanged",
                     "deleted", "failed", "seconds"],
        "properties": {
            **{name: {"type": "integer", "minimum": 0}
               for name in ("read", "filtered", "created", "updated", "unchanged",
                            "deleted", "failed")},
            "seconds": {"type": "number", "minimum": 0}},
    },
    "Run": {
        "type": "object",
        "description": "One run of a flow.",
        "required": ["id", "flow", "status", "counts", "queued_at", "started_at",
                     "finished_at", "message", "retry_of"],
        "properties": {
            "id": {"type": "string"},
            "flow": {"type": "string"},
            "status": {"enum": ["queued", "running", "succeeded", "failed",
                                "interrupted"]},
            "counts": _ref("Counts"),
            "queued_at": {"type": "string", "format": "date-time"},
            "started_at": _TIME,
            "finished_at": _TIME,
            "message": _NULLABLE_STRING,
            "retry_of": {**_NULLABLE_STRING, "description": "The run this one"
                         " retries."},
            "trigger": {"enum": ["api", "retry", "webhook", "cli"],
                        "description": "What queued the run."},
        },
    },
    "RunAnswer": {
        "type": "object",
        "required": ["run"],
        "properties": {"run": _ref("Run"),
                       "reused": {"type": "boolean", "description": "True when the"
                                  " flow already had this run queued or running."}},
    },
    "Trigger": {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": ["manual", "schedule", "webhook"]},
                       "schedule": {"type": "string"},
                       "system": {"type": "string"},
                       "event": {"type": "string"}},
    },
    "Flow": {
        "type": "object",
        "required": ["id", "description", "trigger", "last_run"],
        "properties": {"id": {"type": "string"},
                       "description": _NULLABLE_STRING,
                       "trigger": _ref("Trigger"),
                       "last_run": {"oneOf": [_ref("Run"), {"type": "null"}]}},
    },
    "RecordError": {
        "type": "object",
        "description": "One failed record of a run.",
        "required": ["id", "record_key", "field", "code", "message", "raw",
                     "position"],
        "properties": {"id": {"type": "string"},
                       "record_key": _NULLABLE_STRING,
                       "field": _NULLABLE_STRING,
                       "code": {"type": "string"},
                       "message": {"type": "string"},
                       "raw": _NULLABLE_STRING,
                       "position": _NULLABLE_STRING},
    },
    "ErrorPage": {
        "type": "object",
        "required": ["errors", "page", "per_page", "total"],
        "properties": {"errors": {"type": "array", "items": _ref("RecordError")},
                       "page": {"type": "integer", "minimum": 1},
                       "per_page": {"type": "integer", "minimum": 1},
                       "total": {"type": "integer", "minimum": 0}},
    },
    "RetryRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"error_ids": {
            "type": "array", "items": {"type": "string"}, "minItems": 1,
            "description": "Errors to retry; every error of the run when left"
                           " out."}},
    },
    "WebhookAnswer": {
        "type": "object",
        "required": ["received", "new", "duplicates", "runs"],
        "properties": {"received": {"type": "integer"},
                       "new": {"type": "integer"},
                       "duplicates": {"type": "integer", "description": "Events"
                                      " whose id was received before."},
                       "runs": {"type": "array", "items": _ref("Run")}},
    },
}

def _response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                "description": "Seconds to wait before sending"
                                               " again."}}
_RESPONSES: dict[str, Any] = {
    "Unauthorized": {
        **_error("Missing, unknown or invalid ID token or API key."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                         "description": "Bearer realm=\"syncplan\""}}},
    "Forbidden": _error("The caller may not use this flow, or the run belongs to"
                        " a flow the caller may not use."),
    "RateLimited": {
        **_error("Too many requests. Each API key, each Google account and each"
                 " webhook system has its own token bucket; failed attempts spend"
                 " the client address's bucket. Buckets are kept per server"
                 " process, so with N processes a caller gets up to N times the"
                 " limit. Nothing was started, retried or recorded."),
        "headers": _RETRY_AFTER},
    "CertificatesUnavailable": _error(
        "certificates_unavailable: a Google ID token was sent, and Google's"
        " certificates to verify it could not be fetched; try again shortly."),
    "PayloadTooLarge": _error("The body is larger than the server's limit"
                              " (1 MiB by default)."),
    "UnsupportedMediaType": _error("A non-empty body was sent with a Content-Type"
                                   " other than application/json."),
    "InternalError": _error("An unexpected error; the message carries only a"
                            " request id, under which the server log has the"
                            " details."),
    "MethodNotAllowed": {
        **_error("The path does not take this method. The Allow header lists"
                 " the methods it takes."),
        "headers": {"Allow": {"schema": {"type": "string"}}}},
}
# Every operation that needs an API key or an ID token can return these.
_AUTHENTICATED = {"401": _response("Unauthorized"), "429": _response("RateLimited"),
                  "500": _response("InternalError"),
                  "503": _response("CertificatesUnavailable")}
_RUN_ID = {"name": "run_id", "in": "path", "required": True,
           "schema": {"type": "string"}}

_PATHS: dict[str, Any] = {
    "/flows": {"get": {
        "operationId": "listFlows",
        "summary": "List the flows the caller may see, with their last run.",
        "description": "A flow's last run is its latest run queued through this"
                       " API, or a later run started from the command line on"
                       " the same state file (trigger cli).",
        "responses": {
            "200": _json({"type": "object", "required": ["flows"],
                          "properties": {"flows": {"type": "array",
                                                   "items": _ref("Flow")}}},
                         "The flows."),
            **_AUTHENTICATED}}},
    "/flows/{flow_id}/runs": {"post": {
        "operationId": "startRun",
        "summary": "Queue a run of a flow; one run per flow at a time.",
        "parameters": [{"name": "flow_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": {"type": "object", "additionalProperties": False}}}},
        "responses": {
            "202": _json(_ref("RunAnswer"), "A new run was queued."),
            "200": _json(_ref("RunAnswer"), "The flow already had a queued or"
                         " running run; that run is returned and nothing new"
                         " starts."),
            "400": _error("The body is not JSON (invalid_json) or not an empty"
                          " object (invalid_body)."),
            "403": _response("Forbidden"),
            "404": _error("No such flow."),
            "413": _response("PayloadTooLarge"),
            "415": _response("UnsupportedMediaType"),
            **_AUTHENTICATED}}},
    "/runs/{run_id}": {"get": {
        "operationId": "getRun",
        "summary": "Status and counts of a run.",
        "parameters": [_RUN_ID],
        "responses": {"200": _json(_ref("RunAnswer"), "The run."),
                      "403": _response("Forbidden"),
                      "404": _error("No such run."), **_AUTHENTICATED}}},
    "/runs/{run_id}/errors": {"get": {
        "operationId": "listRunErrors",
        "summary": "The failed records of a run, a page at a time.",
        "parameters": [
            _RUN_ID,
            {"name": "page", "in": "query", "schema": {"type": "integer",
                                                       "minimum": 1, "default": 1}},
            {"name": "per_page", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                        "default": 50}}],
        "responses": {"200": _json(_ref("ErrorPage"), "One page of errors."),
                      "400": _error("Invalid page or per_page."),
                      "403": _response("Forbidden"),
                      "404": _error("No such run."), **_AUTHENTICATED}}},
    "/runs/{run_id}/retry": {"post": {
        "operationId": "retryRun",
        "summary": "Queue a retry of the failed records of a run (all by default);"
                   " an interrupted run is run again whole.",
        "parameters": [_RUN_ID],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": _ref("RetryRequest")}}},
        "responses": {
            "202": _json(_ref("RunAnswer"), "The retry was queued."),
            "400": _error("Invalid body or unknown error id."),
            "403": _response("Forbidden"),
            "404": _error("No such run, or its flow is no longer in the spec."),
            "409": _error("The run or its flow is still active, or there is"
                          " nothing to retry."),
            "413": _response("PayloadTooLarge"),
            "415": _response("UnsupportedMediaType"),
            **_AUTHENTICATED}}},
    "/hooks/{system}": {"post": {
        "operationId": "receiveWebhook",
        "summary": "Webhook intake of a system, checked by the vendor's signature;"
                   " each event id is processed once.",
        "security": [],
        "parameters": [{"name": "system", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [{"type": "object"},
                                 {"type": "array", "items": {"type": "object"}}]}}}},
        "responses": {
            "202": _json(_ref("WebhookAnswer"), "The events were stored; runs"
                         " start asynchronously."),
            "400": _error("Malformed JSON or an event without an id."),
            "401": _error("Bad signature or stale timestamp."),
            "404": _error("The system declares no webhook."),
            "413": _response("PayloadTooLarge"),
            "429": _response("RateLimited"),
            "500": _response("InternalError"),
            "503": _error("webhook_misconfigured: the system's webhook secret is"
                          " not set on this server, or its signature scheme is"
                          " unknown.")}}},
    "/openapi.json": {"get": {
        "operationId": "getOpenApi",
        "summary": "This document.",
        "security": [],
        "responses": {"200": {"description": "The OpenAPI document.",
                              "content": {"application/json": {}}},
                      "500": _response("InternalError")}}},
    "/healthz": {
        "servers": [{"url": "/"}],
        "get": {
            "operationId": "getHealth",
            "summary": "Liveness check, outside /api/v1.",
            "security": [],
            "responses": {"200": _json({"type": "object", "required": ["status"],
                                        "properties": {"status": {"const": "ok"}}},
                                       "The server is up."),
                          "500": _response("InternalError")}}},
}

_DESCRIPTION = """\
Start and watch syncplan flows from the Google Sheets add-on or another server;
receive vendor webhooks.

Every failure returns JSON `{"error": {"code", "message"}}` (schema `Error`).
A method a path does not list answers 405 with an `Allow` header (response
`MethodNotAllowed`), and an unknown path answers 404. `HEAD` is answered for
every `GET` and `OPTIONS` for every path, without authentication.

Rate limits are token buckets kept in the memory of each server process, so
behind several processes a caller gets up to that many times the limit."""

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "syncplan backend", "version": API_VERSION,
             "description": _DESCRIPTION},
    "servers": [{"url": "/api/v1"}],
    "security": [{"googleIdToken": []}, {"apiKey": []}],
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "responses": _RESPONSES,
        "securitySchemes": {
            "googleIdToken": {"type": "http", "scheme": "bearer",
                              "bearerFormat": "JWT",
                              "description": "Google ID token from"
                                             " ScriptApp.getIdentityToken()."},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                       "description": "Key made with 'syncplan keys create'."}}},
}


def openapi_document() -> dict[str, Any]:
    """Return a copy of the OpenAPI document."""
    return copy.deepcopy(_DOCUMENT)
