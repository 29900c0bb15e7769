"""``POST /v4/spreadsheets/{id}:batchUpdate``: structural and format requests.

Implemented request kinds: addSheet, deleteSheet, updateSheetProperties,
updateSpreadsheetProperties, appendDimension, insertDimension,
deleteDimension, updateDimensionProperties, addDimensionGroup,
deleteDimensionGroup, repeatCell, setDataValidation, updateCells,
mergeCells, unmergeCells, addNamedRange, updateNamedRange, deleteNamedRange,
sortRange, setBasicFilter, clearBasicFilter, copyPaste and cutPaste.

The batch is atomic like Google's: if any request fails, none applies.  A
request kind Google defines but the emulator lacks returns 501 UNIMPLEMENTED
naming it; an unknown kind returns Google's 400 for an unknown field.
Failures are prefixed ``Invalid requests[i].kind: `` as Google does.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Any, Callable

from . import errors, fields
from .cells import Cell, cell_from_extended, extended_value
from .formats import normalize_format
from .formula import FormulaError
from .spreadsheet_view import render_named_range, render_sheet_properties
from .state import ResolvedRange, Sheet, Spreadsheet, Store
from .structure import delete_dimension, insert_dimension

logger = logging.getLogger(__name__)

# Request kinds defined by Sheets API v4 (Request message fields).
KNOWN_REQUEST_KINDS = frozenset(
    """
    updateSpreadsheetProperties updateSheetProperties updateDimensionProperties
    updateNamedRange repeatCell addNamedRange deleteNamedRange addSheet deleteSheet
    autoFill cutPaste copyPaste mergeCells unmergeCells updateBorders updateCells
    addFilterView appendCells clearBasicFilter deleteDimension deleteEmbeddedObject
    deleteFilterView duplicateFilterView duplicateSheet findReplace insertDimension
    insertRange moveDimension updateEmbeddedObjectPosition pasteData textToColumns
    updateFilterView deleteRange appendDimension addConditionalFormatRule
    updateConditionalFormatRule deleteConditionalFormatRule sortRange setDataValidation
    setBasicFilter addProtectedRange updateProtectedRange deleteProtectedRange
    autoResizeDimensions addChart updateChartSpec updateBanding addBanding deleteBanding
    createDeveloperMetadata updateDeveloperMetadata deleteDeveloperMetadata
    randomizeRange addDimensionGroup deleteDimensionGroup updateDimensionGroup
    trimWhitespace deleteDuplicates updateEmbeddedObjectBorder addSlicer
    updateSlicerSpec addDataSource updateDataSource deleteDataSource refreshDataSource
    cancelDataSourceRefresh addTable updateTable deleteTable
    """.split()
)

# Sheet properties Google omits from responses when they hold their default.
_OMITTED_WHEN_DEFAULT = ("hidden", "rightToLeft")
_GRID_OMITTED_WHEN_DEFAULT = (
    "frozenRowCount", "frozenColumnCount", "hideGridlines",
    "rowGroupControlAfter", "columnGroupControlAfter",
)

Handler = Callable[["BatchContext", dict[str, Any]], dict[str, Any]]


class BatchContext:
    """The spreadsheet a batch works on, plus the store for new ids."""

    def __init__(self, store: Store, spreadsheet: Spreadsheet) -> None:
        self.store = store
        self.spreadsheet = spreadsheet

    def sheet(self, sheet_id: int | None) -> Sheet:
        sheet = self.spreadsheet.sheet_by_id(sheet_id or 0)
        if sheet is None:
            raise errors.invalid_argument(f"No grid with id: {sheet_id or 0}")
        return sheet

    def grid_range(self, grid_range: dict[str, Any] | None) -> ResolvedRange:
        return self.spreadsheet.resolve_grid_range(grid_range or {})


def supported_kinds() -> list[str]:
    """Return the request kinds the emulator implements."""
    return sorted(_HANDLERS)


def request_kind(request: Any) -> str | None:
    """Return the kind of one batchUpdate request object, if it has one."""
    if isinstance(request, dict) and len(request) == 1:
        return next(iter(request))
    return None


def batch_update(store: Store, spreadsheet: Spreadsheet, body: Any) -> dict[str, Any]:
    """Apply a batchUpdate body atomically and return its response."""
    if not isinstance(body, dict):
        raise errors.invalid_argument("Invalid JSON payload received. Expected an object.")
    requests = body.get("requests") or []
    if not isinstance(requests, list):
        raise errors.invalid_argument("Invalid value at 'requests': expected a list.")
    context = BatchContext(store, spreadsheet)
    snapshot = spreadsheet.snapshot()
    replies = []
    try:
        for index, request in enumerate(requests):
            replies.append(_apply_one(context, index, request))
    except errors.ApiError:
        spreadsheet.restore(snapshot)
        raise
    spreadsheet.touch()
    response: dict[str, Any] = {"spreadsheetId": spreadsheet.spreadsheet_id, "replies": replies}
    if body.get("includeSpreadsheetInResponse"):
        from .spreadsheet_view import render_spreadsheet

        response["updatedSpreadsheet"] = render_spreadsheet(
            spreadsheet,
            include_grid_data=bool(body.get("responseIncludeGridData")),
            ranges=body.get("responseRanges"),
        )
    return response


def _apply_one(context: BatchContext, index: int, request: Any) -> dict[str, Any]:
    kind = request_kind(request)
    if kind is None:
        raise errors.invalid_argument(
            f"Invalid requests[{index}]: each request must set exactly one kind, got {request!r}."
        )
    handler = _HANDLERS.get(kind)
    if handler is None:
        if kind in KNOWN_REQUEST_KINDS:
            raise errors.unimplemented(f"the batchUpdate request kind {kind!r} (requests[{index}])")
        raise errors.invalid_argument(
            f"Invalid JSON payload received. Unknown name \"{kind}\" at 'requests[{index}]': "
            "Cannot find field."
        )
    try:
        return handler(context, request[kind] or {})
    except errors.ApiError as error:
        if error.code == 400 and not error.message.startswith("Invalid requests["):
            raise errors.ApiError(
                400, f"Invalid requests[{index}].{kind}: {error.message}", details=error.details
            ) from None
        raise


# --- sheets and spreadsheet properties ----------------------------------


def _add_sheet(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    spreadsheet = context.spreadsheet
    requested = copy.deepcopy(request.get("properties") or {})
    sheet = context.store.build_sheet(spreadsheet, requested)
    sheet.properties = normalize_format(sheet.properties)
    spreadsheet.check_cell_limit(sheet.cell_count())
    index = requested.get("index", len(spreadsheet.sheets))
    index = max(0, min(index, len(spreadsheet.sheets)))
    spreadsheet.sheets.insert(index, sheet)
    return {"addSheet": {"properties": render_sheet_properties(sheet, index)}}


def _delete_sheet(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    spreadsheet = context.spreadsheet
    sheet = context.sheet(request.get("sheetId"))
    if len(spreadsheet.sheets) == 1:
        raise errors.invalid_argument("You can't remove all the sheets in a document.")
    spreadsheet.sheets.remove(sheet)
    spreadsheet.named_ranges = [
        named for named in spreadsheet.named_ranges
        if named["range"].get("sheetId", 0) != sheet.sheet_id
    ]
    return {}


def _update_sheet_properties(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    spreadsheet = context.spreadsheet
    requested = request.get("properties") or {}
    sheet = context.sheet(requested.get("sheetId"))
    before = copy.deepcopy(sheet.properties)
    staged = copy.deepcopy(sheet.properties)
    staged["index"] = spreadsheet.sheets.index(sheet)
    paths = fields.apply_update(staged, requested, request.get("fields", ""))
    touched = {path[0] for path in paths}
    new_index = staged.pop("index", None)
    staged["sheetId"] = before["sheetId"]
    _mirror_tab_color(staged, touched)
    _validate_sheet_properties(spreadsheet, sheet, before, staged)
    sheet.properties = normalize_format(_prune_defaults(staged))
    _apply_grid_resize(spreadsheet, sheet, before)
    if "index" in touched and new_index is not None:
        spreadsheet.sheets.remove(sheet)
        spreadsheet.sheets.insert(max(0, min(new_index, len(spreadsheet.sheets))), sheet)
    return {}


def _mirror_tab_color(properties: dict[str, Any], touched: set[str]) -> None:
    if "tabColorStyle" in touched:
        rgb = (properties.get("tabColorStyle") or {}).get("rgbColor")
        if rgb:
            properties["tabColor"] = copy.deepcopy(rgb)
        else:
            properties.pop("tabColor", None)
            properties.pop("tabColorStyle", None)
    elif "tabColor" in touched:
        if properties.get("tabColor"):
            properties["tabColorStyle"] = {"rgbColor": copy.deepcopy(properties["tabColor"])}
        else:
            properties.pop("tabColorStyle", None)


def _validate_sheet_properties(
    spreadsheet: Spreadsheet, sheet: Sheet, before: dict[str, Any], staged: dict[str, Any]
) -> None:
    title = staged.get("title")
    if not title:
        raise errors.invalid_argument("The sheet title must not be empty.")
    other = spreadsheet.sheet_by_title(title)
    if other is not None and other is not sheet and other.title == title:
        raise errors.invalid_argument(
            f'A sheet with the name "{title}" already exists. Please enter another name.'
        )
    if staged.get("hidden"):
        visible = [s for s in spreadsheet.sheets if s is not sheet and not s.properties.get("hidden")]
        if not visible:
            raise errors.invalid_argument("You can't hide all the sheets in a document.")
    grid = staged.get("gridProperties") or {}
    rows, columns = grid.get("rowCount"), grid.get("columnCount")
    if not isinstance(rows, int) or not isinstance(columns, int) or rows < 1 or columns < 1:
        raise errors.invalid_argument(
            f"Invalid grid size {rows!r} x {columns!r}; rowCount and columnCount must be at least 1."
        )
    growth = rows * columns - before["gridProperties"]["rowCount"] * before["gridProperties"]["columnCount"]
    if growth > 0:
        spreadsheet.check_cell_limit(growth)


def _prune_defaults(properties: dict[str, Any]) -> dict[str, Any]:
    for key in _OMITTED_WHEN_DEFAULT:
        if properties.get(key) in (False, 0):
            properties.pop(key, None)
    grid = properties.get("gridProperties") or {}
    for key in _GRID_OMITTED_WHEN_DEFAULT:
        if grid.get(key) in (False, 0):
            grid.pop(key, None)
    return properties


def _apply_grid_resize(spreadsheet: Spreadsheet, sheet: Sheet, before: dict[str, Any]) -> None:
    """Drop cells, merges and metadata that fall outside a shrunk grid."""
    rows, columns = sheet.row_count, sheet.column_count
    if rows >= before["gridProperties"]["rowCount"] and columns >= before["gridProperties"]["columnCount"]:
        return
    sheet.cells = {(r, c): cell for (r, c), cell in sheet.cells.items() if r < rows and c < columns}
    sheet.row_metadata = {i: m for i, m in sheet.row_metadata.items() if i < rows}
    sheet.column_metadata = {i: m for i, m in sheet.column_metadata.items() if i < columns}
    sheet.merges = [
        m for m in sheet.merges if m.get("endRowIndex", 0) <= rows and m.get("endColumnIndex", 0) <= columns
    ]


def _update_spreadsheet_properties(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    staged = copy.deepcopy(context.spreadsheet.properties)
    fields.apply_update(staged, request.get("properties") or {}, request.get("fields", ""))
    if not staged.get("title"):
        raise errors.invalid_argument("The spreadsheet title must not be empty.")
    context.spreadsheet.properties = staged
    return {}


# --- dimensions ----------------------------------------------------------


def _append_dimension(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    sheet = context.sheet(request.get("sheetId"))
    length = request.get("length", 0)
    if not isinstance(length, int) or length < 1:
        raise errors.invalid_argument(f"Invalid length {length!r}; append at least 1 row or column.")
    dimension = request.get("dimension", "")
    key = {"ROWS": "rowCount", "COLUMNS": "columnCount"}.get(dimension)
    if key is None:
        raise errors.invalid_argument(f"Invalid dimension {dimension!r}. Use ROWS or COLUMNS.")
    other = sheet.column_count if dimension == "ROWS" else sheet.row_count
    context.spreadsheet.check_cell_limit(length * other)
    sheet.properties["gridProperties"][key] += length
    return {}


def _dimension_range(context: BatchContext, request: dict[str, Any]) -> tuple[Sheet, str, int, int]:
    dimension_range = request.get("range") or {}
    sheet = context.sheet(dimension_range.get("sheetId"))
    dimension = dimension_range.get("dimension", "")
    size = sheet.row_count if dimension == "ROWS" else sheet.column_count
    start = dimension_range.get("startIndex", 0)
    end = dimension_range.get("endIndex", size)
    return sheet, dimension, start, end


def _insert_dimension(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(context, request)
    insert_dimension(context.spreadsheet, sheet, dimension, start, end)
    return {}


def _delete_dimension(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(context, request)
    delete_dimension(context.spreadsheet, sheet, dimension, start, end)
    return {}


def _update_dimension_properties(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, start, end = _dimension_range(context, request)
    metadata = sheet.row_metadata if dimension == "ROWS" else sheet.column_metadata
    for index in range(start, end):
        entry = metadata.get(index, {})
        fields.apply_update(entry, request.get("properties") or {}, request.get("fields", ""))
        if entry:
            metadata[index] = entry
        else:
            metadata.pop(index, None)
    return {}


def _group_range(context: BatchContext, request: dict[str, Any]) -> tuple[Sheet, str, dict[str, Any]]:
    sheet, dimension, start, end = _dimension_range(context, request)
    if dimension not in ("ROWS", "COLUMNS"):
        raise errors.invalid_argument(f"Invalid dimension {dimension!r}. Use ROWS or COLUMNS.")
    return sheet, dimension, {"dimension": dimension, "startIndex": start, "endIndex": end}


def _add_dimension_group(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    """Add a row or column group; its depth is one more than the groups containing it."""
    sheet, dimension, group_range = _group_range(context, request)
    groups = sheet.groups[dimension]
    depth = 1 + sum(
        1 for group in groups
        if group["range"]["startIndex"] <= group_range["startIndex"]
        and group_range["endIndex"] <= group["range"]["endIndex"]
    )
    groups.append({"range": group_range, "depth": depth})
    groups.sort(key=lambda group: (group["depth"], group["range"]["startIndex"]))
    control_key = "rowGroupControlAfter" if dimension == "ROWS" else "columnGroupControlAfter"
    sheet.properties["gridProperties"].setdefault(control_key, True)
    return {"addDimensionGroup": {"dimensionGroups": copy.deepcopy(groups)}}


def _delete_dimension_group(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    sheet, dimension, group_range = _group_range(context, request)
    groups = sheet.groups[dimension]
    matching = [group for group in groups if group["range"] == group_range]
    if not matching:
        raise errors.invalid_argument(
            f"No group exists for {dimension.lower()} [{group_range['startIndex']}, {group_range['endIndex']})."
        )
    groups.remove(max(matching, key=lambda group: group["depth"]))
    reply: dict[str, Any] = {}
    if groups:
        reply["dimensionGroups"] = copy.deepcopy(groups)
    return {"deleteDimensionGroup": reply}


# --- cells ---------------------------------------------------------------


def _cell_data(cell: Cell | None) -> dict[str, Any]:
    if cell is None:
        return {}
    data: dict[str, Any] = {}
    value = extended_value(cell.value, cell.formula)
    if value is not None:
        data["userEnteredValue"] = value
    if cell.user_format:
        data["userEnteredFormat"] = copy.deepcopy(cell.user_format)
    if cell.note:
        data["note"] = cell.note
    if cell.data_validation:
        data["dataValidation"] = copy.deepcopy(cell.data_validation)
    return data


def _cell_from_data(data: dict[str, Any]) -> Cell:
    cell = cell_from_extended(data.get("userEnteredValue"), Cell())
    user_format = data.get("userEnteredFormat")
    return replace(
        cell,
        user_format=normalize_format(user_format) if user_format else None,
        note=data.get("note") or None,
        data_validation=data.get("dataValidation") or None,
    )


def _update_cell(sheet: Sheet, row: int, column: int, source: dict[str, Any], mask: str) -> None:
    data = _cell_data(sheet.cells.get((row, column)))
    try:
        fields.apply_update(data, source, mask)
        sheet.set_cell(row, column, _cell_from_data(data))
    except ValueError as error:
        raise errors.invalid_argument(str(error)) from None


def _repeat_cell(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    resolved = context.grid_range(request.get("range"))
    r0, r1, c0, c1 = resolved.clamped()
    source = request.get("cell") or {}
    mask = request.get("fields", "")
    for row in range(r0, r1):
        for column in range(c0, c1):
            _update_cell(resolved.sheet, row, column, source, mask)
    return {}


# Condition types of a DataValidationRule, with the number of values each takes.
_VALIDATION_VALUES = {
    "BOOLEAN": (0, 2),
    "ONE_OF_LIST": (1, None),
    "ONE_OF_RANGE": (1, 1),
}


def _set_data_validation(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    """Set (or, without a rule, clear) the validation rule of every cell in the range.

    The rule is stored as sent and shown in grid data as ``dataValidation``.
    NOTE: values writes are not checked against the rule. No recording shows
    whether Google rejects a write that breaks a strict rule.
    """
    resolved = context.grid_range(request.get("range"))
    rule = request.get("rule") or None
    if rule is not None:
        _check_validation_rule(rule)
    r0, r1, c0, c1 = resolved.clamped()
    sheet = resolved.sheet
    for row in range(r0, r1):
        for column in range(c0, c1):
            cell = sheet.cells.get((row, column)) or Cell()
            sheet.set_cell(row, column, replace(cell, data_validation=copy.deepcopy(rule)))
    return {}


def _check_validation_rule(rule: Any) -> None:
    condition = rule.get("condition") if isinstance(rule, dict) else None
    if not isinstance(condition, dict) or not isinstance(condition.get("type"), str):
        raise errors.invalid_argument("rule.condition.type is required; set a BooleanCondition type.")
    limits = _VALIDATION_VALUES.get(condition["type"])
    values = condition.get("values") or []
    if limits is None:
        return
    low, high = limits
    if len(values) < low or (high is not None and len(values) > high):
        expected = f"{low} to {high}" if high is not None else f"at least {low}"
        raise errors.invalid_argument(
            f"Invalid ConditionValue count {len(values)} for condition type {condition['type']}: "
            f"expected {expected}."
        )


def _update_cells(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    rows = request.get("rows") or []
    mask = request.get("fields", "")
    if "range" in request:
        resolved = context.grid_range(request["range"])
        r0, r1, c0, c1 = resolved.clamped()
    else:
        start = request.get("start") or {}
        resolved = context.grid_range({"sheetId": start.get("sheetId", 0)})
        r0, c0 = start.get("rowIndex", 0), start.get("columnIndex", 0)
        r1 = r0 + len(rows)
        c1 = c0 + max((len(row.get("values") or []) for row in rows), default=0)
    sheet = resolved.sheet
    if r1 > sheet.row_count or c1 > sheet.column_count:
        raise errors.invalid_argument(
            f"Range exceeds grid limits. Max rows: {sheet.row_count}, max columns: {sheet.column_count}"
        )
    for row in range(r0, r1):
        values = (rows[row - r0].get("values") or []) if row - r0 < len(rows) else []
        for column in range(c0, c1):
            offset = column - c0
            source = values[offset] if offset < len(values) else {}
            _update_cell(sheet, row, column, source or {}, mask)
    return {}


def _merge_cells(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    resolved = context.grid_range(request.get("range"))
    r0, r1, c0, c1 = resolved.clamped()
    merge_type = request.get("mergeType", "MERGE_ALL")
    if merge_type == "MERGE_ALL":
        pieces = [(r0, r1, c0, c1)]
    elif merge_type == "MERGE_COLUMNS":
        pieces = [(r0, r1, c, c + 1) for c in range(c0, c1)]
    elif merge_type == "MERGE_ROWS":
        pieces = [(r, r + 1, c0, c1) for r in range(r0, r1)]
    else:
        raise errors.invalid_argument(
            f"Invalid mergeType {merge_type!r}. Use MERGE_ALL, MERGE_COLUMNS or MERGE_ROWS."
        )
    sheet = resolved.sheet
    # A new merge replaces the merges it overlaps.
    sheet.merges = [m for m in sheet.merges if not _overlaps(m, r0, r1, c0, c1)]
    for top, bottom, left, right in pieces:
        if (bottom - top) * (right - left) < 2:
            continue
        _clear_merged_followers(sheet, top, bottom, left, right)
        merge = {"startRowIndex": top, "endRowIndex": bottom, "startColumnIndex": left, "endColumnIndex": right}
        if sheet.sheet_id:
            merge = {"sheetId": sheet.sheet_id, **merge}
        sheet.merges.append(merge)
    return {}


def _overlaps(merge: dict[str, int], r0: int, r1: int, c0: int, c1: int) -> bool:
    return (
        merge["startRowIndex"] < r1 and r0 < merge["endRowIndex"]
        and merge["startColumnIndex"] < c1 and c0 < merge["endColumnIndex"]
    )


def _clear_merged_followers(sheet: Sheet, top: int, bottom: int, left: int, right: int) -> None:
    """Sheets keeps only the top-left value of a merge; the rest is cleared."""
    for (row, column), cell in list(sheet.cells.items()):
        if top <= row < bottom and left <= column < right and (row, column) != (top, left):
            sheet.set_cell(row, column, replace(cell, value=None, formula=None))


def _unmerge_cells(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    resolved = context.grid_range(request.get("range"))
    r0, r1, c0, c1 = resolved.clamped()
    sheet = resolved.sheet
    sheet.merges = [
        m for m in sheet.merges
        if not (r0 <= m["startRowIndex"] and m["endRowIndex"] <= r1
                and c0 <= m["startColumnIndex"] and m["endColumnIndex"] <= c1)
    ]
    return {}


def _sort_range(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    resolved = context.grid_range(request.get("range"))
    r0, r1, c0, c1 = resolved.clamped()
    sheet = resolved.sheet
    spreadsheet = context.spreadsheet
    rows = [[sheet.cells.get((r, c)) for c in range(c0, c1)] for r in range(r0, r1)]
    values = [[spreadsheet.effective_value(sheet, r, c) for c in range(c0, c1)] for r in range(r0, r1)]
    order = list(range(len(rows)))
    for spec in reversed(request.get("sortSpecs") or []):
        column = spec.get("dimensionIndex", 0) - c0
        descending = spec.get("sortOrder") == "DESCENDING"
        order.sort(key=lambda i: _sort_key(values[i][column], descending))
    for target, source in enumerate(order):
        for offset, cell in enumerate(rows[source]):
            position = (r0 + target, c0 + offset)
            if cell is None:
                sheet.cells.pop(position, None)
            else:
                sheet.cells[position] = cell
    return {}


def _sort_key(value: Any, descending: bool) -> tuple:
    """Order numbers, then text (case-insensitive), then booleans; blanks last."""
    if value is None or value == "":
        return (1, 0, 0)
    if isinstance(value, bool):
        rank, key = 2, float(value)
    elif isinstance(value, (int, float)):
        rank, key = 0, float(value)
    elif isinstance(value, FormulaError):
        rank, key = 3, 0.0
    else:
        rank, key = 1, 0.0
    text = str(value).casefold() if rank == 1 else ""
    if descending:
        return (0, -rank, _Reversed(text) if rank == 1 else -key)
    return (0, rank, text if rank == 1 else key)


class _Reversed:
    """Wrap a string so sorting it ascending yields descending order."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: "_Reversed") -> bool:
        return self.text > other.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.text == other.text


def _set_basic_filter(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    basic_filter = copy.deepcopy(request.get("filter") or {})
    resolved = context.grid_range(basic_filter.get("range"))
    r0, r1, c0, c1 = resolved.clamped()
    grid_range = {"startRowIndex": r0, "endRowIndex": r1, "startColumnIndex": c0, "endColumnIndex": c1}
    if resolved.sheet.sheet_id:
        grid_range = {"sheetId": resolved.sheet.sheet_id, **grid_range}
    basic_filter["range"] = grid_range
    resolved.sheet.basic_filter = basic_filter
    return {}


def _clear_basic_filter(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    context.sheet(request.get("sheetId")).basic_filter = None
    return {}


def _copy_cells(source: Cell | None, target: Cell | None, paste_type: str) -> Cell:
    source = source or Cell()
    target = target or Cell()
    if paste_type == "PASTE_VALUES":
        return replace(target, value=source.value, formula=source.formula)
    if paste_type == "PASTE_FORMAT":
        return replace(target, user_format=source.user_format)
    if paste_type == "PASTE_NORMAL":
        return source
    raise errors.invalid_argument(
        f"Invalid pasteType {paste_type!r}; the emulator supports PASTE_NORMAL, PASTE_VALUES, PASTE_FORMAT."
    )


def _copy_paste(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    source = context.grid_range(request.get("source"))
    destination = context.grid_range(request.get("destination"))
    s_r0, s_r1, s_c0, s_c1 = source.clamped()
    d_r0, d_r1, d_c0, d_c1 = destination.clamped()
    height, width = s_r1 - s_r0, s_c1 - s_c0
    # A destination larger than the source is tiled with whole copies, like Sheets.
    d_r1 = d_r0 + max(height, (d_r1 - d_r0) // height * height) if height else d_r0
    d_c1 = d_c0 + max(width, (d_c1 - d_c0) // width * width) if width else d_c0
    _check_destination(destination.sheet, d_r1, d_c1)
    snapshot = {(r, c): source.sheet.cells.get((r, c)) for r in range(s_r0, s_r1) for c in range(s_c0, s_c1)}
    paste_type = request.get("pasteType", "PASTE_NORMAL")
    for row in range(d_r0, d_r1):
        for column in range(d_c0, d_c1):
            origin = (s_r0 + (row - d_r0) % height, s_c0 + (column - d_c0) % width)
            cell = _copy_cells(snapshot[origin], destination.sheet.cells.get((row, column)), paste_type)
            destination.sheet.set_cell(row, column, cell)
    return {}


def _check_destination(sheet: Sheet, end_row: int, end_column: int) -> None:
    if end_row > sheet.row_count or end_column > sheet.column_count:
        raise errors.invalid_argument(
            f"Range exceeds grid limits. Max rows: {sheet.row_count}, max columns: {sheet.column_count}"
        )


def _cut_paste(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    source = context.grid_range(request.get("source"))
    s_r0, s_r1, s_c0, s_c1 = source.clamped()
    coordinate = request.get("destination") or {}
    target_sheet = context.sheet(coordinate.get("sheetId"))
    d_r0, d_c0 = coordinate.get("rowIndex", 0), coordinate.get("columnIndex", 0)
    _check_destination(target_sheet, d_r0 + s_r1 - s_r0, d_c0 + s_c1 - s_c0)
    moved = {(r, c): source.sheet.cells.pop((r, c), None) for r in range(s_r0, s_r1) for c in range(s_c0, s_c1)}
    paste_type = request.get("pasteType", "PASTE_NORMAL")
    for (row, column), cell in moved.items():
        position = (d_r0 + row - s_r0, d_c0 + column - s_c0)
        target_sheet.set_cell(*position, _copy_cells(cell, target_sheet.cells.get(position), paste_type))
    return {}


# --- named ranges --------------------------------------------------------


def _add_named_range(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    spreadsheet = context.spreadsheet
    named = copy.deepcopy(request.get("namedRange") or {})
    name = named.get("name", "")
    if not name:
        raise errors.invalid_argument("The named range must have a name.")
    if spreadsheet.named_range(name) is not None:
        raise errors.invalid_argument(f"A named range with the name {name!r} already exists.")
    context.grid_range(named.get("range"))
    named.setdefault("namedRangeId", str(context.store.new_object_id()))
    named["range"] = {k: v for k, v in (named.get("range") or {}).items() if v is not None}
    named["range"].setdefault("sheetId", 0)
    spreadsheet.named_ranges.append(named)
    return {"addNamedRange": {"namedRange": render_named_range(named)}}


def _find_named(context: BatchContext, named_range_id: Any) -> dict[str, Any]:
    for named in context.spreadsheet.named_ranges:
        if named["namedRangeId"] == named_range_id:
            return named
    raise errors.invalid_argument(f"No named range with id {named_range_id}.")


def _update_named_range(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    requested = request.get("namedRange") or {}
    named = _find_named(context, requested.get("namedRangeId"))
    staged = copy.deepcopy(named)
    fields.apply_update(staged, requested, request.get("fields", ""))
    staged["namedRangeId"] = named["namedRangeId"]
    staged["range"] = {k: v for k, v in (staged.get("range") or {}).items() if v is not None}
    staged["range"].setdefault("sheetId", 0)
    context.grid_range(staged["range"])
    named.clear()
    named.update(staged)
    return {}


def _delete_named_range(context: BatchContext, request: dict[str, Any]) -> dict[str, Any]:
    named = _find_named(context, request.get("namedRangeId"))
    context.spreadsheet.named_ranges.remove(named)
    return {}


_HANDLERS: dict[str, Handler] = {
    "addSheet": _add_sheet,
    "deleteSheet": _delete_sheet,
    "updateSheetProperties": _update_sheet_properties,
    "updateSpreadsheetProperties": _update_spreadsheet_properties,
    "appendDimension": _append_dimension,
    "insertDimension": _insert_dimension,
    "deleteDimension": _delete_dimension,
    "updateDimensionProperties": _update_dimension_properties,
    "addDimensionGroup": _add_dimension_group,
    "deleteDimensionGroup": _delete_dimension_group,
    "repeatCell": _repeat_cell,
    "setDataValidation": _set_data_validation,
    "updateCells": _update_cells,
    "mergeCells": _merge_cells,
    "unmergeCells": _unmerge_cells,
    "sortRange": _sort_range,
    "setBasicFilter": _set_basic_filter,
    "clearBasicFilter": _clear_basic_filter,
    "copyPaste": _copy_paste,
    "cutPaste": _cut_paste,
    "addNamedRange": _add_named_range,
    "updateNamedRange": _update_named_range,
    "deleteNamedRange": _delete_named_range,
}
