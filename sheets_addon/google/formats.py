"""Number formats and checkbox validations for the cells a sync writes.

Under ``valueInputOption=RAW`` a date travels as a serial number, and Sheets shows
a serial as a date only when the cell's number format is a date format. Columns
and grid rows that syncplan adds get the format of their kind in the structural
request (``structure_formats``), and checkbox columns their BOOLEAN validation.

Cells written into grid rows that already existed need a look at their current
format, which the values read does not return. The rule is the one the ``.xlsx``
backend follows: a format of the right type is kept (a person's ``dd/mm/yyyy``
stays), a date-like cell without one gets the default of its kind, and a number
written into a date-formatted cell loses the date format. Only cells that were
empty or held text or a boolean are looked at (``cells_to_check``), so a resync
that rewrites dates over dates, or numbers over numbers, reads no format at all.

NOTE: a date written over a plain number in a cell with no number format keeps
no date format and shows as a serial until someone formats the cell.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from runtime.sheets.base import ChangeSet, Grid
from sheets_addon.google.cells import NUMBER_FORMATS, runs

DATE_LIKE_TYPES = frozenset({"DATE", "DATE_TIME", "TIME"})
# An empty format under the field mask resets the cell to the automatic format.
AUTOMATIC_FORMAT: dict[str, Any] = {}
# The kinds whose written cells may need a number format set or reset.
_FORMATTED_KINDS = frozenset({*NUMBER_FORMATS, "number"})

Position = tuple[int, int]


def cells_to_check(changes: ChangeSet, grid: Grid, first_new_row: int,
                   deleted_count: int, grid_rows: int,
                   new_columns: set[int]) -> dict[int, list[int]]:
    """Return, by column, the rows (as read) whose number format must be read.

    These are cells of date-like and number columns, written with a value into a
    grid row that existed before this sync and a column that did too, which held
    no number before. ``grid_rows`` is the tab's row count as read.
    """
    wanted: dict[int, set[int]] = {}
    for read_row, _written, column, value in _written_cells(
            changes, lambda row: row, first_new_row, deleted_count):
        if (read_row == 0 or read_row >= grid_rows or column in new_columns
                or value is None or value == ""
                or changes.column_kinds.get(column) not in _FORMATTED_KINDS):
            continue
        old = _cell(grid, read_row, column)
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            continue
        wanted.setdefault(column, set()).add(read_row)
    return {column: sorted(rows) for column, rows in sorted(wanted.items())}


def written_cell_formats(sheet_id: int, changes: ChangeSet, known: dict[Position, str],
                         checked: set[Position], shift: Callable[[int], int],
                         first_new_row: int, deleted_count: int) -> list[dict[str, Any]]:
    """Return ``repeatCell`` requests for checked cells whose format does not fit.

    ``checked`` are the cells (row as read, column) whose format was read, and
    ``known`` maps those of them that have a number format to its type.
    ``shift`` turns a row as read into its row after the deletions. Row indexes
    of the requests are those after the deletions, because the requests follow
    the deletions in the same batch.
    """
    targets: dict[tuple[int, str], set[int]] = {}
    for read_row, written_row, column, value in _written_cells(
            changes, shift, first_new_row, deleted_count):
        if (read_row, column) not in checked:
            continue
        number_format = _needed_format(changes.column_kinds.get(column), value,
                                       known.get((read_row, column)))
        if number_format is not None:
            key = (column, json.dumps(number_format, sort_keys=True))
            targets.setdefault(key, set()).add(written_row)

    requests = []
    for (column, encoded), rows in sorted(targets.items()):
        for start, length in runs(rows):
            requests.append(_repeat_format(sheet_id, start, start + length, column,
                                           json.loads(encoded)))
    return requests


def structure_formats(sheet_id: int, changes: ChangeSet, new_columns: set[int],
                      grown_from: int | None, rows: int) -> list[dict[str, Any]]:
    """Format the cells syncplan adds: new columns whole, new grid rows only.

    Date-like owned columns get the number format of their kind, and checkbox
    columns a BOOLEAN validation. ``grown_from`` is the first grid row added by
    this sync (``None`` for a new tab) and ``rows`` the row count afterwards.
    Cells already in the grid keep their format and validation, so what a
    person chose for a column survives.
    """
    requests = []
    columns = sorted(set(changes.column_kinds) | changes.checkbox_columns)
    for column in columns:
        if column in new_columns or grown_from is None:
            start = 1
        elif grown_from < rows:
            start = max(grown_from, 1)
        else:
            continue
        number_format = NUMBER_FORMATS.get(changes.column_kinds.get(column, "text"))
        if number_format is not None:
            requests.append(_repeat_format(sheet_id, start, rows, column,
                                           number_format))
        if column in changes.checkbox_columns:
            requests.append(_checkbox(sheet_id, start, rows, column))
    return requests


def _written_cells(changes: ChangeSet, shift: Callable[[int], int], first_new_row: int,
                   deleted_count: int) -> Iterable[tuple[int, int, int, Any]]:
    """Yield (row as read, row after deletions, column, value) of every written cell."""
    deleted = set(changes.delete_rows)
    for (row, column), value in changes.cells.items():
        if row not in deleted:
            yield row, shift(row), column, value
    for offset, values in enumerate(changes.append_rows):
        written_row = first_new_row + offset
        # Every deleted row lies above the appended ones, so the cell that gains
        # the appended value was read ``deleted_count`` rows further down.
        for column, value in enumerate(values):
            yield written_row + deleted_count, written_row, column, value


def _cell(grid: Grid, row: int, column: int) -> Any:
    if row < len(grid.rows) and column < len(grid.rows[row]):
        return grid.rows[row][column]
    return None


def _needed_format(kind: str | None, value: Any,
                   current_type: str | None) -> dict[str, Any] | None:
    if value is None or value == "" or kind is None:
        return None
    wanted = NUMBER_FORMATS.get(kind)
    if wanted is not None:
        return None if current_type == wanted["type"] else wanted
    if kind == "number" and current_type in DATE_LIKE_TYPES:
        return AUTOMATIC_FORMAT
    return None


def _grid_range(sheet_id: int, start_row: int, end_row: int,
                column: int) -> dict[str, int]:
    return {"sheetId": sheet_id, "startRowIndex": start_row, "endRowIndex": end_row,
            "startColumnIndex": column, "endColumnIndex": column + 1}


def _repeat_format(sheet_id: int, start_row: int, end_row: int, column: int,
                   number_format: dict[str, Any]) -> dict[str, Any]:
    cell_format = {"numberFormat": number_format} if number_format else {}
    return {"repeatCell": {
        "range": _grid_range(sheet_id, start_row, end_row, column),
        "cell": {"userEnteredFormat": cell_format},
        "fields": "userEnteredFormat.numberFormat"}}


def _checkbox(sheet_id: int, start_row: int, end_row: int,
              column: int) -> dict[str, Any]:
    # A BOOLEAN condition without values shows TRUE and FALSE as a ticked and an
    # empty checkbox.
    return {"setDataValidation": {
        "range": _grid_range(sheet_id, start_row, end_row, column),
        "rule": {"condition": {"type": "BOOLEAN"}, "strict": True}}}
