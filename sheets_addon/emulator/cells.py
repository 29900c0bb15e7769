"""Cell model: how written values are stored and how they read back.

A :class:`Cell` stores what a user entered (a number, string, boolean or a
formula), its ``userEnteredFormat`` and its note.  Numbers are floats, as in
Sheets.

Input (``valueInputOption``):

* ``RAW`` stores JSON numbers and booleans as such and every string as a
  string, so ``"=SUM(1)"`` and ``"007"`` stay text.
* ``USER_ENTERED`` parses strings like the Sheets UI: ``=...`` is a formula, a
  leading ``'`` forces text, ``TRUE``/``FALSE`` are booleans, numbers with
  grouping, ``%`` or ``$`` become numbers, and ``yyyy-mm-dd``, ``m/d/yyyy``
  and ``hh:mm[:ss]`` become date serials.  Such inputs also give a cell
  without a number format the format Sheets would pick (``#,##0.00``,
  ``0%``, ``yyyy-mm-dd``...).

An empty string clears the value (keeping the format); JSON ``null`` leaves
the cell untouched.

Output (``valueRenderOption``): ``FORMATTED_VALUE`` renders strings through
:mod:`numfmt`; ``UNFORMATTED_VALUE`` returns numbers, with dates as serials
unless ``dateTimeRenderOption=FORMATTED_STRING``; ``FORMULA`` returns formula
text for formula cells.  Formula values come from :mod:`formula`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from . import numfmt
from .formula import FormulaError, Value

logger = logging.getLogger(__name__)

# Sheets rejects any single cell holding more characters than this.
MAX_CELL_CHARACTERS = 50000

RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
DATE_TIME_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")
INPUT_OPTIONS = ("RAW", "USER_ENTERED")

_NUMBER = re.compile(
    r"^(?P<sign>[-+]?)(?P<currency>\$?)"
    r"(?P<digits>\d{1,3}(?:,\d{3})+|\d+)?(?P<fraction>\.\d*)?(?P<exponent>[eE][-+]?\d+)?"
    r"(?P<percent>%?)$"
)
_ISO_DATE = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
)
_US_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
)
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?$")


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell's entered content; immutable so state snapshots are cheap.

    ``data_validation`` is the API's DataValidationRule of the cell, if any.
    """

    value: float | str | bool | None = None
    formula: str | None = None
    user_format: dict | None = None
    note: str | None = None
    data_validation: dict | None = None

    def is_empty(self) -> bool:
        return (
            self.value is None
            and self.formula is None
            and not self.user_format
            and not self.note
            and not self.data_validation
        )

    def has_content(self) -> bool:
        return self.value is not None or self.formula is not None

    def number_format(self) -> dict | None:
        if not self.user_format:
            return None
        return self.user_format.get("numberFormat")


@dataclass(frozen=True)
class ParsedInput:
    """A value parsed from a request: content plus the format it implies."""

    value: float | str | bool | None
    formula: str | None
    implied_format: dict | None
    clears: bool


def check_length(value: Any) -> None:
    """Raise ``ValueError`` when a string is longer than Sheets allows."""
    if isinstance(value, str) and len(value) > MAX_CELL_CHARACTERS:
        raise ValueError(
            "Your input contains more than the maximum of 50000 characters in a single cell."
        )


def parse_input(raw: Any, input_option: str) -> ParsedInput | None:
    """Parse one JSON value from a values write; ``None`` means leave the cell.

    Raises ``TypeError`` for JSON objects or arrays, which Sheets rejects.
    """
    if raw is None:
        return None
    if isinstance(raw, (dict, list)):
        raise TypeError(f"cell value {raw!r} is not a string, number or boolean")
    check_length(raw)
    if isinstance(raw, bool):
        return ParsedInput(raw, None, None, False)
    if isinstance(raw, (int, float)):
        return ParsedInput(float(raw), None, None, False)
    if raw == "":
        return ParsedInput(None, None, None, True)
    if input_option == "RAW":
        return ParsedInput(raw, None, None, False)
    return _parse_user_entered(raw)


def _parse_user_entered(text: str) -> ParsedInput:
    if text.startswith("=") and len(text) > 1:
        return ParsedInput(None, text, None, False)
    if text.startswith("'"):
        return ParsedInput(text[1:], None, None, False)
    stripped = text.strip()
    if stripped.upper() in ("TRUE", "FALSE"):
        return ParsedInput(stripped.upper() == "TRUE", None, None, False)
    number = _parse_number(stripped)
    if number is not None:
        return number
    date = _parse_date(stripped)
    if date is not None:
        return date
    return ParsedInput(text, None, None, False)


def _parse_number(text: str) -> ParsedInput | None:
    match = _NUMBER.match(text)
    if not match or not (match.group("digits") or (match.group("fraction") or "").strip(".")):
        return None
    digits = (match.group("digits") or "0").replace(",", "")
    fraction = match.group("fraction") or ""
    value = float(digits + fraction + (match.group("exponent") or ""))
    if match.group("sign") == "-":
        value = -value
    decimals = len(fraction) - 1 if len(fraction) > 1 else 0
    implied = _implied_number_format(match, decimals)
    if match.group("percent"):
        value /= 100
    return ParsedInput(value, None, implied, False)


def _implied_number_format(match: re.Match, decimals: int) -> dict | None:
    # Sheets picks two decimals whenever the input has any (1,234.5 -> 1,234.50).
    fraction_pattern = ".00" if decimals else ""
    if match.group("percent"):
        return {"type": "PERCENT", "pattern": "0" + fraction_pattern + "%"}
    if match.group("currency"):
        return {"type": "CURRENCY", "pattern": '"$"#,##0' + fraction_pattern}
    if match.group("exponent"):
        return {"type": "SCIENTIFIC", "pattern": "0.00E+00"}
    if "," in (match.group("digits") or ""):
        return {"type": "NUMBER", "pattern": "#,##0" + fraction_pattern}
    return None


def _parse_date(text: str) -> ParsedInput | None:
    iso = _ISO_DATE.match(text)
    if iso:
        year, month, day = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
        pattern = "yyyy-mm-dd" if "-" in text[:8] else "yyyy/mm/dd"
        return _date_input(year, month, day, iso.groups()[3:], pattern)
    us = _US_DATE.match(text)
    if us:
        month, day, year = int(us.group(1)), int(us.group(2)), int(us.group(3))
        return _date_input(year, month, day, us.groups()[3:], "M/d/yyyy")
    time = _TIME.match(text)
    if time:
        return _time_input(time)
    return None


def _date_input(year: int, month: int, day: int, clock: tuple, pattern: str) -> ParsedInput | None:
    hour, minute, second = (int(part) if part else 0 for part in clock)
    try:
        moment = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    kind = "DATE"
    if clock[0] is not None:
        kind = "DATE_TIME"
        pattern += " H:mm:ss" if clock[2] is not None else " H:mm"
    return ParsedInput(numfmt.serial_from_datetime(moment), None, {"type": kind, "pattern": pattern}, False)


def _time_input(match: re.Match) -> ParsedInput | None:
    hour, minute = int(match.group(1)), int(match.group(2))
    second = int(match.group(3) or 0)
    meridiem = (match.group(4) or "").upper()
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "PM" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    serial = (hour * 3600 + minute * 60 + second) / 86400
    pattern = "h:mm"
    if match.group(3):
        pattern += ":ss"
    if meridiem:
        pattern += " am/pm"
    return ParsedInput(serial, None, {"type": "TIME", "pattern": pattern}, False)


def apply_input(cell: Cell | None, parsed: ParsedInput) -> Cell:
    """Return ``cell`` with ``parsed`` written into it."""
    cell = cell or Cell()
    if parsed.clears:
        return replace(cell, value=None, formula=None)
    user_format = cell.user_format
    if parsed.implied_format and not cell.number_format():
        user_format = dict(user_format or {})
        user_format["numberFormat"] = parsed.implied_format
    return replace(cell, value=parsed.value, formula=parsed.formula, user_format=user_format)


def json_number(value: float) -> int | float:
    """Return an integral float as int so JSON shows ``2`` like Google, not ``2.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def render(
    cell: Cell,
    effective: Value,
    render_option: str,
    date_time_option: str,
) -> Any:
    """Render a cell for a values response; ``None`` means an empty cell."""
    if render_option == "FORMULA" and cell.formula is not None:
        return cell.formula
    if effective is None:
        return None
    if isinstance(effective, FormulaError):
        return effective.code
    if render_option == "FORMATTED_VALUE":
        return format_value(effective, cell.number_format())
    if isinstance(effective, bool) or isinstance(effective, str):
        return effective
    if date_time_option == "FORMATTED_STRING" and numfmt.is_date_format(cell.number_format()):
        return numfmt.format_number(effective, cell.number_format())
    return json_number(effective)


def format_value(value: Value, number_format: dict | None) -> str:
    """Render an effective value as FORMATTED_VALUE text."""
    if value is None:
        return ""
    if isinstance(value, FormulaError):
        return value.code
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    return numfmt.format_number(value, number_format)


def extended_value(value: Value, formula: str | None = None) -> dict | None:
    """Return a cell value as the API's ExtendedValue object."""
    if formula is not None:
        return {"formulaValue": formula}
    if value is None:
        return None
    if isinstance(value, FormulaError):
        return {"errorValue": {"type": _ERROR_TYPES.get(value.code, "ERROR"), "message": value.code}}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    return {"numberValue": json_number(value)}


def cell_from_extended(extended: dict | None, cell: Cell | None) -> Cell:
    """Return ``cell`` with its value replaced by an ExtendedValue object."""
    cell = cell or Cell()
    if not extended:
        return replace(cell, value=None, formula=None)
    if "formulaValue" in extended:
        return replace(cell, value=None, formula=extended["formulaValue"])
    for key in ("stringValue", "boolValue"):
        if key in extended:
            check_length(extended[key])
            return replace(cell, value=extended[key], formula=None)
    if "numberValue" in extended:
        return replace(cell, value=float(extended["numberValue"]), formula=None)
    return replace(cell, value=None, formula=None)


_ERROR_TYPES = {
    "#DIV/0!": "DIVIDE_BY_ZERO",
    "#VALUE!": "VALUE",
    "#REF!": "REF",
    "#NAME?": "NAME",
    "#NUM!": "NUM",
    "#N/A": "N_A",
    "#ERROR!": "ERROR",
}
