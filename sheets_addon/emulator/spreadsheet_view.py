"""Render a spreadsheet as the ``spreadsheets.get`` JSON resource.

``includeGridData=true``, or a ``fields`` mask that names ``sheets.data``,
adds GridData for each sheet, or for each ``ranges`` entry (then only the
sheets those ranges touch are listed, as Google does).  GridData carries
``rowData`` with ``userEnteredValue``, ``effectiveValue``, ``formattedValue``,
``userEnteredFormat``, ``note`` and ``dataValidation`` per cell, plus row and
column metadata.

NOTE: ``effectiveFormat`` (the fully resolved format of every cell) is not
produced; read ``userEnteredFormat`` instead.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from . import fields
from .cells import Cell, extended_value, format_value
from .state import ResolvedRange, Sheet, Spreadsheet

logger = logging.getLogger(__name__)

DEFAULT_ROW_PIXELS = 21
DEFAULT_COLUMN_PIXELS = 100


def spreadsheet_url(spreadsheet_id: str) -> str:
    """Return the browser URL Google reports for a spreadsheet (never fetched)."""
    return f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit"


def render_spreadsheet(
    spreadsheet: Spreadsheet,
    include_grid_data: bool = False,
    ranges: list[str] | None = None,
    field_mask: str | None = None,
) -> dict[str, Any]:
    """Return the Spreadsheet resource, filtered by ``field_mask`` if given."""
    mask = fields.parse_mask(field_mask) if field_mask else None
    wants_data = include_grid_data or _mask_names_data(mask)
    resolved = [spreadsheet.resolve(text) for text in ranges or []]
    sheets = []
    for index, sheet in enumerate(spreadsheet.sheets):
        sheet_ranges = [item for item in resolved if item.sheet is sheet]
        if resolved and not sheet_ranges:
            continue
        sheets.append(render_sheet(spreadsheet, sheet, index, wants_data, sheet_ranges))
    resource: dict[str, Any] = {
        "spreadsheetId": spreadsheet.spreadsheet_id,
        "properties": copy.deepcopy(spreadsheet.properties),
        "sheets": sheets,
    }
    if spreadsheet.named_ranges:
        resource["namedRanges"] = [render_named_range(named) for named in spreadsheet.named_ranges]
    resource["spreadsheetUrl"] = spreadsheet_url(spreadsheet.spreadsheet_id)
    return fields.select(resource, mask)


def _mask_names_data(mask: fields.Mask | None) -> bool:
    if mask is None:
        return False
    sheets_mask = mask.get("sheets", {}) if "sheets" in mask else {}
    return sheets_mask is None or "data" in sheets_mask


def render_grid_range(grid_range: dict[str, Any]) -> dict[str, Any]:
    """Return a GridRange as Google echoes it: ``sheetId`` 0 is omitted."""
    rendered = {key: value for key, value in grid_range.items() if value is not None}
    if rendered.get("sheetId") == 0:
        rendered.pop("sheetId")
    return rendered


def render_named_range(named: dict[str, Any]) -> dict[str, Any]:
    return {
        "namedRangeId": named["namedRangeId"],
        "name": named["name"],
        "range": render_grid_range(named["range"]),
    }


def render_sheet_properties(sheet: Sheet, index: int) -> dict[str, Any]:
    properties = copy.deepcopy(sheet.properties)
    ordered = {
        "sheetId": properties.pop("sheetId"),
        "title": properties.pop("title"),
        "index": index,
        "sheetType": properties.pop("sheetType", "GRID"),
        "gridProperties": properties.pop("gridProperties"),
    }
    ordered.update(properties)
    return ordered


def render_sheet(
    spreadsheet: Spreadsheet,
    sheet: Sheet,
    index: int,
    wants_data: bool,
    ranges: list[ResolvedRange],
) -> dict[str, Any]:
    rendered: dict[str, Any] = {"properties": render_sheet_properties(sheet, index)}
    if wants_data:
        targets = ranges or [ResolvedRange(sheet, 0, None, 0, None)]
        rendered["data"] = [render_grid_data(spreadsheet, target) for target in targets]
    if sheet.merges:
        rendered["merges"] = [render_grid_range(merge) for merge in sheet.merges]
    for dimension, key in (("ROWS", "rowGroups"), ("COLUMNS", "columnGroups")):
        if sheet.groups[dimension]:
            rendered[key] = copy.deepcopy(sheet.groups[dimension])
    if sheet.basic_filter:
        basic_filter = copy.deepcopy(sheet.basic_filter)
        basic_filter["range"] = render_grid_range(basic_filter["range"])
        rendered["basicFilter"] = basic_filter
    return rendered


def render_grid_data(spreadsheet: Spreadsheet, resolved: ResolvedRange) -> dict[str, Any]:
    """Return GridData for a range: trimmed rowData plus metadata."""
    sheet = resolved.sheet
    r0, r1, c0, c1 = resolved.clamped()
    grid: dict[str, Any] = {}
    if r0:
        grid["startRow"] = r0
    if c0:
        grid["startColumn"] = c0
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for (row, column), cell in sheet.cells.items():
        if r0 <= row < r1 and c0 <= column < c1:
            data = render_cell_data(spreadsheet, sheet, row, column, cell)
            if data:
                cells[(row - r0, column - c0)] = data
    row_data = _row_data(cells)
    if row_data:
        grid["rowData"] = row_data
    grid["rowMetadata"] = [
        _dimension_metadata(sheet.row_metadata.get(row), DEFAULT_ROW_PIXELS) for row in range(r0, r1)
    ]
    grid["columnMetadata"] = [
        _dimension_metadata(sheet.column_metadata.get(column), DEFAULT_COLUMN_PIXELS)
        for column in range(c0, c1)
    ]
    return grid


def _row_data(cells: dict[tuple[int, int], dict[str, Any]]) -> list[dict[str, Any]]:
    if not cells:
        return []
    by_row: dict[int, dict[int, dict[str, Any]]] = {}
    for (row, column), data in cells.items():
        by_row.setdefault(row, {})[column] = data
    rows: list[dict[str, Any]] = []
    for row in range(max(by_row) + 1):
        columns = by_row.get(row)
        if not columns:
            rows.append({})
            continue
        rows.append({"values": [columns.get(column, {}) for column in range(max(columns) + 1)]})
    return rows


def _dimension_metadata(metadata: dict[str, Any] | None, default_pixels: int) -> dict[str, Any]:
    rendered = {"pixelSize": default_pixels}
    rendered.update(copy.deepcopy(metadata or {}))
    if rendered.get("hiddenByUser") is False:
        rendered.pop("hiddenByUser")
    return rendered


def render_cell_data(spreadsheet: Spreadsheet, sheet: Sheet, row: int, column: int, cell: Cell) -> dict[str, Any]:
    """Return the CellData object of one stored cell."""
    data: dict[str, Any] = {}
    if cell.has_content():
        effective = spreadsheet.effective_value(sheet, row, column)
        data["userEnteredValue"] = extended_value(cell.value, cell.formula)
        effective_json = extended_value(effective)
        if effective_json is not None:
            data["effectiveValue"] = effective_json
        data["formattedValue"] = format_value(effective, cell.number_format())
    if cell.user_format:
        data["userEnteredFormat"] = copy.deepcopy(cell.user_format)
    if cell.note:
        data["note"] = cell.note
    if cell.data_validation:
        data["dataValidation"] = copy.deepcopy(cell.data_validation)
    return data
