"""Map an HTTP request to an API method and run it against the store.

Paths are matched on their raw (percent-encoded) form, segment by segment,
then each segment is decoded, so a range such as ``'a/b'!A1:B2`` (sent as
``%27a%2Fb%27%21A1%3AB2``) stays one segment and a literal ``:`` marks a
custom method (``values/{range}:append``).

Request kinds are the API method names (``values.get``,
``spreadsheets.batchUpdate``, ``drive.files.create``...); ``unknown`` marks a
path the emulator does not serve.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote

from . import batch_update, drive_api, errors, values_api
from .spreadsheet_view import render_spreadsheet
from .state import Store
from .values_api import Params, flag, param

logger = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass
class Response:
    """A response to send: status, body bytes and content type."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE


@dataclass
class Route:
    """A matched API method: its kind and how to run it."""

    kind: str
    run: Callable[[], Response]


def json_response(payload: Any, status: int = 200) -> Response:
    """Serialize ``payload`` the way Google does (two-space indented JSON)."""
    return Response(status, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def error_response(error: errors.ApiError) -> Response:
    return json_response(error.body(), error.code)


def parse_body(raw: bytes) -> Any:
    """Decode a JSON request body; raise Google's 400 for malformed JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise errors.invalid_argument(f"Invalid JSON payload received. {error}.") from None


def resolve_route(store: Store, method: str, raw_path: str, params: Params, raw_body: bytes) -> Route:
    """Return the route for a request, or a route that responds with a 404."""
    segments = raw_path.strip("/").split("/")
    if segments[:2] == ["v4", "spreadsheets"]:
        return _sheets_route(store, method, segments[2:], params, raw_body)
    if segments[:3] == ["drive", "v3", "files"]:
        return _drive_route(store, method, segments[3:], params, raw_body)
    return _not_served("unknown", method, raw_path)


def _not_served(kind: str, method: str, raw_path: str) -> Route:
    def run() -> Response:
        return error_response(
            errors.ApiError(404, f"The emulator serves no {method} {raw_path}; check the URL.")
        )

    return Route(kind, run)


def _unimplemented(kind: str, method: str, feature: str) -> Route:
    def run() -> Response:
        return error_response(errors.unimplemented(feature))

    return Route(kind, run)


def _sheets_route(store: Store, method: str, rest: list[str], params: Params, raw_body: bytes) -> Route:
    if not rest or rest == [""]:
        if method == "POST":
            return Route("spreadsheets.create", lambda: _create(store, raw_body))
        return _not_served("unknown", method, "/v4/spreadsheets")
    head = rest[0]
    spreadsheet_id, _, custom = head.partition(":")
    spreadsheet_id = unquote(spreadsheet_id)
    if len(rest) == 1:
        if custom == "batchUpdate" and method == "POST":
            return Route(
                "spreadsheets.batchUpdate",
                lambda: _with_spreadsheet(store, spreadsheet_id, lambda s: batch_update.batch_update(store, s, parse_body(raw_body))),
            )
        if not custom and method == "GET":
            return Route("spreadsheets.get", lambda: _get_spreadsheet(store, spreadsheet_id, params))
        return _not_served("unknown", method, "/v4/spreadsheets/" + head)
    if rest[1].startswith("values"):
        return _values_route(store, method, spreadsheet_id, rest[1:], params, raw_body)
    if rest[1] == "sheets":
        return _unimplemented("spreadsheets.sheets.copyTo", method, "spreadsheets.sheets.copyTo")
    return _not_served("unknown", method, "/v4/spreadsheets/" + "/".join(rest))


def _values_route(
    store: Store, method: str, spreadsheet_id: str, rest: list[str], params: Params, raw_body: bytes
) -> Route:
    def on(handler: Callable[[Any], Any]) -> Callable[[], Response]:
        return lambda: _with_spreadsheet(store, spreadsheet_id, handler)

    if len(rest) == 1:
        batch = {
            ("GET", "values:batchGet"): ("values.batchGet", lambda s: values_api.batch_get_values(s, params)),
            ("POST", "values:batchGetByDataFilter"): (
                "values.batchGetByDataFilter",
                lambda s: values_api.batch_get_values_by_data_filter(s, parse_body(raw_body)),
            ),
            ("POST", "values:batchUpdate"): ("values.batchUpdate", lambda s: values_api.batch_update_values(s, parse_body(raw_body))),
            ("POST", "values:batchClear"): ("values.batchClear", lambda s: values_api.batch_clear_values(s, parse_body(raw_body))),
        }.get((method, rest[0]))
        if batch is None:
            return _not_served("unknown", method, rest[0])
        kind, handler = batch
        return Route(kind, on(handler))
    raw_range = "/".join(rest[1:])
    custom = ""
    # Clients may leave the range's own colon unencoded (values/A1:B2).
    head, _, suffix = raw_range.rpartition(":")
    if head and suffix in ("append", "clear"):
        raw_range, custom = head, suffix
    range_text = unquote(raw_range)
    if method == "GET" and not custom:
        return Route("values.get", on(lambda s: values_api.get_values(s, range_text, params)))
    if method == "PUT" and not custom:
        return Route("values.update", on(lambda s: values_api.update_values(s, range_text, params, parse_body(raw_body))))
    if method == "POST" and custom == "append":
        return Route("values.append", on(lambda s: values_api.append_values(s, range_text, params, parse_body(raw_body))))
    if method == "POST" and custom == "clear":
        return Route("values.clear", on(lambda s: values_api.clear_values(s, range_text)))
    return _not_served("unknown", method, "values/" + "/".join(rest[1:]))


def _with_spreadsheet(store: Store, spreadsheet_id: str, handler: Callable[[Any], Any]) -> Response:
    with store.lock:
        spreadsheet = store.get(spreadsheet_id)
        return json_response(handler(spreadsheet))


def _get_spreadsheet(store: Store, spreadsheet_id: str, params: Params) -> Response:
    with store.lock:
        spreadsheet = store.get(spreadsheet_id)
        return json_response(
            render_spreadsheet(
                spreadsheet,
                include_grid_data=flag(param(params, "includeGridData", "false")),
                ranges=params.get("ranges"),
                field_mask=param(params, "fields"),
            )
        )


def _create(store: Store, raw_body: bytes) -> Response:
    body = parse_body(raw_body) or {}
    if not isinstance(body, dict):
        raise errors.invalid_argument("Invalid JSON payload received. Expected a Spreadsheet object.")
    properties = dict(body.get("properties") or {})
    title = properties.pop("title", None) or "Untitled spreadsheet"
    with store.lock:
        spreadsheet = store.create(title, body.get("sheets") or None, properties)
        return json_response(render_spreadsheet(spreadsheet))


def _drive_route(store: Store, method: str, rest: list[str], params: Params, raw_body: bytes) -> Route:
    def locked(handler: Callable[[], Any]) -> Callable[[], Response]:
        def run() -> Response:
            with store.lock:
                return json_response(handler())

        return run

    if not rest or rest == [""]:
        if method == "POST":
            return Route("drive.files.create", locked(lambda: drive_api.create_file(store, parse_body(raw_body))))
        if method == "GET":
            return Route("drive.files.list", locked(lambda: drive_api.list_files(store, params)))
        return _not_served("unknown", method, "/drive/v3/files")
    file_id = unquote(rest[0])
    if len(rest) == 1 and method == "GET":
        return Route("drive.files.get", locked(lambda: drive_api.get_file(store, file_id, params)))
    if len(rest) == 1 and method == "DELETE":
        def delete() -> Response:
            with store.lock:
                drive_api.delete_file(store, file_id)
            return Response(204, b"", "text/html")

        return Route("drive.files.delete", delete)
    if rest[1:] == ["export"] and method == "GET":
        def export() -> Response:
            with store.lock:
                body, content_type = drive_api.export_file(store, file_id, params)
            return Response(200, body, content_type)

        return Route("drive.files.export", export)
    return _unimplemented("drive.other", method, f"Drive {method} files/{'/'.join(rest)}")
