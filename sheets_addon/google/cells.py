"""Cell values between Python and the Sheets API, and A1 ranges.

Dates, datetimes and durations travel as serial numbers: days since 1899-12-30,
the epoch Google Sheets shares with Excel, with the time of day as the fraction.
A tab is read with ``valueRenderOption=UNFORMATTED_VALUE`` and
``dateTimeRenderOption=SERIAL_NUMBER``, so a date cell reads as its serial and a
formula cell as the value it computes. The sync engine reads a number in a date
column as a serial (``runtime.sheets.engine.cell_values_equal``), so no number
format is needed to compare cells.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from runtime.sheets.base import Grid

EPOCH = dt.datetime(1899, 12, 30)
SECONDS_PER_DAY = 86_400

NUMBER_FORMATS = {
    "date": {"type": "DATE", "pattern": "yyyy-mm-dd"},
    "datetime": {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm"},
    "duration": {"type": "TIME", "pattern": "[h]:mm:ss"},
}


def column_letters(index: int) -> str:
    """Return the letters of a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def quote_sheet(name: str) -> str:
    """Return a tab name as A1 notation writes it: bare when it is a plain word."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and not re.fullmatch(
            r"[A-Za-z]{1,3}[0-9]+|R[0-9]*C[0-9]*", name, re.IGNORECASE):
        return name
    return "'" + name.replace("'", "''") + "'"


def a1_range(sheet: str, row: int, column: int, rows: int = 1, columns: int = 1) -> str:
    """Return the A1 range of a block whose top-left cell is (row, column), 0-based."""
    start = f"{column_letters(column)}{row + 1}"
    end = f"{column_letters(column + columns - 1)}{row + rows}"
    return f"{quote_sheet(sheet)}!{start}" + ("" if start == end else f":{end}")


def to_api_value(value: Any) -> Any:
    """Return the JSON value written for a cell under ``valueInputOption=RAW``.

    Text stays text (RAW never parses ``=``, ``+``, ``-`` or ``@``, and keeps
    ``007``), numbers go as numbers, temporal values as serials, and an empty
    value as ``""``, which clears the cell.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return ""
        integral = value == value.to_integral_value()
        return int(value) if integral and abs(value) < 2**53 else float(value)
    if isinstance(value, dt.datetime):
        naive = value.replace(tzinfo=None)
        delta = naive - EPOCH
        return delta.days + delta.seconds / SECONDS_PER_DAY + (
            delta.microseconds / 1e6 / SECONDS_PER_DAY)
    if isinstance(value, dt.date):
        return (value - EPOCH.date()).days
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / SECONDS_PER_DAY
    return str(value)


def grid_from_values(values: list[list[Any]]) -> Grid:
    """Return the grid of a ``ValueRange``'s ``values``: rows padded to one width.

    The API leaves out trailing empty cells of each row and trailing empty rows,
    and sends ``""`` for an empty cell before a value. Empty cells become ``None``.
    """
    rows = [[None if value == "" else value for value in row] for row in values]
    while rows and all(value is None for value in rows[-1]):
        rows.pop()
    width = max((len(row) for row in rows), default=0)
    for row in rows:
        row.extend([None] * (width - len(row)))
    return Grid(rows)


_ECHOED_RANGE = re.compile(r"(?:'((?:[^']|'')*)'|([^!]*))!([A-Z]+)1(?::([A-Z]+)([0-9]+))?")


def parse_tab_range(text: str) -> tuple[str, int, int] | None:
    """Return (title, rows, columns) of the range a whole-tab values read echoes.

    Reading a tab by its title alone echoes the tab's whole grid, such as
    ``'My tab'!A1:Z1000`` for 1000 rows of 26 columns, or ``Tab!A1`` for one
    cell. Returns ``None`` for any other text.
    """
    match = _ECHOED_RANGE.fullmatch(text)
    if match is None or match.group(3) != "A":
        return None
    title = match.group(1).replace("''", "'") if match.group(1) is not None else (
        match.group(2))
    if match.group(4) is None:
        return title, 1, 1
    return title, int(match.group(5)), column_index(match.group(4)) + 1


_ANCHOR = re.compile(r"(.*!)([A-Z]+)([0-9]+)")


def block_range(anchor: str, values: list[list[Any]]) -> str:
    """Return the A1 range that ``values`` cover when written from cell ``anchor``.

    ``anchor`` is a one-cell range such as ``Data!B7``, as the value ranges of
    a write name them.
    """
    match = _ANCHOR.fullmatch(anchor)
    if match is None:
        raise ValueError(f"range {anchor!r} is not one cell such as 'Data!B7'")
    row = int(match.group(3)) - 1
    column = column_index(match.group(2))
    width = max((len(row_values) for row_values in values), default=1)
    last = f"{column_letters(column + max(width, 1) - 1)}{row + max(len(values), 1)}"
    first = f"{match.group(2)}{match.group(3)}"
    return match.group(1) + first + ("" if first == last else f":{last}")


def column_index(letters: str) -> int:
    """Return the 0-based index of column letters (A -> 0, AA -> 26)."""
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index - 1


def runs(indexes: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Group sorted distinct integers into (start, length) runs of consecutive ones."""
    start = previous = None
    for index in sorted(set(indexes)):
        if start is None:
            start = previous = index
            continue
        if index == previous + 1:
            previous = index
            continue
        yield start, previous - start + 1
        start = previous = index
    if start is not None:
        yield start, previous - start + 1
