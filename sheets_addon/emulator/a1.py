"""A1 notation: parse range strings and format them the way Sheets echoes them.

Accepted forms, each optionally prefixed by ``Sheet!`` or ``'Quoted sheet'!``
(a quote inside a quoted title is written ``''``):

* ``A1`` a cell, ``A1:B2`` a rectangle (given in any corner order),
* ``A:C`` whole columns, ``2:5`` whole rows,
* ``A2:C`` / ``A2:2`` open-ended rectangles,
* ``Sheet1`` or ``'Sheet 1'`` alone, meaning every cell of that sheet,
* a named range, with or without a sheet prefix.

Absolute markers (``$A$1``) and lower-case letters are accepted like Sheets
does.  Unquoted titles may contain spaces or any character but ``!``, because
the live API accepts ``My sheet!A1`` too.  Resolving which sheet or named range
a reference means happens in :mod:`state`, not here.

Bounds are zero-based and half-open, like the API's ``GridRange``: ``None``
means unbounded on that side.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Sheets accepts columns up to ZZZ (18,278 columns).
MAX_COLUMNS = 18278

_CELL = re.compile(r"^\$?([A-Za-z]{1,3})?\$?([0-9]+)?$")
_CELL_LIKE_TITLE = re.compile(r"^[A-Za-z]{1,3}[0-9]+$")
_R1C1_LIKE_TITLE = re.compile(r"^[Rr][0-9]*[Cc][0-9]*$")
_PLAIN_TITLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Bounds:
    """A rectangle of cells; ``None`` ends are unbounded (end-exclusive)."""

    start_row: int
    end_row: int | None
    start_column: int
    end_column: int | None


@dataclass(frozen=True)
class RangeReference:
    """A parsed range string, before it is resolved against a spreadsheet.

    ``sheet`` is the title given before ``!`` (unquoted), or ``None``.
    ``bounds`` is ``None`` when the text after the sheet is empty (whole
    sheet) or is a name; ``name`` then contains that name.
    """

    text: str
    sheet: str | None
    bounds: Bounds | None
    name: str | None


def column_to_index(letters: str) -> int:
    """Convert column letters (``"A"``, ``"AB"``) to a zero-based index."""
    index = 0
    for char in letters.upper():
        if not "A" <= char <= "Z":
            raise ValueError(f"column letters {letters!r} are invalid; use A to ZZZ")
        index = index * 26 + (ord(char) - ord("A") + 1)
    return index - 1


def index_to_column(index: int) -> str:
    """Convert a zero-based column index to letters (0 -> ``"A"``)."""
    if index < 0:
        raise ValueError(f"column index {index!r} is negative; use 0 or more")
    letters = ""
    number = index + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def quote_sheet_title(title: str) -> str:
    """Return ``title`` as Sheets writes it in a range, quoted when needed.

    Sheets leaves plain identifiers such as ``Sheet1`` bare and quotes titles
    with other characters or that read as a cell reference (``'D3'``).
    """
    bare = (
        _PLAIN_TITLE.match(title)
        and not _CELL_LIKE_TITLE.match(title)
        and not _R1C1_LIKE_TITLE.match(title)
        and title.upper() not in ("TRUE", "FALSE")
    )
    if bare:
        return title
    return "'" + title.replace("'", "''") + "'"


def format_cell(row: int, column: int) -> str:
    """Format a zero-based cell position as ``A1`` text."""
    return f"{index_to_column(column)}{row + 1}"


def format_range(title: str, start_row: int, end_row: int, start_column: int, end_column: int) -> str:
    """Format a bounded rectangle as Sheets echoes it: ``Sheet1!A1:B2``.

    A single cell is written without ``:``; the title is quoted as needed.
    """
    first = format_cell(start_row, start_column)
    last = format_cell(end_row - 1, end_column - 1)
    cells = first if first == last else f"{first}:{last}"
    return f"{quote_sheet_title(title)}!{cells}"


def format_range_always_quoted(title: str, start_row: int, end_row: int, start_column: int, end_column: int) -> str:
    """Format a rectangle with the title always quoted, as error messages do."""
    first = format_cell(start_row, start_column)
    last = format_cell(end_row - 1, end_column - 1)
    cells = first if first == last else f"{first}:{last}"
    quoted = "'" + title.replace("'", "''") + "'"
    return f"{quoted}!{cells}"


def parse_range(text: str) -> RangeReference:
    """Parse a range string into a :class:`RangeReference`.

    Raises ``ValueError`` naming the text when a quoted title is not closed.
    A string that is neither cells nor a plausible name is returned as a
    name, so the caller reports the Sheets error for an unknown range.
    """
    sheet, rest = _split_sheet(text)
    if rest == "":
        return RangeReference(text, sheet, None, None)
    bounds = parse_bounds(rest)
    if bounds is not None:
        return RangeReference(text, sheet, bounds, None)
    if sheet is None:
        # A bare word: a sheet title or a named range, decided by the caller.
        return RangeReference(text, None, None, rest)
    return RangeReference(text, sheet, None, rest)


def _split_sheet(text: str) -> tuple[str | None, str]:
    if text.startswith("'"):
        title, position = _read_quoted(text)
        remainder = text[position:]
        if remainder == "":
            return title, ""
        if not remainder.startswith("!"):
            raise ValueError(
                f"range {text!r} has text after the quoted sheet title; "
                "write it as 'Title'!A1"
            )
        return title, remainder[1:]
    if "!" in text:
        title, _, cells = text.rpartition("!")
        return title, cells
    return None, text


def _read_quoted(text: str) -> tuple[str, int]:
    title = []
    position = 1
    while position < len(text):
        char = text[position]
        if char == "'":
            if text[position + 1 : position + 2] == "'":
                title.append("'")
                position += 2
                continue
            return "".join(title), position + 1
        title.append(char)
        position += 1
    raise ValueError(f"range {text!r} has an unclosed quote; close the title with '")


def parse_bounds(cells: str) -> Bounds | None:
    """Parse the cell part of a range (``A1:B2``, ``A:A``, ``1:1``...).

    Returns ``None`` when ``cells`` is not cell notation (it may be a name).
    """
    parts = cells.split(":")
    if len(parts) > 2:
        return None
    start = _parse_corner(parts[0])
    if start is None:
        return None
    if len(parts) == 1:
        column, row = start
        if column is None or row is None:
            return None
        return Bounds(row, row + 1, column, column + 1)
    end = _parse_corner(parts[1])
    if end is None:
        return None
    return _bounds_from_corners(start, end)


def _parse_corner(text: str) -> tuple[int | None, int | None] | None:
    if text == "":
        return None
    match = _CELL.match(text)
    if not match or (match.group(1) is None and match.group(2) is None):
        return None
    column = column_to_index(match.group(1)) if match.group(1) else None
    row = int(match.group(2)) - 1 if match.group(2) else None
    if row is not None and row < 0:
        return None
    if column is not None and column >= MAX_COLUMNS:
        return None
    return column, row


def _bounds_from_corners(
    start: tuple[int | None, int | None], end: tuple[int | None, int | None]
) -> Bounds:
    first_column, last_column = _span(start[0], end[0])
    first_row, last_row = _span(start[1], end[1])
    return Bounds(first_row, last_row, first_column, last_column)


def _span(first: int | None, second: int | None) -> tuple[int, int | None]:
    """Return the half-open span of two corner coordinates, either maybe missing.

    A start without an end leaves the span open (``A2:C`` has open rows); a
    missing start with a given end starts at 0.
    """
    if first is not None and second is not None:
        return min(first, second), max(first, second) + 1
    if first is not None:
        return first, None
    if second is not None:
        return 0, second + 1
    return 0, None
