"""Cell values between Python and the Sheets API, and A1 ranges.

Dates, datetimes and durations travel as serial numbers: days since 1899-12-30,
the epoch Google Sheets shares with Excel, with the time of day as the fraction.
Reading turns a serial back into a date only when the cell's number format is a
date, date-time or time format, because an unformatted serial is just a number.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

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


def from_api_cell(cell: dict[str, Any]) -> Any:
    """Return the Python value of one ``CellData`` of a grid-data read."""
    entered = cell.get("userEnteredValue") or {}
    if "formulaValue" in entered:
        return entered["formulaValue"]
    effective = cell.get("effectiveValue")
    if effective is None:
        effective = entered
    if "stringValue" in effective:
        return effective["stringValue"]
    if "boolValue" in effective:
        return effective["boolValue"]
    if "numberValue" in effective:
        number = effective["numberValue"]
        kind = ((cell.get("userEnteredFormat") or {}).get("numberFormat") or {}).get(
            "type")
        return _from_serial(number, kind)
    if "errorValue" in effective:
        return effective["errorValue"].get("message") or "#ERROR!"
    return None


def _from_serial(number: float | int, kind: str | None) -> Any:
    if kind == "DATE":
        return (EPOCH + dt.timedelta(days=math.floor(number))).date()
    if kind == "DATE_TIME":
        moment = EPOCH + dt.timedelta(days=number)
        return moment.replace(microsecond=round(moment.microsecond, -3) % 1_000_000)
    if kind == "TIME":
        return dt.timedelta(seconds=round(number * SECONDS_PER_DAY, 3))
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


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
