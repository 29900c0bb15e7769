"""Checks run after a write that may have applied although it failed.

A timeout or a 5xx response to a write leaves open whether Sheets applied it.
Resending a values write that applied is harmless, but resending a row deletion
that applied deletes other rows, and resending an ``addSheet`` fails. So before
anything is resent, the spreadsheet is read again and each check below returns
True only when the write did not apply.

Values are read back with one ``values:batchGetByDataFilter`` POST whose body
lists the written ranges: the ranges of a sync that changed thousands of rows
would pass the URL length Google accepts in a ``values:batchGet`` query.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from runtime.sheets.base import Grid
from sheets_addon.google.cells import block_range, grid_from_values, quote_sheet

logger = logging.getLogger(__name__)

BATCH_GET_BY_DATA_FILTER_URL = ("https://sheets.googleapis.com/v4/spreadsheets/%s"
                                "/values:batchGetByDataFilter?prettyPrint=false")
READ_OPTIONS = {"valueRenderOption": "UNFORMATTED_VALUE",
                "dateTimeRenderOption": "SERIAL_NUMBER"}
PROPERTIES_FIELDS = "sheets(properties(sheetId,title,gridProperties))"


class Reader(Protocol):
    """The reads the checks need; the backend provides them outside its budget."""

    spreadsheet_id: str

    def post_json(self, url: str, body: dict[str, Any]) -> Any: ...

    def get_metadata(self, params: dict[str, Any]) -> Any: ...

    def get_values(self, range_text: str) -> Any: ...


def values_unchanged(reader: Reader, data: list[dict[str, Any]]) -> bool:
    """Read the written ranges back; return True when a cell lacks what was sent."""
    # A written range names its top-left cell only, so the filter spans the block.
    filters = [{"a1Range": block_range(entry["range"], entry["values"])}
               for entry in data]
    answer = reader.post_json(BATCH_GET_BY_DATA_FILTER_URL % reader.spreadsheet_id,
                              {"dataFilters": filters, **READ_OPTIONS})
    matched = answer.get("valueRanges", [])
    if len(matched) != len(data):
        return True
    for sent, read in zip(data, matched, strict=True):
        stored = (read.get("valueRange") or {}).get("values", [])
        if not same_values(sent["values"], stored):
            return True
    return False


def tab_properties(reader: Reader, sheet_id: int) -> dict[str, Any] | None:
    """Return the properties of the tab with ``sheet_id``, or None when it is gone."""
    metadata = reader.get_metadata({"fields": PROPERTIES_FIELDS})
    for sheet in metadata.get("sheets", []):
        if sheet["properties"]["sheetId"] == sheet_id:
            return sheet["properties"]
    return None


def tab_grid(reader: Reader, title: str) -> Grid:
    """Read a tab's values again."""
    answer = reader.get_values(quote_sheet(title))
    return grid_from_values(answer.get("values", []))


def same_row(now: Grid, before: Grid, row: int) -> bool:
    """Tell whether row ``row`` contains the same values in two reads of a tab."""
    def trimmed(grid: Grid) -> list[Any]:
        values = list(grid.rows[row]) if row < len(grid.rows) else []
        while values and values[-1] in (None, ""):
            values.pop()
        return values

    return trimmed(now) == trimmed(before)


def same_values(sent: list[list[Any]], read: list[list[Any]]) -> bool:
    """Tell whether the cells read back hold the values sent (numbers within 1e-9)."""
    for index, row in enumerate(sent):
        stored = read[index] if index < len(read) else []
        for column, value in enumerate(row):
            current = stored[column] if column < len(stored) else ""
            if value != current and not (isinstance(value, (int, float))
                                         and isinstance(current, (int, float))
                                         and abs(value - current) < 1e-9):
                return False
    return True
