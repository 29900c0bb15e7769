"""The sheet sync engine: turn canonical records into the edits of one tab.

``plan_tab_sync`` compares the records of one destination with the tab as a backend
read it and returns a ``ChangeSet`` of only the cells that must change, plus counts
and per-record problems. It never reads or writes a spreadsheet itself, so the
``.xlsx`` backend and the Google Sheets backend behave the same way.

Rules the engine keeps:

* Columns are found by header name (case and spacing ignored, aliases accepted).
  Owned columns that are missing are appended to the right of the header row, and
  columns that the destination does not declare are never written.
* Rows are matched by a canonical key string built by ``canonical_key`` from the key
  cells and from the record values. Integer keys compare as numbers ("1007" equals
  1007.0), text keys as trimmed text ("0042" differs from "42").
* A missing key column in a tab that has data rows stops the sync of that tab:
  nothing is written, because appending instead would duplicate every row.
* Duplicate keys in the tab are reported and their records not written; rows are
  never merged. ``mirror`` deletes only rows whose key is in ``owned_keys``.
* Records that share a key: the last one is written and each earlier one is
  reported (``duplicate_key_in_source``), the rule the pipeline follows when it
  deduplicates by entity key, because exports list a record again after it
  changed. Both backends get the same edits, since they share this engine.
* A text key such as ``0042`` that matches no row, where the key column holds the
  number 42, is reported and not written (``key_cell_is_number``), because
  appending would give the record a second row.
* A header cell that repeats an owned column's header is reported
  (``duplicate_header``); the leftmost match is written.

When the grid has no rows at all, ``new_headers`` become row 0 and ``append_rows``
start at row 1. Backends must place them that way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from compiler.plan.models import ColumnPlan, WriteMode
from runtime.sheets.base import CellKind, ChangeSet, Grid, SheetBackend

logger = logging.getLogger(__name__)

# Google Sheets rejects longer cell text. A backend with a lower limit sets its own
# ``max_cell_chars`` attribute, which ``sync_tab`` passes on.
SHEETS_MAX_CELL_CHARS = 50_000

KEYED_MODES = frozenset({"create", "upsert", "update", "mirror"})
WRITE_MODES = KEYED_MODES | {"append"}

_CELL_KINDS: dict[str, CellKind] = {
    "date": "date",
    "datetime": "datetime",
    "duration": "duration",
    "integer": "number",
    "decimal": "number",
    "money": "number",
    "boolean": "boolean",
}

# Characters that XML 1.0 (and so an .xlsx file) cannot store. They are removed from
# every text value so that both backends store, and later compare, the same text.
_XML_ILLEGAL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_INTEGER_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")

# Spreadsheets store numbers as IEEE doubles, which keep about 15 significant digits,
# and openpyxl writes them with ``%.16g``. Values that agree to that precision are
# the same cell value, so 0.1 + 0.2 does not differ from the 0.3 read back.
_NUMBER_RELATIVE_TOLERANCE = 1e-15
# Spreadsheets store times as fractions of a day, and openpyxl rounds what it reads
# back to milliseconds.
_TIME_TOLERANCE = dt.timedelta(milliseconds=1)


@dataclass
class RowProblem:
    """One record or row that could not be synced as asked, for the Errors tab.

    ``key`` is the canonical key string of the record (``None`` when it has no key),
    ``field`` the field involved, ``code`` a stable machine-readable code and ``raw``
    the offending value as text.
    """

    key: str | None
    field: str | None
    code: str
    message: str
    raw: str | None = None


@dataclass
class TabSync:
    """The outcome of planning one tab: the edits, the counts and the problems.

    ``written_keys`` are the canonical keys that syncplan has rows for in the tab
    after the edits are applied. A runtime stores them and passes them back as
    ``owned_keys`` next time, so that ``mirror`` deletes only rows that syncplan wrote.
    """

    changes: ChangeSet
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    written_keys: set[str] = field(default_factory=set)
    header_created: bool = False


class _UnwritableValue(Exception):
    """A record value that cannot become a cell value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Layout:
    """Positions of the owned columns in the tab once the new headers are added."""

    positions: list[int]
    new_headers: list[str]
    header_cells: dict[tuple[int, int], str]
    width: int


# --- Text, keys and cell values ------------------------------------------------


def cell_kind(field_type: str) -> CellKind:
    """Return the cell kind (and so the number format) for a field type."""
    return _CELL_KINDS.get(field_type, "text")


def normalize_header(value: Any) -> str:
    """Return a header cell as compared: casefolded, with runs of spaces collapsed."""
    if _is_blank(value):
        return ""

    return " ".join(_text_key(value).split()).casefold()


def canonical_key(
    values: Sequence[Any], field_types: Sequence[str], zone: ZoneInfo | None = None
) -> str | None:
    """Build the canonical key string of a row or record, or ``None`` if incomplete.

    ``values`` are the key values (cells or record values) in key order and
    ``field_types`` their field types. A single-field key is the normalized value
    itself. A composite key is a compact JSON array of the normalized values, so no
    separator character can make two different keys equal. Aware datetimes are
    converted to ``zone`` (UTC when omitted) before they are compared.
    """
    if len(values) != len(field_types):
        raise ValueError(
            f"canonical_key() got {len(values)} values for {len(field_types)} key"
            " field types; pass one value per key field."
        )

    zone = zone or ZoneInfo("UTC")
    parts = [
        normalize_key_part(v, t, zone) for v, t in zip(values, field_types, strict=True)
    ]
    if any(part is None for part in parts):
        return None
    if len(parts) == 1:
        return parts[0]

    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def normalize_key_part(value: Any, field_type: str, zone: ZoneInfo) -> str | None:
    """Normalize one key value by its field type, or return ``None`` when blank."""
    if _is_blank(value):
        return None
    if isinstance(value, str):
        value = value.strip()

    if field_type == "integer":
        return _integer_key(value)
    if field_type in ("decimal", "money"):
        return _decimal_key(value)
    if field_type == "date":
        return _date_key(value)
    if field_type == "datetime":
        return _datetime_key(value, zone)
    if field_type == "boolean":
        return _boolean_key(value)

    return _text_key(value)


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()

    return False


def _integer_key(value: Any) -> str:
    if isinstance(value, bool):
        return _text_key(value)
    if isinstance(value, int):
        return str(value)
    if (
        isinstance(value, (float, Decimal))
        and math.isfinite(value)
        and value == int(value)
    ):
        return str(int(value))
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        return str(int(Decimal(value)))

    return _text_key(value)


def _decimal_key(value: Any) -> str:
    number = _as_decimal(value)
    if number is None:
        return _text_key(value)

    return _decimal_text(number)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        # repr() gives the shortest text that round-trips, so 1.1 becomes 1.1 and
        # not the 1.100000000000000088... of Decimal(1.1).
        value = repr(value)
    try:
        number = Decimal(value) if isinstance(value, (int, str, Decimal)) else None
    except InvalidOperation:
        return None
    if number is None or not number.is_finite():
        return None

    return number


def _decimal_text(number: Decimal) -> str:
    if number == 0:
        return "0"

    return format(number.normalize(), "f")


def _date_key(value: Any) -> str:
    serial = _serial_moment(value)
    if serial is not None:
        return serial.date().isoformat()
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return value

    return _text_key(value)


def _datetime_key(value: Any, zone: ZoneInfo) -> str:
    serial = _serial_moment(value)
    if serial is not None:
        return _round_to_millisecond(serial).isoformat(timespec="milliseconds")
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        local = _to_local(value, zone)
        return _round_to_millisecond(local).isoformat(timespec="milliseconds")
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time()).isoformat(timespec="milliseconds")

    return _text_key(value)


def _serial_moment(value: Any) -> dt.datetime | None:
    """Return the naive datetime of a date serial number, or ``None`` for other values.

    A backend that reads unformatted values (Google Sheets) returns a date cell as
    its serial number, so a number in a date or datetime key column is read as one,
    the same way ``cell_values_equal`` compares it.
    """
    if not _is_number(value):
        return None
    try:
        return _SERIAL_EPOCH + dt.timedelta(days=float(value))
    except (OverflowError, ValueError):
        return None


def _boolean_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.casefold() in ("true", "false"):
        return value.casefold()

    return _text_key(value)


def _text_key(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return _decimal_text(value) if value.is_finite() else str(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()

    return str(value).strip()


def _to_local(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    # A naive datetime is taken as already being in the sheet's time zone.
    if value.tzinfo is None:
        return value

    return value.astimezone(zone).replace(tzinfo=None)


def _round_to_millisecond(value: dt.datetime) -> dt.datetime:
    milliseconds = round(value.microsecond / 1000)
    return value.replace(microsecond=0) + dt.timedelta(milliseconds=milliseconds)


def to_cell_value(
    value: Any, zone: ZoneInfo, max_chars: int = SHEETS_MAX_CELL_CHARS
) -> Any:
    """Convert a record value to the value a backend writes into a cell.

    Aware datetimes become naive datetimes in ``zone``. Control characters that an
    .xlsx file cannot store are removed from text. Raises ``_UnwritableValue`` for
    NaN and infinite numbers, text over ``max_chars`` characters and types a
    spreadsheet cannot hold. NaN is reported rather than written as an empty cell,
    because clearing a cell for a value that failed to compute would lose data.
    """
    if value is None or isinstance(value, (bool, int, dt.timedelta)):
        return value
    if isinstance(value, (float, Decimal)):
        return _finite_number(value)
    if isinstance(value, dt.datetime):
        return _to_local(value, zone)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return _cell_text(value, max_chars)

    raise _UnwritableValue(
        "unsupported_value",
        f"Value {value!r} of type {type(value).__name__} cannot be written to a cell;"
        " map the field to a string, number, boolean, date, datetime or duration.",
    )


def _finite_number(value: float | Decimal) -> float | Decimal:
    nan = value.is_nan() if isinstance(value, Decimal) else math.isnan(value)
    if nan:
        raise _UnwritableValue(
            "value_not_finite",
            f"Value {value!r} is not a number, so it was not written and the cell"
            " keeps its value; fix the calculation or the source value.",
        )
    if not math.isfinite(value):
        raise _UnwritableValue(
            "value_not_finite",
            f"Value {value!r} is not a finite number, so it was not written;"
            " a spreadsheet cell cannot hold it.",
        )

    return value


def _cell_text(value: str, max_chars: int) -> str:
    text = _XML_ILLEGAL_CHARACTERS.sub("", value)
    if len(text) > max_chars:
        raise _UnwritableValue(
            "cell_too_long",
            f"Text of {len(text)} characters is over the limit of {max_chars}"
            " characters per cell, so it was not written; shorten the value at its"
            " source or map a shorter field.",
        )

    return text


def cell_values_equal(old: Any, new: Any) -> bool:
    """Tell whether a cell read from a tab already contains the value to be written.

    Blank text equals ``None``. Numbers compare numerically (5 equals 5.0, and
    ``Decimal("1.50")`` equals 1.5) but never equal text or booleans. Dates,
    datetimes and durations compare by kind, with datetimes and durations allowed
    to differ by less than a millisecond.
    """
    if _is_blank_cell(old) or _is_blank_cell(new):
        return _is_blank_cell(old) and _is_blank_cell(new)
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    if _is_number(old) and isinstance(new, (dt.date, dt.timedelta)):
        # A backend that reads unformatted values (Google Sheets) returns a date
        # cell as its serial number; the same serial is the same value.
        return _numbers_equal(old, date_serial(new))
    if _is_number(old) or _is_number(new):
        return _is_number(old) and _is_number(new) and _numbers_equal(old, new)
    if isinstance(old, dt.datetime) or isinstance(new, dt.datetime):
        return _datetimes_equal(old, new)
    if isinstance(old, dt.date) or isinstance(new, dt.date):
        return type(old) is type(new) and old == new
    if isinstance(old, dt.timedelta) or isinstance(new, dt.timedelta):
        both = isinstance(old, dt.timedelta) and isinstance(new, dt.timedelta)
        return both and abs(old - new) < _TIME_TOLERANCE

    return type(old) is type(new) and old == new


_SERIAL_EPOCH = dt.datetime(1899, 12, 30)


def date_serial(value: dt.date | dt.timedelta) -> float:
    """Return the spreadsheet serial of a date, naive datetime or duration.

    Days since 1899-12-30, the epoch Excel and Google Sheets share, with the time
    of day as the fraction; a duration is its length in days.
    """
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / 86_400
    if isinstance(value, dt.datetime):
        delta = value.replace(tzinfo=None) - _SERIAL_EPOCH
        return delta.days + (delta.seconds + delta.microseconds / 1e6) / 86_400
    return float((value - _SERIAL_EPOCH.date()).days)


def serial_as(value: Any, like: Any) -> Any:
    """Return a serial number read from a cell as the type of ``like``, for display.

    A backend that reads unformatted values returns a date cell as its serial, so
    a preview of ``old -> new`` shows ``2024-06-01`` instead of ``45444`` when the
    new value is a date, datetime or duration. Any other value is returned as is.
    """
    if not _is_number(value) or isinstance(like, bool):
        return value
    if isinstance(like, dt.timedelta):
        return dt.timedelta(milliseconds=round(float(value) * 86_400_000))
    if isinstance(like, dt.datetime):
        return _SERIAL_EPOCH + dt.timedelta(milliseconds=round(float(value) * 86_400_000))
    if isinstance(like, dt.date):
        return (_SERIAL_EPOCH + dt.timedelta(days=math.floor(value))).date()
    return value


def _is_blank_cell(value: Any) -> bool:
    return value is None or value == ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _numbers_equal(old: int | float | Decimal, new: int | float | Decimal) -> bool:
    if isinstance(old, int) and isinstance(new, int):
        return old == new

    return math.isclose(float(old), float(new), rel_tol=_NUMBER_RELATIVE_TOLERANCE)


def _datetimes_equal(old: Any, new: Any) -> bool:
    both = isinstance(old, dt.datetime) and isinstance(new, dt.datetime)
    if not both:
        return False
    if (old.tzinfo is None) != (new.tzinfo is None):
        return False

    return abs(old - new) < _TIME_TOLERANCE


def _load_zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"Time zone {timezone!r} is not a known IANA time zone; use a name such as"
            " 'Europe/Paris' or 'UTC'."
        ) from error


# --- Columns -------------------------------------------------------------------


def find_columns(
    header: Sequence[Any], columns: Sequence[ColumnPlan]
) -> list[int | None]:
    """Return the index of each column's header cell in ``header``, or ``None``.

    Every column's own header is matched first and its aliases second, so an alias
    never takes a cell that another column's header names. A header cell serves at
    most one column. Among equal header cells the leftmost free one is taken, and
    blank cells never match.
    """
    normalized = [normalize_header(cell) for cell in header]
    positions: list[int | None] = [None] * len(columns)
    taken: set[int] = set()
    for use_aliases in (False, True):
        for number, column in enumerate(columns):
            if positions[number] is not None:
                continue
            names = column.aliases if use_aliases else [column.header]
            positions[number] = _match_header(normalized, names, taken)
            if positions[number] is not None:
                taken.add(positions[number])

    return positions


def _match_header(
    normalized: list[str], names: Sequence[str], taken: set[int]
) -> int | None:
    for name in names:
        target = normalize_header(name)
        if not target:
            continue
        for index, text in enumerate(normalized):
            if text == target and index not in taken:
                return index

    return None


def duplicate_header_problems(
    header: Sequence[Any], columns: Sequence[ColumnPlan], positions: list[int | None]
) -> list[RowProblem]:
    """Report each owned column whose header cell text is in other header cells too.

    The engine writes the leftmost free match (``find_columns``) and never the
    others, but a person cannot tell which of the equal columns syncplan owns, so
    each case becomes a problem for the Errors tab. Columns that no owned column
    matches are left alone and not reported, whatever their headers.
    """
    normalized = [normalize_header(cell) for cell in header]
    taken = {position for position in positions if position is not None}
    problems = []
    for column, position in zip(columns, positions, strict=True):
        if position is None:
            continue
        others = [
            index
            for index, text in enumerate(normalized)
            if text == normalized[position] and index not in taken
        ]
        if not others:
            continue
        letters = [_column_letters(index) for index in others]
        problems.append(
            RowProblem(
                key=None,
                field=column.field,
                code="duplicate_header",
                message=(
                    f"Header {header[position]!r} of field {column.field!r} is also"
                    f" in column(s) {', '.join(letters)} of the header row. syncplan"
                    f" writes column {_column_letters(position)}, the leftmost, and"
                    " leaves the others alone. Rename or delete the other columns so"
                    " that the header is unique."
                ),
                raw=str(header[position]),
            )
        )

    return problems


def _column_letters(index: int) -> str:
    """Return the letters of a 0-based column index (0 is A, 26 is AA)."""
    letters = ""
    number = index + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _lay_out_columns(
    grid: Grid | None,
    columns: Sequence[ColumnPlan],
    positions: list[int | None],
    blank: bool,
) -> _Layout:
    width = len(grid.rows[0]) if grid is not None and grid.rows else 0
    placed: list[int] = []
    new_headers: list[str] = []
    header_cells: dict[tuple[int, int], str] = {}
    for column, position in zip(columns, positions, strict=True):
        if position is not None:
            placed.append(position)
        elif blank and len(header_cells) < width:
            # A tab whose cells are all blank still has a header row to fill in.
            index = len(header_cells)
            header_cells[(0, index)] = column.header
            placed.append(index)
        else:
            placed.append(width + len(new_headers))
            new_headers.append(column.header)

    return _Layout(placed, new_headers, header_cells, width + len(new_headers))


# --- Planning ------------------------------------------------------------------


def plan_tab_sync(
    grid: Grid | None,
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[ColumnPlan],
    field_types: Mapping[str, str],
    *,
    mode: WriteMode,
    key: Sequence[str],
    owned_keys: Collection[str] = (),
    timezone: str = "UTC",
    create_only_fields: Collection[str] = (),
    checkbox_fields: Collection[str] = (),
    max_cell_chars: int = SHEETS_MAX_CELL_CHARS,
) -> TabSync:
    """Compute the edits that make the tab match ``records`` in ``mode``.

    ``grid`` is the tab as read (``None`` when the tab is missing). ``field_types``
    maps each column's field to its plan type. Fields in ``create_only_fields`` are
    written when a row is appended and never updated afterwards, which leaves
    people's later edits of them alone (the Retry checkbox of the Errors tab).
    The columns of ``checkbox_fields`` become ``ChangeSet.checkbox_columns``.
    ``max_cell_chars`` is the maximum text length the backend stores in one cell.
    Raises ``ValueError`` for invalid arguments, never for the content of the tab or
    the records.
    """
    types = _check_arguments(columns, field_types, mode, key)
    zone = _load_zone(timezone)
    result = TabSync(changes=ChangeSet())

    blank = grid is None or _grid_is_blank(grid)
    header = [] if blank or grid is None else grid.header
    positions = find_columns(header, columns)
    has_data = (
        not blank
        and grid is not None
        and any(not _row_is_blank(r) for r in grid.rows[1:])
    )

    if mode in KEYED_MODES and has_data:
        missing = _missing_key_columns(columns, positions, key, header)
        if missing:
            result.errors.extend(missing)
            result.written_keys = set(owned_keys)
            return result

    result.errors.extend(duplicate_header_problems(header, columns, positions))
    layout = _lay_out_columns(grid, columns, positions, blank)
    result.header_created = blank
    result.changes.new_headers = list(layout.new_headers)
    result.changes.cells.update(layout.header_cells)
    result.changes.column_kinds = {
        position: cell_kind(types[column.field])
        for column, position in zip(columns, layout.positions, strict=True)
    }
    result.changes.checkbox_columns = {
        position
        for column, position in zip(columns, layout.positions, strict=True)
        if column.field in checkbox_fields
    }

    context = _SyncContext(
        grid=grid if has_data else None,
        columns=columns,
        types=types,
        key=list(key),
        layout=layout,
        zone=zone,
        create_only=frozenset(create_only_fields),
        max_cell_chars=max_cell_chars,
        result=result,
    )
    if mode == "append":
        _plan_append(context, records)
    else:
        _plan_keyed(context, records, mode, frozenset(owned_keys))

    logger.debug(
        "Planned tab sync in %s mode: %d created, %d updated, %d unchanged,"
        " %d deleted, %d problems",
        mode,
        result.created,
        result.updated,
        result.unchanged,
        result.deleted,
        len(result.errors),
    )
    return result


def _check_arguments(
    columns: Sequence[ColumnPlan],
    field_types: Mapping[str, str],
    mode: str,
    key: Sequence[str],
) -> dict[str, str]:
    if mode not in WRITE_MODES:
        raise ValueError(
            f"Write mode {mode!r} is unknown; use one of {sorted(WRITE_MODES)}."
        )
    if not columns:
        raise ValueError(
            "A tab sync needs at least one column; declare the destination's columns."
        )

    missing_types = [c.field for c in columns if c.field not in field_types]
    if missing_types:
        raise ValueError(
            f"Fields {missing_types!r} have no entry in field_types; pass the plan type"
            " of every column's field."
        )

    if mode in KEYED_MODES and not key:
        raise ValueError(f"Write mode {mode!r} needs a key; pass the key fields.")
    column_fields = {c.field for c in columns}
    unknown_key = [k for k in key if k not in column_fields]
    if unknown_key:
        raise ValueError(
            f"Key fields {unknown_key!r} have no column; add a column for every key"
            " field."
        )

    return {c.field: field_types[c.field] for c in columns}


def _grid_is_blank(grid: Grid) -> bool:
    return all(_row_is_blank(row) for row in grid.rows)


def _row_is_blank(row: Sequence[Any]) -> bool:
    return all(_is_blank_cell(cell) for cell in row)


def _missing_key_columns(
    columns: Sequence[ColumnPlan],
    positions: list[int | None],
    key: Sequence[str],
    header: list[Any],
) -> list[RowProblem]:
    found = [cell for cell in header if not _is_blank_cell(cell)]
    problems = []
    for field_name in key:
        number = _first_column_of(columns, field_name)
        if positions[number] is not None:
            continue
        column = columns[number]
        problems.append(
            RowProblem(
                key=None,
                field=field_name,
                code="key_column_missing",
                message=(
                    f"Key column {column.header!r} (field {field_name!r}) was not"
                    f" found in the header row; headers found: {found!r}. Nothing"
                    " was written to this tab. Rename the column back to"
                    f" {column.header!r} or add its new name as an alias."
                ),
                raw=repr(found),
            )
        )

    return problems


def _first_column_of(columns: Sequence[ColumnPlan], field_name: str) -> int:
    return next(number for number, c in enumerate(columns) if c.field == field_name)


@dataclass
class _SyncContext:
    """The inputs shared by the steps of one plan, and the result they fill in."""

    grid: Grid | None
    columns: Sequence[ColumnPlan]
    types: dict[str, str]
    key: list[str]
    layout: _Layout
    zone: ZoneInfo
    create_only: frozenset[str]
    max_cell_chars: int
    result: TabSync
    key_types: list[str] = field(init=False)
    key_positions: list[int] = field(init=False)
    frozen_positions: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.key_types = [self.types[name] for name in self.key]
        self.key_positions = [
            self.layout.positions[_first_column_of(self.columns, name)]
            for name in self.key
        ]
        self.frozen_positions = frozenset(
            position
            for column, position in zip(
                self.columns, self.layout.positions, strict=True
            )
            if column.field in self.create_only
        )

    def record_key(self, record: Mapping[str, Any]) -> str | None:
        values = [record.get(name) for name in self.key]
        return canonical_key(values, self.key_types, self.zone)


def _plan_append(context: _SyncContext, records: Sequence[Mapping[str, Any]]) -> None:
    for record in records:
        record_key = context.record_key(record) if context.key else None
        cells = _record_cells(context, record, record_key)
        _append_row(context, cells)
        if record_key is not None:
            context.result.written_keys.add(record_key)


def _plan_keyed(
    context: _SyncContext,
    records: Sequence[Mapping[str, Any]],
    mode: str,
    owned_keys: frozenset[str],
) -> None:
    result = context.result
    sheet_rows = _index_sheet_rows(context)
    duplicates = {k for k, rows in sheet_rows.items() if len(rows) > 1}
    for duplicate in sorted(duplicates):
        result.errors.append(_duplicate_in_sheet(duplicate, sheet_rows[duplicate]))

    grid_rows = context.grid.rows if context.grid is not None else []
    number_rows = _number_key_rows(context)
    by_key = _collect_records(context, records)
    for record_key, record in by_key.items():
        if record_key in duplicates:
            continue
        rows = sheet_rows.get(record_key)
        lost_zeros = _rows_without_leading_zeros(record_key, number_rows)
        if rows is None and lost_zeros:
            result.errors.append(_key_lost_leading_zeros(context, record_key, lost_zeros))
            continue
        if rows is None and mode == "update":
            result.errors.append(_key_not_found(record_key, context.key))
            continue

        result.written_keys.add(record_key)
        if rows is None:
            _append_row(context, _record_cells(context, record, record_key))
        elif mode == "create":
            result.unchanged += 1
        else:
            cells = _record_cells(context, record, record_key)
            _update_row(context, rows[0], grid_rows[rows[0]], cells)

    deleted = (
        _plan_deletes(context, sheet_rows, by_key, owned_keys)
        if mode == "mirror"
        else set()
    )
    # Rows written by earlier syncs that stay in the tab are still syncplan's rows.
    result.written_keys.update(
        k for k in sheet_rows if k in owned_keys and k not in deleted
    )


def _index_sheet_rows(context: _SyncContext) -> dict[str, list[int]]:
    rows_by_key: dict[str, list[int]] = {}
    if context.grid is None:
        return rows_by_key

    positions = context.key_positions
    types = context.key_types
    for index, row in enumerate(context.grid.rows[1:], start=1):
        if _row_is_blank(row):
            continue
        values = [row[p] if p < len(row) else None for p in positions]
        row_key = canonical_key(values, types, context.zone)
        if row_key is not None:
            rows_by_key.setdefault(row_key, []).append(index)

    return rows_by_key


_TEXT_KEY_EXCLUDED_TYPES = frozenset(
    {"integer", "decimal", "money", "date", "datetime", "boolean"}
)
_DIGITS = re.compile(r"[0-9]+")


def _number_key_rows(context: _SyncContext) -> dict[str, list[int]]:
    """Map the integer text of each number cell in a text key column to its rows.

    Only single-field text keys are indexed: there a number such as 42 may be a
    key like ``0042`` that a person typed, which the spreadsheet stored as a number.
    """
    if context.grid is None or len(context.key) != 1:
        return {}
    if context.key_types[0] in _TEXT_KEY_EXCLUDED_TYPES:
        return {}

    position = context.key_positions[0]
    found: dict[str, list[int]] = {}
    for index, row in enumerate(context.grid.rows[1:], start=1):
        cell = row[position] if position < len(row) else None
        if _is_number(cell) and math.isfinite(cell) and cell == int(cell) and cell >= 0:
            found.setdefault(str(int(cell)), []).append(index)

    return found


def _rows_without_leading_zeros(
    record_key: str, number_rows: dict[str, list[int]]
) -> list[int]:
    """Return the rows whose number equals ``record_key`` without its leading zeros."""
    if not _DIGITS.fullmatch(record_key) or not record_key.startswith("0"):
        return []

    return number_rows.get(str(int(record_key)), [])


def _key_lost_leading_zeros(
    context: _SyncContext, record_key: str, rows: list[int]
) -> RowProblem:
    position = context.key_positions[0]
    header = context.grid.rows[0][position] if context.grid is not None else None
    numbers = [index + 1 for index in rows]
    return RowProblem(
        key=record_key,
        field=context.key[0],
        code="key_cell_is_number",
        message=(
            f"No row has the text key {record_key!r}, but rows {numbers} hold the"
            f" number {int(record_key)} in key column {header!r}. A spreadsheet drops"
            " the leading zeros of a key typed as a number, so the record was not"
            " written rather than added as a second row. Format the key column as"
            f" plain text and type the key as {record_key!r}, or delete that row."
        ),
        raw=record_key,
    )


def _collect_records(
    context: _SyncContext, records: Sequence[Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    by_key: dict[str, Mapping[str, Any]] = {}
    for record in records:
        record_key = context.record_key(record)
        if record_key is None:
            context.result.errors.append(_key_missing(record, context.key))
            continue
        if record_key in by_key:
            context.result.errors.append(_duplicate_in_source(record_key))
        by_key[record_key] = record

    return by_key


def _record_cells(
    context: _SyncContext, record: Mapping[str, Any], record_key: str | None
) -> dict[int, Any]:
    """Convert a record to ``{column index: cell value}`` for every owned column.

    A value that cannot be written is reported and left out, so its cell keeps
    whatever it contains.
    """
    cells: dict[int, Any] = {}
    for column, position in zip(context.columns, context.layout.positions, strict=True):
        value = record.get(column.field)
        try:
            cells[position] = to_cell_value(value, context.zone, context.max_cell_chars)
        except _UnwritableValue as problem:
            context.result.errors.append(
                RowProblem(
                    key=record_key,
                    field=column.field,
                    code=problem.code,
                    message=f"Field {column.field!r}: {problem.message}",
                    raw=_raw_text(value),
                )
            )

    return cells


def _append_row(context: _SyncContext, cells: dict[int, Any]) -> None:
    row: list[Any] = [None] * context.layout.width
    for position, value in cells.items():
        row[position] = value
    context.result.changes.append_rows.append(row)
    context.result.created += 1


def _update_row(
    context: _SyncContext, index: int, row: Sequence[Any], cells: dict[int, Any]
) -> None:
    changed = False
    for position, value in cells.items():
        if position in context.frozen_positions:
            continue
        old = row[position] if position < len(row) else None
        if not cell_values_equal(old, value):
            context.result.changes.cells[(index, position)] = value
            changed = True

    if changed:
        context.result.updated += 1
    else:
        context.result.unchanged += 1


def _plan_deletes(
    context: _SyncContext,
    sheet_rows: dict[str, list[int]],
    by_key: Mapping[str, Any],
    owned_keys: frozenset[str],
) -> set[str]:
    deleted: set[str] = set()
    for row_key, rows in sheet_rows.items():
        # Duplicated keys are left alone: one of the rows may be a person's copy.
        if len(rows) > 1 or row_key in by_key or row_key not in owned_keys:
            continue
        context.result.changes.delete_rows.append(rows[0])
        deleted.add(row_key)

    context.result.changes.delete_rows.sort()
    context.result.deleted = len(deleted)
    return deleted


def _raw_text(value: Any) -> str | None:
    if value is None:
        return None

    return value if isinstance(value, str) else repr(value)


def _duplicate_in_sheet(row_key: str, rows: list[int]) -> RowProblem:
    # Grid row indexes are 0-based with the header at 0, so index + 1 is the row
    # number shown in the spreadsheet.
    numbers = [index + 1 for index in rows]
    return RowProblem(
        key=row_key,
        field=None,
        code="duplicate_key_in_sheet",
        message=(
            f"Key {row_key!r} is on rows {numbers} of the tab, so its records were not"
            " written. Delete or correct the extra rows so that the key is unique."
        ),
        raw=row_key,
    )


def _duplicate_in_source(record_key: str) -> RowProblem:
    return RowProblem(
        key=record_key,
        field=None,
        code="duplicate_key_in_source",
        message=(
            f"Key {record_key!r} occurs more than once in the records; the last"
            " record with this key was written and this earlier one was skipped."
            " Remove the duplicate at the source, or add a field to the key."
        ),
        raw=record_key,
    )


def _key_missing(record: Mapping[str, Any], key: Sequence[str]) -> RowProblem:
    values = {name: record.get(name) for name in key}
    return RowProblem(
        key=None,
        field=", ".join(key),
        code="key_missing",
        message=(
            f"The record has an empty key ({values!r}), so it cannot be matched to a"
            " row and was not written. Fill the key field at the source."
        ),
        raw=repr(values),
    )


def _key_not_found(record_key: str, key: Sequence[str]) -> RowProblem:
    return RowProblem(
        key=record_key,
        field=", ".join(key),
        code="key_not_found",
        message=(
            f"No row has key {record_key!r}, and update mode never appends rows, so"
            " the record was not written. Add the row to the tab or use upsert mode."
        ),
        raw=record_key,
    )


# --- Running a sync against a backend ------------------------------------------


def sync_tab(
    backend: SheetBackend,
    tab: str,
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[ColumnPlan],
    field_types: Mapping[str, str],
    *,
    mode: WriteMode,
    key: Sequence[str],
    owned_keys: Collection[str] = (),
    timezone: str = "UTC",
    create_only_fields: Collection[str] = (),
) -> TabSync:
    """Read ``tab``, plan its sync and apply the edits to the backend.

    The backend is not committed, so a runtime can sync every tab of a spreadsheet
    and then commit once. A backend's ``max_cell_chars`` attribute, when present,
    lowers the text limit per cell.
    """
    grid = backend.read_tab(tab)
    outcome = plan_tab_sync(
        grid,
        records,
        columns,
        field_types,
        mode=mode,
        key=key,
        owned_keys=owned_keys,
        timezone=timezone,
        create_only_fields=create_only_fields,
        max_cell_chars=getattr(backend, "max_cell_chars", SHEETS_MAX_CELL_CHARS),
    )
    if outcome.changes.is_empty() and grid is not None:
        logger.debug("Tab %r in %s is up to date", tab, backend.location())
        return outcome

    backend.apply(tab, outcome.changes)
    logger.info(
        "Wrote tab %r in %s: %d created, %d updated, %d deleted",
        tab,
        backend.location(),
        outcome.created,
        outcome.updated,
        outcome.deleted,
    )
    return outcome
