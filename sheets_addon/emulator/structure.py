"""Row and column insertion and deletion, shared by batchUpdate and append.

Inserting or deleting shifts cells, row/column metadata, merges, the basic
filter and named ranges of the sheet, like Sheets does.

NOTE: formula text and row/column groups are not adjusted when rows or
columns move, so a formula referring to shifted cells keeps its old
references (Sheets would rewrite them).
"""

from __future__ import annotations

import logging
from typing import Any

from . import errors
from .state import Sheet, Spreadsheet

logger = logging.getLogger(__name__)

ROWS, COLUMNS = "ROWS", "COLUMNS"


def _axis(dimension: str) -> int:
    if dimension == ROWS:
        return 0
    if dimension == COLUMNS:
        return 1
    raise errors.invalid_argument(
        f"Invalid dimension {dimension!r}. Use ROWS or COLUMNS."
    )


def _count_key(dimension: str) -> str:
    return "rowCount" if dimension == ROWS else "columnCount"


def _index_keys(dimension: str) -> tuple[str, str]:
    if dimension == ROWS:
        return "startRowIndex", "endRowIndex"
    return "startColumnIndex", "endColumnIndex"


def insert_dimension(spreadsheet: Spreadsheet, sheet: Sheet, dimension: str, start: int, end: int) -> None:
    """Insert ``end - start`` empty rows or columns before index ``start``."""
    axis = _axis(dimension)
    count = end - start
    size = sheet.properties["gridProperties"][_count_key(dimension)]
    if count <= 0 or start < 0 or start > size:
        raise errors.invalid_argument(
            f"Invalid insert range [{start}, {end}) for a sheet with {size} "
            f"{dimension.lower()}. Use 0 <= startIndex < endIndex, startIndex <= {size}."
        )
    spreadsheet.check_cell_limit(count * (sheet.column_count if axis == 0 else sheet.row_count))
    sheet.cells = {
        _shifted(position, axis, start, count): cell for position, cell in sheet.cells.items()
    }
    metadata = sheet.row_metadata if axis == 0 else sheet.column_metadata
    shifted = {(index + count if index >= start else index): value for index, value in metadata.items()}
    metadata.clear()
    metadata.update(shifted)
    for grid_range in _grid_ranges(spreadsheet, sheet):
        _shift_range_for_insert(grid_range, dimension, start, count)
    sheet.properties["gridProperties"][_count_key(dimension)] = size + count


def delete_dimension(spreadsheet: Spreadsheet, sheet: Sheet, dimension: str, start: int, end: int) -> None:
    """Delete rows or columns ``[start, end)``."""
    axis = _axis(dimension)
    size = sheet.properties["gridProperties"][_count_key(dimension)]
    end = min(end, size)
    if start < 0 or start >= end:
        raise errors.invalid_argument(
            f"Invalid delete range [{start}, {end}) for a sheet with {size} "
            f"{dimension.lower()}. Use 0 <= startIndex < endIndex <= {size}."
        )
    if start == 0 and end == size:
        noun = "rows" if axis == 0 else "columns"
        raise errors.invalid_argument(f"You can't delete all the {noun} on the sheet.")
    count = end - start

    cells = {}
    for position, cell in sheet.cells.items():
        if start <= position[axis] < end:
            continue
        cells[_shifted(position, axis, end, -count)] = cell
    sheet.cells = cells

    metadata = sheet.row_metadata if axis == 0 else sheet.column_metadata
    remaining = {
        (index - count if index >= end else index): value
        for index, value in metadata.items()
        if not start <= index < end
    }
    metadata.clear()
    metadata.update(remaining)

    sheet.merges = [m for m in sheet.merges if _shift_range_for_delete(m, dimension, start, end)]
    if sheet.basic_filter and not _shift_range_for_delete(sheet.basic_filter["range"], dimension, start, end):
        sheet.basic_filter = None
    spreadsheet.named_ranges = [
        named for named in spreadsheet.named_ranges
        if named["range"].get("sheetId", 0) != sheet.sheet_id
        or _shift_range_for_delete(named["range"], dimension, start, end)
    ]
    sheet.properties["gridProperties"][_count_key(dimension)] = size - count


def _shifted(position: tuple[int, int], axis: int, start: int, delta: int) -> tuple[int, int]:
    if position[axis] < start:
        return position
    if axis == 0:
        return position[0] + delta, position[1]
    return position[0], position[1] + delta


def _grid_ranges(spreadsheet: Spreadsheet, sheet: Sheet) -> list[dict[str, Any]]:
    ranges = list(sheet.merges)
    if sheet.basic_filter:
        ranges.append(sheet.basic_filter["range"])
    ranges.extend(
        named["range"] for named in spreadsheet.named_ranges
        if named["range"].get("sheetId", 0) == sheet.sheet_id
    )
    return ranges


def _shift_range_for_insert(grid_range: dict[str, Any], dimension: str, start: int, count: int) -> None:
    start_key, end_key = _index_keys(dimension)
    first = grid_range.get(start_key, 0)
    last = grid_range.get(end_key)
    if first >= start:
        grid_range[start_key] = first + count
    if last is not None and last > start:
        grid_range[end_key] = last + count


def _shift_range_for_delete(grid_range: dict[str, Any], dimension: str, start: int, end: int) -> bool:
    """Shrink or shift a GridRange for a deletion; return False if it vanished."""
    start_key, end_key = _index_keys(dimension)
    first = grid_range.get(start_key, 0)
    last = grid_range.get(end_key)
    count = end - start
    new_first = first if first < start else max(start, first - count)
    if last is None:
        new_last = None
    elif last <= start:
        new_last = last
    else:
        new_last = max(start, last - count) if last <= end else last - count
    if new_last is not None and new_last <= new_first:
        return False
    if start_key in grid_range or new_first:
        grid_range[start_key] = new_first
    if new_last is not None:
        grid_range[end_key] = new_last
    return True
