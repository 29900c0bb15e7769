"""The Google Sheets backend of the sheet layer, through gspread.

A backend serves one run, and reads the properties of every tab (titles, sheet
ids, grid sizes) once, with its first read: one ``spreadsheets.get`` shared by the
data tabs, the Errors tab and the Runs tab of the run. Then one sync of one tab
costs:

1. one ``values.get`` of the whole tab with ``valueRenderOption=UNFORMATTED_VALUE``,
   ``dateTimeRenderOption=SERIAL_NUMBER`` and ``prettyPrint=false``: numbers stay
   numbers, dates read as serials and a formula cell as the value it computes.
   A tab that does not exist costs no read;
2. only when the sync writes a date or a number into a cell of an existing row
   that was empty or held text: one ``spreadsheets.get`` masked to the number
   format types of those cells (``sheets_addon.google.formats``);
3. at most one ``spreadsheets:batchUpdate`` for structure: add the tab, delete
   rows (mirror), grow the grid, set number formats and checkbox validations;
4. one ``values:batchUpdate`` with ``valueInputOption=RAW`` carrying only the
   changed cells, grouped into ranges (``sheets_addon.google.batches``).

A request body over ``batches.MAX_BODY_BYTES`` (2 MB), or with more than
``batches.MAX_SUBREQUESTS`` requests or ranges, is split, one request per chunk.
Rows are deleted in the structural request, before the values are written, so
the row numbers of the value ranges are those after the deletion.

Limits are checked before the first write: a sync that would take the
spreadsheet past 10 million cells writes nothing. Retries, the request budget
and ambiguous failures are handled by ``sheets_addon.google.session``, and the
checks that decide whether a write that may have applied is resent by
``sheets_addon.google.ambiguity``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from gspread.exceptions import APIError
from gspread.urls import SPREADSHEET_BATCH_UPDATE_URL, SPREADSHEET_VALUES_BATCH_UPDATE_URL

from runtime.http import AmbiguousWriteApplied, HTTPFailure
from runtime.sheets.base import BackendError, ChangeSet, Grid, LimitExceeded
from sheets_addon.google import ambiguity
from sheets_addon.google.batches import chunks, row_shift, value_ranges
from sheets_addon.google.cells import (
    NUMBER_FORMATS,
    column_letters,
    grid_from_values,
    parse_tab_range,
    quote_sheet,
)
from sheets_addon.google.formats import (
    cells_to_check,
    structure_formats,
    written_cell_formats,
)

logger = logging.getLogger(__name__)

MAX_CELLS = 10_000_000
MAX_CELL_CHARS = 50_000
HEADROOM_ROWS = 100
# The format read covers cells in spans of rows less than this far apart, and
# in one span per column when that would take more than MAX_FORMAT_RANGES ranges.
FORMAT_SPAN_GAP = 50
MAX_FORMAT_RANGES = 40
VALUE_READ = {"valueRenderOption": "UNFORMATTED_VALUE",
              "dateTimeRenderOption": "SERIAL_NUMBER", "majorDimension": "ROWS",
              "prettyPrint": "false"}
PROPERTIES_FIELDS = "sheets(properties(sheetId,title,gridProperties))"
FORMAT_FIELDS = ("sheets(data(startRow,startColumn,"
                 "rowData(values(userEnteredFormat(numberFormat(type))))))")


class SheetsBackendError(BackendError):
    """A Sheets API call failed."""


class CellLimitExceeded(SheetsBackendError, LimitExceeded):
    """The sync would take the spreadsheet past 10 million cells."""


@dataclass
class _TabInfo:
    """A tab's id, title and grid size."""

    sheet_id: int
    title: str
    rows: int
    columns: int


@dataclass
class _Layout:
    """The rows and columns of one ``apply``: in use before, and needed after it."""

    used_rows: int
    width: int
    final_rows: int
    used_columns: int
    deleted: list[int]


class GoogleSheetsBackend:
    """A Google spreadsheet reached through a ``gspread.Client``."""

    max_cell_chars = MAX_CELL_CHARS

    def __init__(self, client: Any, spreadsheet_id: str,
                 ambiguity: Callable[[Callable[[Exception], bool] | None], None] | None
                 = None, *, forbidden_hint: str | None = None,
                 unreachable_hint: str | None = None) -> None:
        self.client = client
        self.http = client.http_client
        self.spreadsheet_id = spreadsheet_id
        self._tabs: dict[str, _TabInfo] = {}
        # Whether the properties of every tab were read into ``_tabs``.
        self._all_tabs = False
        self._extents: dict[str, tuple[int, int]] = {}
        # The grid of each tab read, to tell after an ambiguous failure whether the
        # rows to delete are still there, and which written cells were empty.
        self._grids: dict[str, Grid] = {}
        self._set_ambiguity_check = ambiguity or (lambda check: None)
        self._forbidden_hint = forbidden_hint
        # What to check when no response comes at all; without it, the message
        # of the retries names the host of the request's URL.
        self._unreachable_hint = unreachable_hint
        self.requests_made = 0

    # --- SheetBackend ------------------------------------------------------

    def location(self) -> str:
        return f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}"

    def commit(self) -> None:
        """Nothing to do: every ``apply`` has already reached the spreadsheet."""

    def read_tab(self, name: str) -> Grid | None:
        """Return the tab's grid, or ``None`` when the spreadsheet has no such tab.

        Date cells read as serial numbers, formula cells as the value they
        compute, and short rows are padded with ``None``.
        """
        key = name.casefold()
        self._load_properties()
        tab = self._tabs.get(key)
        if tab is None:
            self._extents[key] = (0, 0)
            self._grids.pop(key, None)
            return None
        answer = self._call(self.http.values_get, self.spreadsheet_id,
                            quote_sheet(tab.title), VALUE_READ)
        echoed = parse_tab_range(answer.get("range", ""))
        if echoed is None or echoed[0] != tab.title:
            raise SheetsBackendError(
                f"spreadsheet {self.spreadsheet_id!r}: reading tab {tab.title!r}"
                f" returned range {answer.get('range')!r}, which is not the whole tab;"
                " rename any named range that has the tab's name")
        grid = grid_from_values(answer.get("values", []))
        self._extents[key] = (len(grid.rows), len(grid.header))
        self._grids[key] = grid
        return grid

    def apply(self, name: str, changes: ChangeSet) -> None:
        """Write one tab's changes: at most one structural and one values request.

        The rows of ``changes`` refer to the tab as read, so a tab this backend
        has not read yet is read first, which costs one more request.
        """
        key = name.casefold()
        if key not in self._extents:
            self.read_tab(name)
        changes = _with_header_cells(changes, self._extents[key][1])
        layout = self._layout(key, changes)
        tab = self._tabs.get(key)
        if tab is None or layout.final_rows > tab.rows - len(layout.deleted) or (
                layout.used_columns > tab.columns):
            self._check_cell_limit([name], {key: (layout.final_rows,
                                                  layout.used_columns)})

        grid = self._grids.get(key, Grid([]))
        first_new_row = layout.used_rows - len(layout.deleted)
        new_columns = {column for row, column in changes.cells
                       if row == 0 and column >= layout.width}
        checks = {} if tab is None else cells_to_check(
            changes, grid, first_new_row, len(layout.deleted), tab.rows, new_columns)
        known: dict[tuple[int, int], str] = {}
        if checks and tab is not None:
            known = self._read_formats(tab, checks)
        checked = {(row, column) for column, rows in checks.items() for row in rows}

        sheet_id, structure, size = self._structure(name, tab, changes, layout,
                                                    new_columns, known, checked)
        title = tab.title if tab is not None else name
        data = value_ranges(title, changes, layout.deleted, first_new_row)
        if structure:
            for body in chunks("requests", structure):
                self._write(SPREADSHEET_BATCH_UPDATE_URL, body,
                            check=self._structure_applied(name, title, body["requests"],
                                                          sheet_id, size))
        if data:
            for body in chunks("data", data):
                body = {"valueInputOption": "RAW", **body}
                self._write(SPREADSHEET_VALUES_BATCH_UPDATE_URL, body,
                            check=self._values_applied(body["data"]))
        self._tabs[key] = _TabInfo(sheet_id, title, *size)
        self._extents[key] = (layout.final_rows, layout.used_columns)

    def check_limits(self, writes: Mapping[str, ChangeSet],
                     new_rows: Mapping[str, tuple[int, int]] | None = None) -> None:
        """Raise ``CellLimitExceeded`` when a run's writes together pass 10 million cells.

        Each tab of ``writes`` is projected the way ``apply`` would grow it (a
        tab not read yet is read first). A tab of ``new_rows`` that was not read
        is counted as full, its rows added below its whole grid, so the check
        errs toward refusing. Sends no request once the tabs are read.
        """
        self._load_properties()
        projected: dict[str, tuple[int, int]] = {}
        for name, changes in writes.items():
            key = name.casefold()
            if key not in self._extents:
                self.read_tab(name)
            changes = _with_header_cells(changes, self._extents[key][1])
            layout = self._layout(key, changes)
            projected[key] = (layout.final_rows, layout.used_columns)
        for name, (rows, columns) in (new_rows or {}).items():
            key = name.casefold()
            tab = self._tabs.get(key)
            used = projected.get(key, (None, 0))[0]
            if used is None:
                used = self._extents[key][0] if key in self._extents else (
                    tab.rows if tab is not None else 0)
            width = max(projected.get(key, (0, 0))[1], columns)
            projected[key] = (used + rows, width)
        names = [*writes, *(new_rows or {})]
        self._check_cell_limit(list(dict.fromkeys(names)), projected)

    # --- planning ----------------------------------------------------------

    def _layout(self, key: str, changes: ChangeSet) -> _Layout:
        used_rows, width = self._extents.get(key, (0, 0))
        if any(row == 0 for row, _ in changes.cells):
            used_rows = max(used_rows, 1)
        used_columns = max([width, *(column + 1 for _, column in changes.cells),
                            *(len(row) for row in changes.append_rows)])
        deleted = sorted(set(changes.delete_rows))
        final_rows = used_rows - len(deleted) + len(changes.append_rows)
        return _Layout(used_rows, width, final_rows, used_columns, deleted)

    def _structure(self, name: str, tab: _TabInfo | None, changes: ChangeSet,
                   layout: _Layout, new_columns: set[int],
                   known: dict[tuple[int, int], str], checked: set[tuple[int, int]]
                   ) -> tuple[int, list[dict[str, Any]], tuple[int, int]]:
        """Return the tab's sheet id, the structural requests and the grid size after them."""
        structure: list[dict[str, Any]] = []
        if tab is None:
            sheet_id = self._new_sheet_id()
            rows_now = self._with_headroom(name, layout.final_rows, layout.used_columns)
            columns_now = max(layout.used_columns, 1)
            structure.append({"addSheet": {"properties": {
                "sheetId": sheet_id, "title": name,
                "gridProperties": {"rowCount": rows_now,
                                   "columnCount": columns_now}}}})
        else:
            sheet_id = tab.sheet_id
            rows_now, columns_now = tab.rows, tab.columns
        for row in reversed(layout.deleted):
            structure.append({"deleteDimension": {"range": {
                "sheetId": sheet_id, "dimension": "ROWS", "startIndex": row,
                "endIndex": row + 1}}})
        rows_now -= len(layout.deleted)
        if layout.final_rows > rows_now:
            target = self._with_headroom(name, layout.final_rows,
                                         max(layout.used_columns, columns_now))
            structure.append({"appendDimension": {"sheetId": sheet_id,
                                                  "dimension": "ROWS",
                                                  "length": target - rows_now}})
            rows_now = target
        if layout.used_columns > columns_now:
            structure.append({"appendDimension": {
                "sheetId": sheet_id, "dimension": "COLUMNS",
                "length": layout.used_columns - columns_now}})
            columns_now = layout.used_columns
        grown_from = None if tab is None else tab.rows - len(layout.deleted)
        structure.extend(structure_formats(sheet_id, changes, new_columns, grown_from,
                                           rows_now))
        if tab is not None:
            structure.extend(written_cell_formats(
                sheet_id, changes, known, checked, row_shift(layout.deleted),
                layout.used_rows - len(layout.deleted), len(layout.deleted)))
        return sheet_id, structure, (rows_now, columns_now)

    # --- reads -------------------------------------------------------------

    def _load_properties(self) -> None:
        """Read the properties of every tab, once per backend."""
        if self._all_tabs:
            return
        metadata = self._call(self.http.fetch_sheet_metadata, self.spreadsheet_id,
                              {"fields": PROPERTIES_FIELDS, "prettyPrint": "false"})
        self._tabs = {}
        for sheet in metadata.get("sheets", []):
            info = _tab_info(sheet["properties"])
            self._tabs[info.title.casefold()] = info
        self._all_tabs = True

    def _read_formats(self, tab: _TabInfo,
                      checks: dict[int, list[int]]) -> dict[tuple[int, int], str]:
        """Read the number format types of the cells to check (``_format_ranges``)."""
        ranges = _format_ranges(tab.title, checks)
        metadata = self._call(self.http.fetch_sheet_metadata, self.spreadsheet_id,
                              {"ranges": ranges, "fields": FORMAT_FIELDS,
                               "prettyPrint": "false"})
        types: dict[tuple[int, int], str] = {}
        for sheet in metadata.get("sheets", []):
            for block in sheet.get("data") or []:
                types.update(_format_types(block))
        return types

    # --- requests ----------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        self.requests_made += 1
        try:
            return method(*args)
        except APIError as exc:
            raise SheetsBackendError(
                f"spreadsheet {self.spreadsheet_id!r}:"
                f" {_api_message(exc, self._forbidden_hint)}") from exc
        except AmbiguousWriteApplied:
            raise
        except HTTPFailure as exc:
            cause = exc.__cause__
            if (self._unreachable_hint is not None and exc.last_response is None
                    and isinstance(cause, requests.RequestException)):
                raise SheetsBackendError(
                    f"spreadsheet {self.spreadsheet_id!r}: Sheets API request"
                    f" failed: {exc.method} {exc.url} got no response in"
                    f" {exc.attempts} attempt(s), the last with"
                    f" {type(cause).__name__}; {self._unreachable_hint}") from exc
            raise SheetsBackendError(
                f"spreadsheet {self.spreadsheet_id!r}: Sheets API request failed:"
                f" {exc}") from exc
        except requests.RequestException as exc:
            hint = self._unreachable_hint or "check the network and the spreadsheet id"
            raise SheetsBackendError(
                f"spreadsheet {self.spreadsheet_id!r}: Sheets API request failed:"
                f" {type(exc).__name__}; {hint}") from exc

    def _write(self, url_template: str, body: dict[str, Any],
               check: Callable[[Exception], bool] | None = None) -> Any:
        """POST a body as compact JSON: at 100k cells the spaces json= adds count."""
        self._set_ambiguity_check(check)
        try:
            return self._call(self.post_json, url_template % self.spreadsheet_id, body)
        except AmbiguousWriteApplied as exc:
            logger.warning("a write to spreadsheet %s failed after it had applied,"
                           " so it was not resent: %s", self.spreadsheet_id, exc)
            return None
        finally:
            self._set_ambiguity_check(None)

    def post_json(self, url: str, body: dict[str, Any]) -> Any:
        """POST ``body`` as compact JSON and return the decoded response."""
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        response = self.http.request("post", url, None, payload.encode("utf-8"),
                                     None, None, {"Content-Type": "application/json"})
        return response.json()

    def get_metadata(self, params: dict[str, Any]) -> Any:
        """Read spreadsheet metadata outside the request count (for the checks)."""
        return self.http.fetch_sheet_metadata(self.spreadsheet_id, params)

    def get_values(self, range_text: str) -> Any:
        """Read a range's values outside the request count (for the checks)."""
        return self.http.values_get(self.spreadsheet_id, range_text, VALUE_READ)

    def _values_applied(self, data: list[dict[str, Any]]
                        ) -> Callable[[Exception], bool]:
        """Return the check run after an ambiguous values write: True when resending is safe."""
        def resend_is_safe(error: Exception) -> bool:
            logger.warning("write to %s may have applied (%s); reading %d range(s)"
                           " before resending", self.spreadsheet_id, error, len(data))
            return ambiguity.values_unchanged(self, data)

        return resend_is_safe

    def _structure_applied(self, name: str, title: str,
                           requests_sent: list[dict[str, Any]], sheet_id: int,
                           size: tuple[int, int]) -> Callable[[Exception], bool]:
        """Return the check run after an ambiguous structural write: True when resending is safe.

        ``size`` is the grid size once every structural request has applied.
        """
        kinds = {kind for request in requests_sent for kind in request}

        def resend_is_safe(error: Exception) -> bool:
            logger.warning("structural write to spreadsheet %s may have applied (%s);"
                           " reading tab %r before resending", self.spreadsheet_id,
                           error, name)
            properties = ambiguity.tab_properties(self, sheet_id)
            if "addSheet" in kinds:
                return properties is None
            if "deleteDimension" in kinds:
                # Rows are deleted from the bottom up, so the row of the first
                # deletion has not moved since the tab was read, and it contains a
                # different row (mirror deletes only unique keys) once applied.
                first_deletion = next(request["deleteDimension"] for request
                                      in requests_sent if "deleteDimension" in request)
                row = first_deletion["range"]["startIndex"]
                before = self._grids.get(name.casefold(), Grid([]))
                return properties is not None and ambiguity.same_row(
                    ambiguity.tab_grid(self, title), before, row)
            if "appendDimension" in kinds:
                grid = (properties or {}).get("gridProperties", {})
                return (grid.get("rowCount"), grid.get("columnCount")) != size
            # Setting the same formats and validations again changes nothing.
            return True

        return resend_is_safe

    # --- limits ------------------------------------------------------------

    def _check_cell_limit(self, names: list[str],
                          projected: dict[str, tuple[int, int]]) -> None:
        """Raise ``CellLimitExceeded`` when the projected grids pass ``MAX_CELLS``.

        ``projected`` maps tab keys to the rows and columns they need. Each tab
        counts the larger of that and its grid now, because only deleted rows
        shrink a grid and the check leaves them out, which errs toward refusing.
        """
        total = 0
        for key, tab in self._tabs.items():
            rows, columns = projected.get(key, (0, 0))
            total += max(rows, tab.rows) * max(columns, tab.columns)
        for key, (rows, columns) in projected.items():
            if key not in self._tabs:
                total += rows * columns
        if total <= MAX_CELLS:
            return
        listed = ", ".join(repr(name) for name in names)
        raise CellLimitExceeded(
            f"writing tab{'s' if len(names) > 1 else ''} {listed} would take the"
            f" spreadsheet to {total:,} cells, over Google Sheets' limit of"
            f" {MAX_CELLS:,}; nothing was written. Delete unused tabs, rows or"
            " columns, or write to another spreadsheet")

    def _with_headroom(self, name: str, rows: int, columns: int) -> int:
        """Return the row count to give a tab that needs ``rows`` rows.

        Growing by ``HEADROOM_ROWS`` more than needed saves a structural request
        on each of the next syncs that append a few rows (the Runs tab gains one
        on every run), unless the headroom would pass the cell limit.
        """
        wanted = max(rows + HEADROOM_ROWS, 1)
        others = sum(tab.rows * tab.columns for key, tab in self._tabs.items()
                     if key != name.casefold())
        if others + wanted * max(columns, 1) > MAX_CELLS:
            return max(rows, 1)
        return wanted

    def _new_sheet_id(self) -> int:
        taken = {tab.sheet_id for tab in self._tabs.values()}
        candidate = 1 + max(taken, default=0)
        while candidate in taken:
            candidate += 1
        return candidate


def _with_header_cells(changes: ChangeSet, width: int) -> ChangeSet:
    """Return ``changes`` with its new headers as cells of row 0, right of ``width``."""
    if not changes.new_headers:
        return changes
    cells = dict(changes.cells)
    for offset, header in enumerate(changes.new_headers):
        cells[(0, width + offset)] = header
    return ChangeSet(new_headers=[], cells=cells, append_rows=changes.append_rows,
                     delete_rows=changes.delete_rows,
                     column_kinds=changes.column_kinds,
                     checkbox_columns=changes.checkbox_columns)


def _format_ranges(title: str, checks: dict[int, list[int]]) -> list[str]:
    """Return A1 ranges covering the cells to check, by column.

    Rows closer than ``FORMAT_SPAN_GAP`` share a range, so a few scattered cells
    do not read a whole column. Past ``MAX_FORMAT_RANGES`` ranges each column
    gets one span, which keeps the query string short.
    """
    spans = {column: _spans(rows, FORMAT_SPAN_GAP) for column, rows in checks.items()}
    if sum(len(found) for found in spans.values()) > MAX_FORMAT_RANGES:
        spans = {column: [(rows[0], rows[-1])] for column, rows in checks.items()}
    ranges = []
    for column, column_spans in spans.items():
        letters = column_letters(column)
        for first, last in column_spans:
            ranges.append(f"{quote_sheet(title)}!{letters}{first + 1}:{letters}{last + 1}")
    return ranges


def _spans(rows: list[int], gap: int) -> list[tuple[int, int]]:
    """Group sorted rows into (first, last) spans, joining rows less than ``gap`` apart."""
    spans: list[tuple[int, int]] = []
    for row in rows:
        if spans and row - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], row)
        else:
            spans.append((row, row))
    return spans


def _tab_info(props: dict[str, Any]) -> _TabInfo:
    grid = props.get("gridProperties", {})
    return _TabInfo(props["sheetId"], props["title"], grid.get("rowCount", 0),
                    grid.get("columnCount", 0))


def _format_types(block: dict[str, Any]) -> dict[tuple[int, int], str]:
    types = {}
    first_row = block.get("startRow", 0)
    first_column = block.get("startColumn", 0)
    for row, row_data in enumerate(block.get("rowData", [])):
        for column, cell in enumerate(row_data.get("values", [])):
            number_format = (cell.get("userEnteredFormat") or {}).get(
                "numberFormat") or {}
            if number_format.get("type"):
                types[(first_row + row, first_column + column)] = number_format["type"]
    return types


_API_ERROR_HINTS = {
    404: "check the spreadsheet id, and that the spreadsheet still exists",
}
# Google's 403 messages of the two causes that sharing does not fix.
_SCOPE_MESSAGE = "insufficient authentication scopes"
_DISABLED_MESSAGE = "has not been used in project"


def forbidden_hint(message: str, account_hint: str | None) -> str:
    """Return what to do about a 403, from Google's message and the credentials used."""
    if _SCOPE_MESSAGE in message.lower():
        return ("the credentials lack the spreadsheets scope; for application"
                " default credentials run 'gcloud auth application-default login"
                " --scopes=https://www.googleapis.com/auth/spreadsheets,"
                "https://www.googleapis.com/auth/cloud-platform'")
    if _DISABLED_MESSAGE in message.lower() or "is disabled" in message.lower():
        return "enable the Google Sheets API in the credentials' Google Cloud project"
    return account_hint or "give the account of the credentials edit access"


def _api_message(exc: APIError, account_hint: str | None = None) -> str:
    status = exc.response.status_code
    try:
        error = exc.response.json().get("error", {})
    except ValueError:
        error = {}
        text = f"Sheets API error {status}: {exc.response.text[:200]}"
    else:
        text = (f"Sheets API error {error.get('code', status)}"
                f" {error.get('status', '')}: {error.get('message', '')}").strip()
    if status == 403:
        return f"{text}; {forbidden_hint(str(error.get('message', '')), account_hint)}"
    if status in _API_ERROR_HINTS:
        return f"{text}; {_API_ERROR_HINTS[status]}"
    return text
