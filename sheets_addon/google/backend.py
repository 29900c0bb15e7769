"""The Google Sheets backend of the sheet layer, through gspread.

A sync of one tab costs at most three requests whatever its size, and the
first sync of a backend one more (see 1):

1. one ``spreadsheets.get`` with grid data of that tab only. The first read of
   a backend costs one more, for the properties (grid size) of every tab that
   the cell count projection needs, because a read of one tab's range returns
   only that tab. A tab that does not exist costs no grid read;
2. at most one ``spreadsheets:batchUpdate`` for structure: add the tab, delete
   rows (mirror), grow the grid, set number formats on the date cells that need
   one (``sheets_addon.google.formats``);
3. one ``values:batchUpdate`` with ``valueInputOption=RAW`` carrying only the
   changed cells, grouped into ranges.

A request body over ``MAX_BODY_BYTES`` is split, one request per chunk. Rows are
deleted in the structural request, before the values are written, so the row
numbers of the value ranges are those after the deletion.

Limits are checked before the first write: a sync that would take the
spreadsheet past 10 million cells writes nothing. Retries, the request budget
and ambiguous failures are handled by ``sheets_addon.google.session``. After a
timeout or a 5xx response that may have applied a write, the spreadsheet is read
again, and the write is resent only when it did not apply: a new tab is looked
for, the first row to delete is compared with the row read before, a grown grid
is measured, and values are compared cell by cell.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from gspread.exceptions import APIError

from gspread.urls import SPREADSHEET_BATCH_UPDATE_URL, SPREADSHEET_VALUES_BATCH_UPDATE_URL

from runtime.http import AmbiguousWriteApplied, HTTPFailure

from runtime.sheets.base import BackendError, ChangeSet, Grid, LimitExceeded
from sheets_addon.google.cells import (
    NUMBER_FORMATS,
    a1_range,
    from_api_cell,
    quote_sheet,
    runs,
    to_api_value,
)
from sheets_addon.google.formats import written_cell_formats

logger = logging.getLogger(__name__)

MAX_CELLS = 10_000_000
MAX_CELL_CHARS = 50_000
MAX_SUBREQUESTS = 100_000
MAX_BODY_BYTES = 2_000_000
HEADROOM_ROWS = 100
# What a tab read asks for: each cell's entered value (a formula stays a formula)
# and its number format type, which tells a date serial from a number. Leaving
# out effectiveValue and pretty-printing cuts the answer to about a third.
GRID_FIELDS = ("sheets(properties(sheetId,title,gridProperties),"
               "data(rowData(values(userEnteredValue,userEnteredFormat/numberFormat))))")


class SheetsBackendError(BackendError):
    """A Sheets API call failed."""


class CellLimitExceeded(SheetsBackendError, LimitExceeded):
    """The sync would take the spreadsheet past 10 million cells."""


@dataclass
class _TabInfo:
    sheet_id: int
    title: str
    rows: int
    columns: int


class GoogleSheetsBackend:
    """A Google spreadsheet reached through a ``gspread.Client``."""

    max_cell_chars = MAX_CELL_CHARS

    def __init__(self, client: Any, spreadsheet_id: str,
                 ambiguity: Callable[[Callable[[Exception], bool] | None], None] | None
                 = None) -> None:
        self.client = client
        self.http = client.http_client
        self.spreadsheet_id = spreadsheet_id
        self._tabs: dict[str, _TabInfo] | None = None
        self._extents: dict[str, tuple[int, int]] = {}
        # Number format type of every formatted cell of each tab read, by (row, column).
        self._formats: dict[str, dict[tuple[int, int], str]] = {}
        # The grid of each tab read, to tell after an ambiguous failure whether the
        # rows to delete are still there.
        self._grids: dict[str, Grid] = {}
        self._set_ambiguity_check = ambiguity or (lambda check: None)
        self.requests_made = 0

    # --- SheetBackend ------------------------------------------------------

    def location(self) -> str:
        return f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}"

    def commit(self) -> None:
        """Nothing to do: every ``apply`` has already reached the spreadsheet."""

    def read_tab(self, name: str) -> Grid | None:
        """Return the tab's grid, or ``None`` when the spreadsheet has no such tab.

        The first read of a backend fetches the properties of every tab (one
        request, kept for the run and updated by every write); each read of an
        existing tab is then one request for its grid data, and a missing tab
        costs none.
        """
        if self._tabs is None:
            metadata = self._call(self.http.fetch_sheet_metadata, self.spreadsheet_id,
                                  {"fields": "sheets(properties(sheetId,title,"
                                             "gridProperties))"})
            self._tabs = {}
            for sheet in metadata.get("sheets", []):
                info = _tab_info(sheet["properties"])
                self._tabs[info.title.casefold()] = info
        tab = self._tabs.get(name.casefold())
        if tab is None:
            self._extents[name.casefold()] = (0, 0)
            return None
        params = {
            "includeGridData": "true",
            "ranges": quote_sheet(tab.title),
            "fields": GRID_FIELDS,
            "prettyPrint": "false",
        }
        metadata = self._call(self.http.fetch_sheet_metadata, self.spreadsheet_id,
                              params)
        found = Grid([])
        for sheet in metadata.get("sheets", []):
            info = _tab_info(sheet["properties"])
            self._tabs[info.title.casefold()] = info
            if info.title.casefold() == name.casefold():
                found = _grid_from(sheet.get("data") or [])
                self._formats[name.casefold()] = _format_types(sheet.get("data") or [])
        self._extents[name.casefold()] = (len(found.rows), len(found.header))
        self._grids[name.casefold()] = found
        return found

    def apply(self, name: str, changes: ChangeSet) -> None:
        """Write one tab's changes: at most one structural and one values request.

        The rows of ``changes`` refer to the tab as read, so a tab this backend
        has not read yet is read first, which costs one more request.
        """
        if self._tabs is None or name.casefold() not in self._extents:
            self.read_tab(name)
        assert self._tabs is not None
        tab = self._tabs.get(name.casefold())
        title = tab.title if tab is not None else name
        used_rows, width = self._extents.get(name.casefold(), (0, 0))
        cells = dict(changes.cells)
        if changes.new_headers:
            for offset, header in enumerate(changes.new_headers):
                cells[(0, width + offset)] = header
            used_rows = max(used_rows, 1)
        changes = ChangeSet(new_headers=[], cells=cells,
                            append_rows=changes.append_rows,
                            delete_rows=changes.delete_rows,
                            column_kinds=changes.column_kinds)
        used_columns = max([width + 0, *(column + 1 for _, column in cells),
                            *(len(row) for row in changes.append_rows)])
        deleted = sorted(set(changes.delete_rows))
        final_rows = used_rows - len(deleted) + len(changes.append_rows)
        self._check_cell_limit(name, final_rows, used_columns)

        structure: list[dict[str, Any]] = []
        sheet_id = tab.sheet_id if tab is not None else None
        if tab is None:
            sheet_id = self._new_sheet_id()
            rows_now = self._with_headroom(name, final_rows, used_columns)
            columns_now = max(used_columns, 1)
            structure.append({"addSheet": {"properties": {
                "sheetId": sheet_id, "title": name,
                "gridProperties": {"rowCount": rows_now,
                                   "columnCount": columns_now}}}})
        else:
            rows_now, columns_now = tab.rows, tab.columns
        for row in reversed(deleted):
            structure.append({"deleteDimension": {"range": {
                "sheetId": sheet_id, "dimension": "ROWS", "startIndex": row,
                "endIndex": row + 1}}})
        rows_now -= len(deleted)
        if final_rows > rows_now:
            target = self._with_headroom(name, final_rows, max(used_columns,
                                                               columns_now))
            structure.append({"appendDimension": {"sheetId": sheet_id,
                                                  "dimension": "ROWS",
                                                  "length": target - rows_now}})
            rows_now = target
        if used_columns > columns_now:
            structure.append({"appendDimension": {"sheetId": sheet_id,
                                                  "dimension": "COLUMNS",
                                                  "length": used_columns - columns_now}})
            columns_now = used_columns
        first_new_row = used_rows - len(deleted)
        new_columns = {column for row, column in cells if row == 0
                       and column >= width}
        grown_from = None if tab is None else tab.rows - len(deleted)
        structure.extend(_format_requests(sheet_id, changes.column_kinds, new_columns,
                                          grown_from, rows_now))
        if grown_from is not None:
            structure.extend(written_cell_formats(
                sheet_id, changes, self._formats.get(name.casefold(), {}),
                _row_shift(deleted), first_new_row, len(deleted), grown_from,
                new_columns))

        data = _value_ranges(title, changes, deleted, first_new_row)
        if structure:
            for body in _chunks("requests", structure):
                self._write(SPREADSHEET_BATCH_UPDATE_URL, body,
                            check=self._structure_applied(
                                name, body["requests"], sheet_id, rows_now,
                                columns_now))
        if data:
            for body in _chunks("data", data):
                body = {"valueInputOption": "RAW", **body}
                self._write(SPREADSHEET_VALUES_BATCH_UPDATE_URL, body,
                            check=self._values_applied(body["data"]))
        self._tabs[name.casefold()] = _TabInfo(sheet_id, title, rows_now, columns_now)  # type: ignore[index]
        self._extents[name.casefold()] = (final_rows, used_columns)

    # --- requests ----------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        self.requests_made += 1
        try:
            return method(*args)
        except APIError as exc:
            raise SheetsBackendError(
                f"spreadsheet {self.spreadsheet_id!r}: {_api_message(exc)}") from exc
        except AmbiguousWriteApplied:
            raise
        except HTTPFailure as exc:
            raise SheetsBackendError(
                f"spreadsheet {self.spreadsheet_id!r}: Sheets API request failed:"
                f" {exc}") from exc
        except requests.RequestException as exc:
            raise SheetsBackendError(
                f"spreadsheet {self.spreadsheet_id!r}: Sheets API request failed:"
                f" {type(exc).__name__}; check the network and the spreadsheet id"
            ) from exc

    def _write(self, url_template: str, body: dict[str, Any],
               check: Callable[[Exception], bool] | None = None) -> Any:
        """POST a body as compact JSON: at 100k cells the spaces json= adds count."""
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        self._set_ambiguity_check(check)
        try:
            return self._call(self.http.request, "post",
                              url_template % self.spreadsheet_id,
                              None, payload.encode("utf-8"), None, None,
                              {"Content-Type": "application/json"})
        except AmbiguousWriteApplied as exc:
            logger.warning("a write to spreadsheet %s failed after it had applied,"
                           " so it was not resent: %s", self.spreadsheet_id, exc)
            return None
        finally:
            self._set_ambiguity_check(None)

    def _values_applied(self, data: list[dict[str, Any]]
                        ) -> Callable[[Exception], bool]:
        """Return the check run after an ambiguous write: True when resending is safe.

        It reads the written ranges again; when every cell already holds what was
        sent, the write applied and must not be sent again.
        """
        def resend_is_safe(error: Exception) -> bool:
            # NOTE: every range goes in the query string; a sync changing
            # thousands of rows may pass the URL length Google accepts.
            ranges = [entry["range"] for entry in data]
            logger.warning("write to %s may have applied (%s); reading %d range(s)"
                           " before resending", self.spreadsheet_id, error,
                           len(ranges))
            params = {"ranges": ranges, "valueRenderOption": "UNFORMATTED_VALUE",
                      "dateTimeRenderOption": "SERIAL_NUMBER"}
            answer = self.http.values_batch_get(self.spreadsheet_id, ranges, params)
            for sent, read in zip(data, answer.get("valueRanges", [])):
                if not _same_values(sent["values"], read.get("values", [])):
                    return True
            return False

        return resend_is_safe

    def _structure_applied(self, name: str, requests: list[dict[str, Any]],
                           sheet_id: int, rows: int, columns: int
                           ) -> Callable[[Exception], bool]:
        """Return the check run after an ambiguous structural write: True when resending is safe.

        Resending an ``addSheet`` that applied fails, and resending a row
        deletion that applied deletes other rows, so the spreadsheet is read
        again first. ``rows`` and ``columns`` are the grid size once every
        structural request has applied.
        """
        kinds = {kind for request in requests for kind in request}

        def resend_is_safe(error: Exception) -> bool:
            logger.warning("structural write to spreadsheet %s may have applied (%s);"
                           " reading tab %r before resending", self.spreadsheet_id,
                           error, name)
            if "addSheet" in kinds:
                return self._fetch_tab(sheet_id, with_grid=False) is None
            if "deleteDimension" in kinds:
                # Rows are deleted from the bottom up, so the row of the first
                # deletion has not moved since the tab was read, and it contains a
                # different row (mirror deletes only unique keys) once applied.
                first_deletion = next(request["deleteDimension"] for request
                                      in requests if "deleteDimension" in request)
                row = first_deletion["range"]["startIndex"]
                fetched = self._fetch_tab(sheet_id, with_grid=True)
                before = self._grids.get(name.casefold(), Grid([]))
                return fetched is not None and _same_row(fetched[1], before, row)
            if "appendDimension" in kinds:
                fetched = self._fetch_tab(sheet_id, with_grid=False)
                return fetched is None or (fetched[0].rows, fetched[0].columns) != (
                    rows, columns)
            # Setting the same number formats again changes nothing.
            return True

        return resend_is_safe

    def _fetch_tab(self, sheet_id: int, with_grid: bool
                   ) -> tuple[_TabInfo, Grid] | None:
        """Read one tab's properties (and grid) again, outside the request budget."""
        fields = "sheets(properties(sheetId,title,gridProperties))"
        metadata = self.http.fetch_sheet_metadata(self.spreadsheet_id,
                                                  {"fields": fields})
        for sheet in metadata.get("sheets", []):
            info = _tab_info(sheet["properties"])
            if info.sheet_id != sheet_id:
                continue
            if not with_grid:
                return info, Grid([])
            params = {"includeGridData": "true", "ranges": quote_sheet(info.title),
                      "fields": GRID_FIELDS, "prettyPrint": "false"}
            grid_data = self.http.fetch_sheet_metadata(self.spreadsheet_id, params)
            sheets = grid_data.get("sheets") or [{}]
            return info, _grid_from(sheets[0].get("data") or [])
        return None

    def _check_cell_limit(self, name: str, rows: int, columns: int) -> None:
        tabs = self._tabs or {}
        others = sum(tab.rows * tab.columns for key, tab in tabs.items()
                     if key != name.casefold())
        tab = tabs.get(name.casefold())
        own = max(rows, tab.rows if tab else 0) * max(columns, tab.columns if tab else 0)
        if others + own > MAX_CELLS:
            raise CellLimitExceeded(
                f"writing tab {name!r} would take the spreadsheet to {others + own:,}"
                f" cells, over Google Sheets' limit of {MAX_CELLS:,}; nothing was"
                " written. Delete unused tabs, rows or columns, or write to another"
                " spreadsheet")

    def _with_headroom(self, name: str, rows: int, columns: int) -> int:
        """Return the row count to give a tab that needs ``rows`` rows.

        Growing by ``HEADROOM_ROWS`` more than needed saves a structural request
        on each of the next syncs that append a few rows (the Runs tab gains one
        on every run), unless the headroom would pass the cell limit.
        """
        wanted = max(rows + HEADROOM_ROWS, 1)
        tabs = self._tabs or {}
        others = sum(tab.rows * tab.columns for key, tab in tabs.items()
                     if key != name.casefold())
        if others + wanted * max(columns, 1) > MAX_CELLS:
            return max(rows, 1)
        return wanted

    def _new_sheet_id(self) -> int:
        taken = {tab.sheet_id for tab in (self._tabs or {}).values()}
        candidate = 1 + max(taken, default=0)
        while candidate in taken:
            candidate += 1
        return candidate


def _tab_info(props: dict[str, Any]) -> _TabInfo:
    grid = props.get("gridProperties", {})
    return _TabInfo(props["sheetId"], props["title"], grid.get("rowCount", 0),
                    grid.get("columnCount", 0))


def _format_types(data: list[dict[str, Any]]) -> dict[tuple[int, int], str]:
    types = {}
    for block in data:
        for row, row_data in enumerate(block.get("rowData", [])):
            for column, cell in enumerate(row_data.get("values", [])):
                number_format = (cell.get("userEnteredFormat") or {}).get(
                    "numberFormat") or {}
                if number_format.get("type"):
                    types[(row, column)] = number_format["type"]
    return types


def _grid_from(data: list[dict[str, Any]]) -> Grid:
    rows: list[list[Any]] = []
    for block in data:
        for row in block.get("rowData", []):
            rows.append([from_api_cell(cell) for cell in row.get("values", [])])
    while rows and all(value in (None, "") for value in rows[-1]):
        rows.pop()
    width = max((len(row) for row in rows), default=0)
    for row in rows:
        row.extend([None] * (width - len(row)))
    return Grid(rows)


def _value_ranges(title: str, changes: ChangeSet, deleted: list[int],
                  first_new_row: int) -> list[dict[str, Any]]:
    """Group changed cells into ranges, with row numbers after the deletions."""
    shift = _row_shift(deleted)
    deleted_rows = set(deleted)
    by_row: dict[int, dict[int, Any]] = {}
    for (row, column), value in changes.cells.items():
        if row in deleted_rows:
            continue
        by_row.setdefault(shift(row), {})[column] = value
    data = []
    for row in sorted(by_row):
        cells = by_row[row]
        for start, length in runs(cells):
            values = [to_api_value(cells[start + i]) for i in range(length)]
            data.append({"range": a1_range(title, row, start, 1, length),
                         "values": [values]})
    if changes.append_rows:
        owned = sorted(changes.column_kinds) or list(
            range(max(len(row) for row in changes.append_rows)))
        for start, length in runs(owned):
            block = [[to_api_value(row[i]) if i < len(row) else ""
                      for i in range(start, start + length)]
                     for row in changes.append_rows]
            for offset, piece in _row_pieces(block):
                data.append({"range": a1_range(title, first_new_row + offset, start,
                                               len(piece), length),
                             "values": piece})
    return data


def _row_pieces(block: list[list[Any]]) -> Iterator[tuple[int, list[list[Any]]]]:
    """Cut a block of rows into (first row offset, rows) pieces that fit one body.

    ``_chunks`` packs whole ranges into bodies, so a block of appended rows
    larger than ``MAX_BODY_BYTES`` must become several ranges first.
    """
    # Room for the range text and the keys of the body around the values.
    budget = MAX_BODY_BYTES - 1_000
    if len(json.dumps(block, separators=(",", ":"))) <= budget:
        yield 0, block
        return
    piece: list[list[Any]] = []
    size = first = 0
    for index, row in enumerate(block):
        row_size = len(json.dumps(row, separators=(",", ":"))) + 1
        if piece and size + row_size > budget:
            yield first, piece
            piece, size, first = [], 0, index
        piece.append(row)
        size += row_size
    if piece:
        yield first, piece


def _row_shift(deleted: list[int]) -> Callable[[int], int]:
    import bisect

    def shift(row: int) -> int:
        return row - bisect.bisect_left(deleted, row)

    return shift


def _format_requests(sheet_id: int | None, kinds: dict[int, str],
                     new_columns: set[int], grown_from: int | None,
                     rows: int) -> list[dict[str, Any]]:
    """Set date formats on owned date-like columns: new columns whole, new rows only.

    Cells already in the grid keep whatever format they have, so a format a
    person chose for a column survives; rows the grid gains get the column's
    format, so appended dates display as dates.
    """
    requests = []
    for column, kind in sorted(kinds.items()):
        number_format = NUMBER_FORMATS.get(kind)
        if number_format is None:
            continue
        if column in new_columns or grown_from is None:
            start = 1
        elif grown_from < rows:
            start = max(grown_from, 1)
        else:
            continue
        requests.append({"repeatCell": {
            "range": {"sheetId": sheet_id, "startRowIndex": start,
                      "endRowIndex": rows, "startColumnIndex": column,
                      "endColumnIndex": column + 1},
            "cell": {"userEnteredFormat": {"numberFormat": number_format}},
            "fields": "userEnteredFormat.numberFormat"}})
    return requests


def _chunks(key: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split a request list into bodies under ``MAX_BODY_BYTES`` and the subrequest cap."""
    bodies: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []
    # The keys around the list, such as "valueInputOption", take this much.
    size = envelope = 100
    for item in items:
        item_size = len(json.dumps(item, separators=(",", ":")))
        if current and (size + item_size > MAX_BODY_BYTES
                        or len(current) >= MAX_SUBREQUESTS):
            bodies.append({key: current})
            current, size = [], envelope
        current.append(item)
        size += item_size + 1
    if current:
        bodies.append({key: current})
    return bodies


def _same_row(now: Grid, before: Grid, row: int) -> bool:
    def trimmed(grid: Grid) -> list[Any]:
        values = list(grid.rows[row]) if row < len(grid.rows) else []
        while values and values[-1] in (None, ""):
            values.pop()
        return values

    return trimmed(now) == trimmed(before)


def _same_values(sent: list[list[Any]], read: list[list[Any]]) -> bool:
    for index, row in enumerate(sent):
        stored = read[index] if index < len(read) else []
        for column, value in enumerate(row):
            current = stored[column] if column < len(stored) else ""
            if value != current and not (isinstance(value, (int, float))
                                         and isinstance(current, (int, float))
                                         and abs(value - current) < 1e-9):
                return False
    return True


_API_ERROR_HINTS = {
    403: "share the spreadsheet with the service account's email as an editor",
    404: "check the spreadsheet id, and that the spreadsheet still exists",
}


def _api_message(exc: APIError) -> str:
    status = exc.response.status_code
    hint = f"; {_API_ERROR_HINTS[status]}" if status in _API_ERROR_HINTS else ""
    try:
        error = exc.response.json().get("error", {})
    except ValueError:
        return f"Sheets API error {status}: {exc.response.text[:200]}{hint}"
    text = (f"Sheets API error {error.get('code', status)}"
            f" {error.get('status', '')}: {error.get('message', '')}").strip()
    return text + hint
