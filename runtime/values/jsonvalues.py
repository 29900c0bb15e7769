"""Canonical values to JSON and back, for canonical records stored as JSON.

``to_json_value`` writes a Decimal as text (so no digit is lost to a float), a
date as "YYYY-MM-DD", a datetime as ISO 8601 with its UTC offset, and a timedelta
as an ISO 8601 duration in hours ("PT1H30M"). ``from_json_value`` reads those
forms back for a field type. Canonical datetimes carry a fixed UTC offset, so a
datetime read back equals the one written, tzinfo included.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from runtime.values.temporal import format_iso_duration, parse_iso_duration

_PASS_THROUGH = (str, int, float, bool, type(None))


def to_json_value(value: Any) -> Any:
    """Return the JSON-safe form of a canonical value: a str, int, bool or None."""
    if isinstance(value, _PASS_THROUGH):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.time)):
        # datetime is a date subclass; both write their ISO 8601 form.
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return format_iso_duration(value)
    if isinstance(value, (list, tuple)):
        return [to_json_value(item) for item in value]
    raise TypeError(
        f"{value!r} of type {type(value).__name__} is not a canonical value"
    )


def from_json_value(field_type: str, value: Any) -> Any:
    """Return the canonical ``field_type`` value that ``to_json_value`` stored.

    Raises ValueError when the stored value does not have the form of that type.
    """
    if value is None:
        return None
    reader = _READERS.get(field_type)
    if reader is None:
        raise ValueError(
            f"unknown field type {field_type!r}; expected one of {sorted(_READERS)}"
        )
    try:
        return reader(value)
    except (ValueError, TypeError, InvalidOperation) as error:
        raise ValueError(
            f"stored value {value!r} is not a valid {field_type} value: {error}"
        ) from error


def _read_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError("decimals are stored as JSON strings")
    return Decimal(value)


def _read_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("integers are stored as JSON integers")
    return value


def _read_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("booleans are stored as JSON true or false")
    return value


def _read_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("text values are stored as JSON strings")
    return value


def _read_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(_read_text(value))


def _read_datetime(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(_read_text(value))
    if moment.tzinfo is None:
        raise ValueError("canonical datetimes carry a UTC offset")
    return moment


def _read_duration(value: Any) -> dt.timedelta:
    duration = parse_iso_duration(_read_text(value))
    if duration is None:
        raise ValueError("durations are stored as ISO 8601 text such as 'PT1H30M'")
    return duration


_READERS = {
    "string": _read_text,
    "email": _read_text,
    "url": _read_text,
    "enum": _read_text,
    "integer": _read_integer,
    "decimal": _read_decimal,
    "money": _read_decimal,
    "boolean": _read_boolean,
    "date": _read_date,
    "datetime": _read_datetime,
    "duration": _read_duration,
}
