"""The ``spreadsheets.values`` endpoints: get, batchGet, batchGetByDataFilter,
update, batchUpdate, append, clear and batchClear.

Response shapes follow Sheets API v4.  Ranges are echoed clamped to the grid
(``'Sheet1'!A1:1`` comes back as ``Sheet1!A1:Z1``).  ``values`` lists drop
trailing empty cells and rows, and the key is absent when nothing is left.
Empty cells before a value read as ``""``.  Update responses count only the
non-null values written.

Appending finds the "table" the way the recorded live API behaves.  The last
non-empty cell inside the request range (in row-major order) seeds it, and
the table is the block of cells connected to that seed, diagonals included,
grown to its bounding box.  Rows go below the table starting at its first
column, or at the range's first cell when the range contains no value.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from . import a1, errors
from .cells import INPUT_OPTIONS, RENDER_OPTIONS, DATE_TIME_OPTIONS, ParsedInput, apply_input, parse_input, render
from .state import ResolvedRange, Sheet, Spreadsheet
from .structure import insert_dimension

logger = logging.getLogger(__name__)

Params = dict[str, list[str]]
DIMENSIONS = ("ROWS", "COLUMNS")


def param(params: Params, name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    return values[0] if values else default


def flag(value: Any) -> bool:
    """Read a boolean query or body value; requests sends Python's ``True``."""
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _choice(value: str | None, allowed: tuple[str, ...], default: str, field: str) -> str:
    if value is None or value == "":
        return default
    if value not in allowed:
        raise errors.invalid_argument(
            f"Invalid value at '{field}', \"{value}\". Use one of {', '.join(allowed)}."
        )
    return value


def _input_option(value: str | None) -> str:
    if not value:
        raise errors.invalid_argument("'valueInputOption' is required but not specified")
    return _choice(value, INPUT_OPTIONS, "RAW", "value_input_option")


# --- reading -------------------------------------------------------------


def read_range(
    spreadsheet: Spreadsheet,
    resolved: ResolvedRange,
    major_dimension: str = "ROWS",
    render_option: str = "FORMATTED_VALUE",
    date_time_option: str = "SERIAL_NUMBER",
) -> dict[str, Any]:
    """Return a ValueRange object for ``resolved``."""
    sheet = resolved.sheet
    if resolved.start_row >= sheet.row_count or resolved.start_column >= sheet.column_count:
        raise errors.exceeds_grid_limits(
            a1.format_range_always_quoted(
                sheet.title, resolved.start_row, resolved.start_row + 1,
                resolved.start_column, resolved.start_column + 1,
            ),
            sheet.row_count,
            sheet.column_count,
        )
    r0, r1, c0, c1 = resolved.clamped()
    found: dict[tuple[int, int], Any] = {}
    for (row, column), cell in sheet.cells.items():
        if r0 <= row < r1 and c0 <= column < c1 and cell.has_content():
            rendered = render(
                cell, spreadsheet.effective_value(sheet, row, column), render_option, date_time_option
            )
            if rendered is not None:
                found[(row - r0, column - c0)] = rendered
    if major_dimension == "COLUMNS":
        found = {(column, row): value for (row, column), value in found.items()}
    result: dict[str, Any] = {"range": resolved.a1(), "majorDimension": major_dimension}
    values = _trimmed_matrix(found)
    if values:
        result["values"] = values
    return result


def _trimmed_matrix(found: dict[tuple[int, int], Any]) -> list[list[Any]]:
    if not found:
        return []
    row_count = max(row for row, _ in found) + 1
    widths = [0] * row_count
    for row, column in found:
        widths[row] = max(widths[row], column + 1)
    matrix = [[""] * width for width in widths]
    for (row, column), value in found.items():
        matrix[row][column] = value
    return matrix


def get_values(spreadsheet: Spreadsheet, range_text: str, params: Params) -> dict[str, Any]:
    """Handle ``GET values/{range}``."""
    options = _read_options(params)
    return read_range(spreadsheet, spreadsheet.resolve(range_text), *options)


def batch_get_values(spreadsheet: Spreadsheet, params: Params) -> dict[str, Any]:
    """Handle ``GET values:batchGet``."""
    options = _read_options(params)
    value_ranges = [
        read_range(spreadsheet, spreadsheet.resolve(text), *options)
        for text in params.get("ranges", [])
    ]
    result: dict[str, Any] = {"spreadsheetId": spreadsheet.spreadsheet_id}
    if value_ranges:
        result["valueRanges"] = value_ranges
    return result


def batch_get_values_by_data_filter(spreadsheet: Spreadsheet, body: Any) -> dict[str, Any]:
    """Handle ``POST values:batchGetByDataFilter`` for ``a1Range`` and ``gridRange`` filters.

    Each filter gets one MatchedValueRange, in the order of the filters, as a
    ``valueRange`` plus the filter that matched it. Developer metadata lookups
    are not emulated.
    """
    body = _object_body(body)
    filters = body.get("dataFilters") or []
    if not isinstance(filters, list):
        raise errors.invalid_field_value("data_filters", filters)
    options = (
        _choice(body.get("majorDimension"), DIMENSIONS, "ROWS", "major_dimension"),
        _choice(body.get("valueRenderOption"), RENDER_OPTIONS, "FORMATTED_VALUE", "value_render_option"),
        _choice(body.get("dateTimeRenderOption"), DATE_TIME_OPTIONS, "SERIAL_NUMBER", "date_time_render_option"),
    )
    matched = []
    for index, data_filter in enumerate(filters):
        resolved = _resolve_data_filter(spreadsheet, index, data_filter)
        matched.append({
            "valueRange": read_range(spreadsheet, resolved, *options),
            "dataFilters": [data_filter],
        })
    result: dict[str, Any] = {"spreadsheetId": spreadsheet.spreadsheet_id}
    if matched:
        result["valueRanges"] = matched
    return result


def _resolve_data_filter(spreadsheet: Spreadsheet, index: int, data_filter: Any) -> ResolvedRange:
    if isinstance(data_filter, dict) and isinstance(data_filter.get("a1Range"), str):
        return spreadsheet.resolve(data_filter["a1Range"])
    if isinstance(data_filter, dict) and isinstance(data_filter.get("gridRange"), dict):
        return spreadsheet.resolve_grid_range(data_filter["gridRange"])
    if isinstance(data_filter, dict) and "developerMetadataLookup" in data_filter:
        raise errors.unimplemented(f"developerMetadataLookup data filters (dataFilters[{index}])")
    raise errors.invalid_argument(
        f"Invalid dataFilters[{index}]: {data_filter!r}; set a1Range or gridRange."
    )


def _read_options(params: Params) -> tuple[str, str, str]:
    return (
        _choice(param(params, "majorDimension"), DIMENSIONS, "ROWS", "major_dimension"),
        _choice(param(params, "valueRenderOption"), RENDER_OPTIONS, "FORMATTED_VALUE", "value_render_option"),
        _choice(param(params, "dateTimeRenderOption"), DATE_TIME_OPTIONS, "SERIAL_NUMBER", "date_time_render_option"),
    )


# --- writing -------------------------------------------------------------


def _rows_of(values: Any, major_dimension: str, field: str) -> list[list[Any]]:
    if not isinstance(values, list):
        raise errors.invalid_field_value(field, values)
    for row in values:
        if not isinstance(row, list):
            raise errors.invalid_field_value(field, row)
    if major_dimension != "COLUMNS":
        return values
    height = max((len(column) for column in values), default=0)
    return [
        [column[row] if row < len(column) else None for column in values]
        for row in range(height)
    ]


def _parse_rows(rows: list[list[Any]], input_option: str) -> list[list[ParsedInput | None]]:
    parsed_rows = []
    for row in rows:
        parsed_row = []
        for raw in row:
            try:
                parsed_row.append(parse_input(raw, input_option))
            except ValueError as error:
                raise errors.invalid_argument(str(error)) from None
            except TypeError:
                raise errors.invalid_argument(
                    f"Invalid values[{len(parsed_rows)}][{len(parsed_row)}]: "
                    f"{raw!r} is not a string, number or boolean"
                ) from None
        parsed_rows.append(parsed_row)
    return parsed_rows


def write_rows(
    spreadsheet: Spreadsheet,
    resolved: ResolvedRange,
    range_text: str,
    rows: list[list[Any]],
    input_option: str,
) -> dict[str, Any]:
    """Write ``rows`` with their top-left at the range start; return stats."""
    sheet = resolved.sheet
    parsed = _parse_rows(rows, input_option)
    height = len(parsed)
    width = max((len(row) for row in parsed), default=0)
    _check_within_request(resolved, range_text, height, width)
    _check_within_grid(sheet, resolved.start_row, resolved.start_column, height, width)
    written: list[tuple[int, int]] = []
    for row_offset, row in enumerate(parsed):
        for column_offset, value in enumerate(row):
            if value is None:
                continue
            position = (resolved.start_row + row_offset, resolved.start_column + column_offset)
            sheet.set_cell(*position, apply_input(sheet.cells.get(position), value))
            written.append(position)
    spreadsheet.touch()
    return _update_stats(spreadsheet, sheet, resolved, written)


def _check_within_request(resolved: ResolvedRange, range_text: str, height: int, width: int) -> None:
    # A single-cell range only anchors the data, which may extend past it.
    single_cell = resolved.end_row == resolved.start_row + 1 and resolved.end_column == resolved.start_column + 1
    if single_cell:
        return
    if resolved.end_row is not None and resolved.start_row + height > resolved.end_row:
        raise errors.invalid_argument(
            f"Requested writing within range [{range_text}], but tried writing to row "
            f"[{resolved.end_row + 1}]"
        )
    if resolved.end_column is not None and resolved.start_column + width > resolved.end_column:
        raise errors.invalid_argument(
            f"Requested writing within range [{range_text}], but tried writing to column "
            f"[{a1.index_to_column(resolved.end_column)}]"
        )


def _check_within_grid(sheet: Sheet, start_row: int, start_column: int, height: int, width: int) -> None:
    height, width = max(height, 1), max(width, 1)
    if start_row + height > sheet.row_count or start_column + width > sheet.column_count:
        raise errors.exceeds_grid_limits(
            a1.format_range_always_quoted(
                sheet.title, start_row, start_row + height, start_column, start_column + width
            ),
            sheet.row_count,
            sheet.column_count,
        )


def _update_stats(
    spreadsheet: Spreadsheet, sheet: Sheet, resolved: ResolvedRange, written: list[tuple[int, int]]
) -> dict[str, Any]:
    result: dict[str, Any] = {"spreadsheetId": spreadsheet.spreadsheet_id}
    if not written:
        r0, c0 = resolved.start_row, resolved.start_column
        result["updatedRange"] = a1.format_range(sheet.title, r0, r0 + 1, c0, c0 + 1)
        return result
    rows = {row for row, _ in written}
    columns = {column for _, column in written}
    result["updatedRange"] = a1.format_range(
        sheet.title, min(rows), max(rows) + 1, min(columns), max(columns) + 1
    )
    result["updatedRows"] = len(rows)
    result["updatedColumns"] = len(columns)
    result["updatedCells"] = len(written)
    return result


def _with_updated_data(
    spreadsheet: Spreadsheet, stats: dict[str, Any], body_or_params: dict[str, Any]
) -> dict[str, Any]:
    if not flag(body_or_params.get("includeValuesInResponse", False)):
        return stats
    render_option = _choice(
        body_or_params.get("responseValueRenderOption"), RENDER_OPTIONS, "FORMATTED_VALUE",
        "response_value_render_option",
    )
    date_option = _choice(
        body_or_params.get("responseDateTimeRenderOption"), DATE_TIME_OPTIONS, "SERIAL_NUMBER",
        "response_date_time_render_option",
    )
    resolved = spreadsheet.resolve(stats["updatedRange"])
    stats["updatedData"] = read_range(spreadsheet, resolved, "ROWS", render_option, date_option)
    return stats


def _flat_params(params: Params) -> dict[str, Any]:
    return {name: values[0] for name, values in params.items() if values}


def update_values(spreadsheet: Spreadsheet, range_text: str, params: Params, body: Any) -> dict[str, Any]:
    """Handle ``PUT values/{range}``."""
    input_option = _input_option(param(params, "valueInputOption"))
    body = _object_body(body)
    major = _choice(body.get("majorDimension"), DIMENSIONS, "ROWS", "data.major_dimension")
    rows = _rows_of(body.get("values", []), major, "data.values")
    # NOTE: a "range" in the body is not compared with the URL range, which
    # Google rejects when they differ.
    resolved = spreadsheet.resolve(range_text)
    stats = write_rows(spreadsheet, resolved, range_text, rows, input_option)
    return _with_updated_data(spreadsheet, stats, _flat_params(params))


def batch_update_values(spreadsheet: Spreadsheet, body: Any) -> dict[str, Any]:
    """Handle ``POST values:batchUpdate``; all ranges are written or none."""
    body = _object_body(body)
    input_option = _input_option(body.get("valueInputOption"))
    data = body.get("data", [])
    if not isinstance(data, list):
        raise errors.invalid_field_value("data", data)

    snapshot = spreadsheet.snapshot()
    responses = []
    try:
        for index, value_range in enumerate(data):
            value_range = _object_body(value_range)
            range_text = value_range.get("range", "")
            major = _choice(value_range.get("majorDimension"), DIMENSIONS, "ROWS", f"data[{index}].major_dimension")
            rows = _rows_of(value_range.get("values", []), major, f"data[{index}].values")
            stats = write_rows(spreadsheet, spreadsheet.resolve(range_text), range_text, rows, input_option)
            responses.append(_with_updated_data(spreadsheet, stats, body))
    except errors.ApiError:
        spreadsheet.restore(snapshot)
        raise

    result: dict[str, Any] = {"spreadsheetId": spreadsheet.spreadsheet_id}
    totals = {
        "totalUpdatedRows": sum(r.get("updatedRows", 0) for r in responses),
        "totalUpdatedColumns": sum(r.get("updatedColumns", 0) for r in responses),
        "totalUpdatedCells": sum(r.get("updatedCells", 0) for r in responses),
        "totalUpdatedSheets": len({r["updatedRange"].rpartition("!")[0] for r in responses if r.get("updatedCells")}),
    }
    result.update({key: value for key, value in totals.items() if value})
    if responses:
        result["responses"] = responses
    return result


def _object_body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise errors.invalid_argument(
            f"Invalid JSON payload received. Expected an object, got {type(body).__name__}."
        )
    return body


# --- clearing ------------------------------------------------------------


def clear_resolved(spreadsheet: Spreadsheet, resolved: ResolvedRange) -> str:
    """Clear values (keeping formats and notes) and return the cleared range."""
    sheet = resolved.sheet
    r0, r1, c0, c1 = resolved.clamped()
    for position, cell in list(sheet.cells.items()):
        row, column = position
        if r0 <= row < r1 and c0 <= column < c1:
            sheet.set_cell(row, column, replace(cell, value=None, formula=None))
    spreadsheet.touch()
    return resolved.a1()


def clear_values(spreadsheet: Spreadsheet, range_text: str) -> dict[str, Any]:
    """Handle ``POST values/{range}:clear``."""
    cleared = clear_resolved(spreadsheet, spreadsheet.resolve(range_text))
    return {"spreadsheetId": spreadsheet.spreadsheet_id, "clearedRange": cleared}


def batch_clear_values(spreadsheet: Spreadsheet, body: Any) -> dict[str, Any]:
    """Handle ``POST values:batchClear``."""
    body = _object_body(body)
    resolved = [spreadsheet.resolve(text) for text in body.get("ranges", [])]
    cleared = [clear_resolved(spreadsheet, item) for item in resolved]
    result: dict[str, Any] = {"spreadsheetId": spreadsheet.spreadsheet_id}
    if cleared:
        result["clearedRanges"] = cleared
    return result


# --- appending -----------------------------------------------------------


def append_values(spreadsheet: Spreadsheet, range_text: str, params: Params, body: Any) -> dict[str, Any]:
    """Handle ``POST values/{range}:append``."""
    input_option = _input_option(param(params, "valueInputOption"))
    insert_option = _choice(
        param(params, "insertDataOption"), ("OVERWRITE", "INSERT_ROWS"), "OVERWRITE", "insert_data_option"
    )
    body = _object_body(body)
    major = _choice(body.get("majorDimension"), DIMENSIONS, "ROWS", "data.major_dimension")
    rows = _rows_of(body.get("values", []), major, "data.values")
    resolved = spreadsheet.resolve(range_text)
    sheet = resolved.sheet
    table = find_table(resolved)
    if table is None:
        start_row, start_column = resolved.start_row, resolved.start_column
    else:
        start_row, start_column = table[1], table[2]
    _make_room(spreadsheet, sheet, start_row, len(rows), insert_option)
    target = ResolvedRange(sheet, start_row, None, start_column, None)
    stats = write_rows(spreadsheet, target, range_text, rows, input_option)
    result: dict[str, Any] = {"spreadsheetId": spreadsheet.spreadsheet_id}
    if table is not None:
        result["tableRange"] = table[0]
    result["updates"] = _with_updated_data(spreadsheet, stats, _flat_params(params))
    return result


def _make_room(spreadsheet: Spreadsheet, sheet: Sheet, start_row: int, height: int, insert_option: str) -> None:
    if insert_option == "INSERT_ROWS" and height:
        spreadsheet.check_cell_limit(height * sheet.column_count)
        insert_dimension(spreadsheet, sheet, "ROWS", start_row, start_row + height)
        return
    missing = start_row + height - sheet.row_count
    if missing > 0:
        spreadsheet.check_cell_limit(missing * sheet.column_count)
        sheet.properties["gridProperties"]["rowCount"] += missing


def find_table(resolved: ResolvedRange) -> tuple[str, int, int] | None:
    """Find the table an append extends: ``(tableRange, next row, first column)``."""
    sheet = resolved.sheet
    r0, r1, c0, c1 = resolved.clamped()
    occupied = {position for position, _ in sheet.content_cells()}
    inside = [(row, column) for row, column in occupied if r0 <= row < r1 and c0 <= column < c1]
    if not inside:
        return None
    seed = max(inside)
    top, bottom, left, right = _grow_region(occupied, seed)
    table_range = a1.format_range(sheet.title, top, bottom, left, right)
    return table_range, bottom, left


def _grow_region(occupied: set[tuple[int, int]], seed: tuple[int, int]) -> tuple[int, int, int, int]:
    """Return the bounding box (top, bottom, left, right) of the seed's block."""
    visited = {seed}
    frontier = [seed]
    top, bottom, left, right = seed[0], seed[0] + 1, seed[1], seed[1] + 1
    while frontier:
        while frontier:
            row, column = frontier.pop()
            for d_row in (-1, 0, 1):
                for d_column in (-1, 0, 1):
                    neighbour = (row + d_row, column + d_column)
                    if neighbour in occupied and neighbour not in visited:
                        visited.add(neighbour)
                        frontier.append(neighbour)
                        top, bottom = min(top, neighbour[0]), max(bottom, neighbour[0] + 1)
                        left, right = min(left, neighbour[1]), max(right, neighbour[1] + 1)
        # Cells touching the bounding box (not just the block) join the table.
        for position in _ring(top, bottom, left, right):
            if position in occupied and position not in visited:
                visited.add(position)
                frontier.append(position)
                top, bottom = min(top, position[0]), max(bottom, position[0] + 1)
                left, right = min(left, position[1]), max(right, position[1] + 1)
    return top, bottom, left, right


def _ring(top: int, bottom: int, left: int, right: int) -> list[tuple[int, int]]:
    ring = []
    for column in range(left - 1, right + 1):
        ring.append((top - 1, column))
        ring.append((bottom, column))
    for row in range(top, bottom):
        ring.append((row, left - 1))
        ring.append((row, right))
    return ring
