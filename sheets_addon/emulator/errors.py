"""Google API error bodies returned by the emulator.

Every failure the emulator responds with is an :class:`ApiError`: an HTTP status
plus the JSON body Google sends for it, ``{"error": {"code", "message",
"status", "details"?}}``.  The factories below reproduce the messages of the
real Sheets API v4 and Drive v3 so that client code parsing them (gspread's
``APIError``, retry loops reading ``status``/``reason``) behaves as it would in
production.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

# gRPC status names by HTTP code, as Google's JSON error mapping uses them.
STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
HELP_TYPE = "type.googleapis.com/google.rpc.Help"

SHEETS_SERVICE = "sheets.googleapis.com"


class ApiError(Exception):
    """An error response: HTTP status, Google JSON body and extra headers."""

    def __init__(
        self,
        code: int,
        message: str,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, "UNKNOWN")
        self.details = details
        self.headers = dict(headers or {})
        self._body = body

    def body(self) -> dict[str, Any]:
        """Return the JSON body Google sends for this error."""
        if self._body is not None:
            return self._body
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def invalid_argument(message: str) -> ApiError:
    """Build a 400 INVALID_ARGUMENT error with ``message``."""
    return ApiError(400, message)


def invalid_field_value(field: str, value: Any) -> ApiError:
    """Build the 400 Google sends when a JSON field has the wrong type."""
    rendered = value if isinstance(value, str) else repr(value)
    message = (
        f"Invalid value at '{field}' "
        f'(type.googleapis.com/google.protobuf.ListValue), "{rendered}"'
    )
    details = [
        {
            "@type": BAD_REQUEST_TYPE,
            "fieldViolations": [{"field": field, "description": message}],
        }
    ]
    return ApiError(400, message, details=details)


def unable_to_parse_range(range_text: str) -> ApiError:
    """Build the 400 for a range naming no sheet, named range or cells."""
    return ApiError(400, f"Unable to parse range: {range_text}")


def exceeds_grid_limits(range_a1: str, row_count: int, column_count: int) -> ApiError:
    """Build the 400 for a write outside a sheet's rows or columns."""
    return ApiError(
        400,
        f"Range ({range_a1}) exceeds grid limits. "
        f"Max rows: {row_count}, max columns: {column_count}",
    )


def spreadsheet_not_found() -> ApiError:
    """Build the 404 for an unknown spreadsheet id."""
    return ApiError(404, "Requested entity was not found.")


def drive_file_not_found(file_id: str) -> ApiError:
    """Build Drive v3's 404 body, which uses the legacy ``errors`` list."""
    message = f"File not found: {file_id}."
    body = {
        "error": {
            "code": 404,
            "message": message,
            "errors": [
                {
                    "message": message,
                    "domain": "global",
                    "reason": "notFound",
                    "location": "fileId",
                    "locationType": "parameter",
                }
            ],
        }
    }
    return ApiError(404, message, body=body)


def unauthenticated(method_name: str) -> ApiError:
    """Build the 401 Google sends for a request without credentials."""
    message = (
        "Request is missing required authentication credential. Expected OAuth 2 "
        "access token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    )
    details = [
        {
            "@type": ERROR_INFO_TYPE,
            "reason": "CREDENTIALS_MISSING",
            "domain": "googleapis.com",
            "metadata": {"method": method_name, "service": SHEETS_SERVICE},
        }
    ]
    return ApiError(401, message, details=details)


def unimplemented(feature: str) -> ApiError:
    """Build a 501 for an API feature the emulator does not implement."""
    return ApiError(
        501,
        f"The Sheets emulator does not implement {feature}. Use the real API for it, "
        "or extend sheets_addon.emulator.",
    )


def quota_exceeded(
    operation: str,
    scope: str,
    project_number: str,
    retry_after: int | None = None,
) -> ApiError:
    """Build Google's 429 RESOURCE_EXHAUSTED quota body.

    ``operation`` is ``"read"`` or ``"write"``; ``scope`` is ``"user"`` (the
    per-user-per-project limit, 60 requests a minute by default) or
    ``"project"`` (300 a minute).  The message and ErrorInfo metadata follow
    what the live Sheets API returns for those two limits.
    """
    if operation not in ("read", "write"):
        raise ValueError(f"quota operation {operation!r} is invalid; use 'read' or 'write'")
    if scope not in ("user", "project"):
        raise ValueError(f"quota scope {scope!r} is invalid; use 'user' or 'project'")
    title = operation.capitalize()
    if scope == "user":
        limit_text = f"{title} requests per minute per user"
        limit_name = f"{title}RequestsPerMinutePerUser"
        limit_value = "60"
    else:
        limit_text = f"{title} requests per minute"
        limit_name = f"{title}RequestsPerMinutePerProject"
        limit_value = "300"
    message = (
        f"Quota exceeded for quota metric '{title} requests' and limit "
        f"'{limit_text}' of service '{SHEETS_SERVICE}' for consumer "
        f"'project_number:{project_number}'."
    )
    details = [
        {
            "@type": ERROR_INFO_TYPE,
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "quota_location": "global",
                "quota_metric": f"{SHEETS_SERVICE}/{operation}_requests",
                "quota_limit": limit_name,
                "quota_limit_value": limit_value,
                "service": SHEETS_SERVICE,
                "consumer": f"projects/{project_number}",
            },
        },
        {
            "@type": HELP_TYPE,
            "links": [
                {
                    "description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase",
                }
            ],
        },
    ]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ApiError(429, message, details=details, headers=headers)


def internal_error() -> ApiError:
    """Build the 500 INTERNAL body of a transient backend failure."""
    return ApiError(500, "Internal error encountered.")


def service_unavailable() -> ApiError:
    """Build the 503 UNAVAILABLE body Google sends while overloaded."""
    return ApiError(503, "The service is currently unavailable.")
