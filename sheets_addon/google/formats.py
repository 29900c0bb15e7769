"""Number formats for the cells a sync writes into rows that already exist.

Under ``valueInputOption=RAW`` a date travels as a serial number, and Sheets shows
(and the backend reads back) a serial as a date only when the cell's number format
is a date format. Columns and grid rows that syncplan adds get the format of
their kind in the structural request. This module covers the other cells written,
those of rows a person added or of grid rows that were already there. The rule
is the one the ``.xlsx`` backend follows: a format of the right type is kept (a
person's ``dd/mm/yyyy`` stays), a date-like cell without one gets the default of
its kind, and a number written into a date-formatted cell loses the date format,
because it would read back as a date and differ on every sync.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from runtime.sheets.base import ChangeSet
from sheets_addon.google.cells import NUMBER_FORMATS, runs

DATE_LIKE_TYPES = frozenset({"DATE", "DATE_TIME", "TIME"})
# An empty format under the field mask resets the cell to the automatic format.
AUTOMATIC_FORMAT: dict[str, Any] = {}

Position = tuple[int, int]


def written_cell_formats(sheet_id: int, changes: ChangeSet, known: dict[Position, str],
                         shift: Callable[[int], int], first_new_row: int,
                         deleted_count: int, grown_from: int,
                         new_columns: set[int]) -> list[dict[str, Any]]:
    """Return ``repeatCell`` requests for written cells whose format does not fit their kind.

    ``known`` maps a cell (row and column as read) to its number format type.
    ``shift`` turns a row as read into its row after the deletions. Rows from
    ``grown_from`` on (after the deletions) are new grid rows, and
    ``new_columns`` are columns added by this sync: the caller formats both
    whole. Row indexes of the requests are those after the deletions, because
    the requests follow the deletions in the same batch.
    """
    targets: dict[tuple[int, str], set[int]] = {}
    for read_row, written_row, column, value in _written_cells(
            changes, shift, first_new_row, deleted_count):
        if written_row == 0 or written_row >= grown_from or column in new_columns:
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


def _repeat_format(sheet_id: int, start_row: int, end_row: int, column: int,
                   number_format: dict[str, Any]) -> dict[str, Any]:
    cell_format = {"numberFormat": number_format} if number_format else {}
    return {"repeatCell": {
        "range": {"sheetId": sheet_id, "startRowIndex": start_row,
                  "endRowIndex": end_row, "startColumnIndex": column,
                  "endColumnIndex": column + 1},
        "cell": {"userEnteredFormat": cell_format},
        "fields": "userEnteredFormat.numberFormat"}}
