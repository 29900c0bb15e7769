"""The Drive v3 ``files`` calls gspread makes: create, get, list, delete, export.

Only spreadsheet files exist in the emulator; each is a spreadsheet of the
store, so ``gspread.Client.create``, ``open``, ``open_by_key`` and
``del_spreadsheet`` work against it.  ``get`` honours a flat ``fields`` list
(``id,name,createdTime,modifiedTime``); ``list`` understands the
``name = "..."`` and ``mimeType = "..."`` clauses gspread puts in ``q``.
Export supports ``text/csv`` (first sheet, formatted values) and
``text/tab-separated-values``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from typing import Any

from . import errors
from .state import SPREADSHEET_MIME_TYPE, Spreadsheet, Store
from .values_api import Params, param, read_range

logger = logging.getLogger(__name__)

_QUERY_CLAUSE = re.compile(r"""(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def file_resource(spreadsheet: Spreadsheet, fields_text: str | None) -> dict[str, Any]:
    """Return a Drive File resource; without ``fields`` Drive's default four keys."""
    full = {
        "kind": "drive#file",
        "id": spreadsheet.spreadsheet_id,
        "name": spreadsheet.title,
        "mimeType": SPREADSHEET_MIME_TYPE,
        "createdTime": _timestamp(spreadsheet.created_time),
        "modifiedTime": _timestamp(spreadsheet.modified_time),
    }
    if not fields_text:
        return {key: full[key] for key in ("kind", "id", "name", "mimeType")}
    requested_fields = [name.strip() for name in fields_text.split(",") if name.strip()]
    if "*" in requested_fields:
        return full
    return {key: full[key] for key in requested_fields if key in full}


def create_file(store: Store, body: Any) -> dict[str, Any]:
    """Handle ``POST /drive/v3/files`` for a new Google Sheets file."""
    if not isinstance(body, dict):
        raise errors.invalid_argument("Invalid JSON payload received. Expected a File object.")
    mime_type = body.get("mimeType")
    if mime_type != SPREADSHEET_MIME_TYPE:
        raise errors.unimplemented(
            f"Drive files of mimeType {mime_type!r}; only {SPREADSHEET_MIME_TYPE!r} can be created"
        )
    spreadsheet = store.create(body.get("name") or "Untitled spreadsheet")
    return file_resource(spreadsheet, None)


def get_file(store: Store, file_id: str, params: Params) -> dict[str, Any]:
    """Handle ``GET /drive/v3/files/{id}``."""
    spreadsheet = store.spreadsheets.get(file_id)
    if spreadsheet is None:
        raise errors.drive_file_not_found(file_id)
    return file_resource(spreadsheet, param(params, "fields"))


def delete_file(store: Store, file_id: str) -> None:
    """Handle ``DELETE /drive/v3/files/{id}``."""
    store.delete(file_id)


def list_files(store: Store, params: Params) -> dict[str, Any]:
    """Handle ``GET /drive/v3/files`` with gspread's query clauses."""
    clauses = {match.group(1): match.group(2) if match.group(2) is not None else match.group(3)
               for match in _QUERY_CLAUSE.finditer(param(params, "q", "") or "")}
    mime_type = clauses.get("mimeType")
    name = clauses.get("name")
    files = []
    for spreadsheet in store.spreadsheets.values():
        if mime_type is not None and mime_type != SPREADSHEET_MIME_TYPE:
            continue
        if name is not None and spreadsheet.title != name:
            continue
        files.append(file_resource(spreadsheet, "id,name,createdTime,modifiedTime"))
    return {"kind": "drive#fileList", "incompleteSearch": False, "files": files}


def export_file(store: Store, file_id: str, params: Params) -> tuple[bytes, str]:
    """Handle ``GET /drive/v3/files/{id}/export``; return body and content type."""
    spreadsheet = store.spreadsheets.get(file_id)
    if spreadsheet is None:
        raise errors.drive_file_not_found(file_id)
    mime_type = param(params, "mimeType", "")
    delimiters = {"text/csv": ",", "text/tab-separated-values": "\t"}
    if mime_type not in delimiters:
        raise errors.unimplemented(f"export to {mime_type!r}; use text/csv or text/tab-separated-values")
    first = spreadsheet.sheets[0]
    value_range = read_range(spreadsheet, spreadsheet.resolve(f"'{first.title.replace(chr(39), chr(39) * 2)}'"))
    rows = value_range.get("values", [])
    width = max((len(row) for row in rows), default=0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiters[mime_type], lineterminator="\r\n")
    for row in rows:
        writer.writerow(row + [""] * (width - len(row)))
    text = buffer.getvalue()
    # Drive ends the export without a line break after the last row.
    if text.endswith("\r\n"):
        text = text[:-2]
    return text.encode("utf-8"), f"{mime_type}; charset=utf-8"
