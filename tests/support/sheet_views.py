"""What a person sees in an emulated tab: serials shown as dates where formatted so.

The Google backend reads unformatted values, so a date cell reads as its serial
number. Tests that compare a Google tab with an .xlsx tab, or with dates, turn
each serial into the value its number format shows, using the emulator's state.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sheets_addon.emulator import SheetsEmulator

EPOCH = dt.datetime(1899, 12, 30)


def displayed_rows(emulator: SheetsEmulator, spreadsheet_id: str, tab: str,
                   rows: list[list[Any]]) -> list[list[Any]]:
    """Return ``rows`` read from ``tab`` with date-formatted serials as dates."""
    sheet = emulator.spreadsheet(spreadsheet_id).sheet_by_title(tab)
    assert sheet is not None, f"tab {tab!r} missing"
    shown = []
    for row_index, row in enumerate(rows):
        shown_row = []
        for column_index, value in enumerate(row):
            cell = sheet.cells.get((row_index, column_index))
            number_format = (cell.number_format() if cell is not None else None) or {}
            shown_row.append(as_displayed(value, number_format.get("type")))
        shown.append(shown_row)
    return shown


def as_displayed(value: Any, format_type: str | None) -> Any:
    """Return a serial as the date, datetime or duration its format type shows."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if format_type == "DATE":
        return (EPOCH + dt.timedelta(days=int(value // 1))).date()
    if format_type == "DATE_TIME":
        return EPOCH + dt.timedelta(milliseconds=round(value * 86_400_000))
    if format_type == "TIME":
        return dt.timedelta(milliseconds=round(value * 86_400_000))
    return value
