"""Converters of date, datetime and duration fields.

Text is tried in this order: ISO 8601, then the field's ``formats`` in declared
order, then epoch milliseconds. Epoch milliseconds are a string of 12 or 13
digits, or an int of that size, as ClickUp and other JSON APIs send them, and
cover the years 1973 to 2286. Slashed dates such as "04/11/2026" are read only
through ``formats``, because day-first and month-first exports look the same.

A datetime is canonical as local time in the field's ``timezone`` (an IANA name,
UTC when unset) with that zone's UTC offset at that instant, held as a fixed
``datetime.timezone``: naive values are taken as local time there, aware values
are converted to it. A naive local time that occurs twice when clocks go back is
read as the first occurrence (``fold=0``); one that does not exist because clocks
go forward is rejected. A bare number for a duration is a number of hours.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runtime.values.numbers import parse_number_text
from runtime.values.problems import (
    FieldPlanError,
    ValueProblem,
    is_container,
    show,
    wrong_type,
)
from runtime.values.timeformats import FormatParser, compile_format

Converter = Callable[[Any], Any]
Zone = dt.tzinfo

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_combine = dt.datetime.combine
_timedelta = dt.timedelta
_MIN_EPOCH_MS = 10**11
_MAX_EPOCH_MS = 10**13 - 1
_SLASHED_DATE = re.compile(r"[0-9]{1,2}[/.\-][0-9]{1,2}[/.\-][0-9]{2,4}\b.*")


def resolve_zone(field_name: str, name: str | None) -> Zone:
    """Return the tzinfo of an IANA zone name; None and "UTC" give ``timezone.utc``."""
    if name is None or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return _UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise FieldPlanError(
            f"field {field_name!r}: unknown time zone {name!r}; use an IANA name"
            " such as 'Europe/London' or 'America/New_York'"
        ) from error


def _compile_formats(
    field_name: str, formats: Sequence[str] | None
) -> tuple[FormatParser, ...]:
    return tuple(compile_format(field_name, fmt) for fmt in formats or ())


_GAP_WINDOW = dt.timedelta(hours=26)
_FIXED_ZONES: dict[dt.timedelta, dt.timezone] = {dt.timedelta(0): _UTC}


def _fixed_zone(offset: dt.timedelta) -> dt.timezone:
    zone = _FIXED_ZONES.get(offset)
    if zone is None:
        zone = _FIXED_ZONES.setdefault(offset, dt.timezone(offset))
    return zone


def _at_offset(local: dt.datetime, offset: dt.timedelta) -> dt.datetime:
    # Canonical datetimes carry a fixed offset, not the IANA zone. Under PEP 495 a
    # ZoneInfo datetime in a repeated hour compares unequal to any datetime of
    # another zone, even at the same instant. Values read back from JSON would
    # then look changed.
    moment = _combine(local, local.time(), _fixed_zone(offset))
    return moment.replace(fold=0) if moment.fold else moment


def localize(naive: dt.datetime, zone: Zone, value: Any) -> dt.datetime:
    """Return the canonical datetime of a naive local time in ``zone``.

    A time that occurs twice (clocks going back) is read as the first occurrence
    unless ``naive.fold`` is 1. A time that the clocks skip raises ``ValueProblem``.
    """
    offset = zone.utcoffset(naive)
    if zone is _UTC or offset is None:
        return _at_offset(naive, dt.timedelta(0))
    try:
        # Cheap test first: the offset is the same 26 hours before and after, so
        # no transition (not even a skipped whole day) lies in between. utcoffset
        # on a naive datetime reads its wall time, so no aware value is built.
        near_transition = not (
            zone.utcoffset(naive - _GAP_WINDOW)
            == offset
            == zone.utcoffset(naive + _GAP_WINDOW)
        )
        local_again = naive
        if near_transition:
            instant = (naive - offset).replace(tzinfo=_UTC)
            local_again = instant.astimezone(zone).replace(tzinfo=None)
    except OverflowError as error:
        raise _out_of_range(value, "invalid_datetime") from error
    if local_again != naive:
        raise ValueProblem(
            "invalid_datetime",
            f"{show(value)} does not exist in {zone}: the clocks skip that local time"
            " (as when daylight saving time starts); give the time with its UTC offset",
        )
    return _at_offset(naive, offset)


def _to_zone(moment: dt.datetime, zone: Zone, value: Any) -> dt.datetime:
    if moment.tzinfo is None:
        return localize(moment, zone, value)
    if moment.utcoffset() is None:
        return localize(moment.replace(tzinfo=None), zone, value)
    if moment.tzinfo is _UTC and zone is _UTC:
        return moment
    try:
        local = moment.astimezone(zone)
    except OverflowError as error:
        raise _out_of_range(value, "invalid_datetime") from error
    return _at_offset(local, local.utcoffset())


def _out_of_range(value: Any, code: str) -> ValueProblem:
    return ValueProblem(
        code, f"{show(value)} is outside the years 1 to 9999 in the field's time zone"
    )


def _epoch_ms(millis: int) -> dt.datetime | None:
    if not _MIN_EPOCH_MS <= millis <= _MAX_EPOCH_MS:
        return None
    return _EPOCH + dt.timedelta(milliseconds=millis)


def _parse_moment(
    text: str, formats: tuple[FormatParser, ...], value: Any, code: str
) -> dt.datetime | None:
    """Return the datetime written in ``text`` (naive or aware), or None."""
    # Every ISO 8601 form starts with a four-digit year; a 12-13 digit string is
    # epoch milliseconds, which fromisoformat would misread as a compact date.
    if text[:4].isdigit() and (not text.isdigit() or len(text) == 8):
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass
    for parse in formats:
        try:
            moment = parse(text)
        except ValueError as error:
            raise ValueProblem(
                code, f"{show(value)} is not a real date or time ({error})"
            ) from error
        if moment is not None:
            return moment
    if text.isdigit() and len(text) in (12, 13):
        return _epoch_ms(int(text))
    return None


def _unreadable(
    value: Any, text: str, kind: str, code: str, formats: Sequence[str] | None
) -> ValueProblem:
    iso = "2026-11-04" if kind == "date" else "2026-11-04T09:30:00+01:00"
    if formats:
        listed = ", ".join(repr(fmt) for fmt in formats)
        return ValueProblem(
            code,
            f"{show(value)} is not an ISO 8601 {kind} such as {iso!r} and matches"
            f" none of the field's formats {listed}",
        )
    if _SLASHED_DATE.fullmatch(text):
        return ValueProblem(
            code,
            f"{show(value)} is ambiguous: day and month order is unknown; declare the"
            " field's formats, for example ['%m/%d/%Y'] for US exports or ['%d/%m/%Y']",
        )
    return ValueProblem(
        code,
        f"{show(value)} is not an ISO 8601 {kind} such as {iso!r}; declare the field's"
        " formats (strptime syntax) to read other forms",
    )


def make_date(
    field_name: str, formats: Sequence[str] | None, timezone: str | None
) -> Converter:
    """Build the converter of a date field.

    A datetime becomes its calendar date; when the field declares ``timezone``,
    an aware datetime is first converted to that zone.
    """
    parsers = _compile_formats(field_name, formats)
    zone = resolve_zone(field_name, timezone) if timezone else None

    def date_of(moment: dt.datetime, value: Any) -> dt.date:
        if zone is not None and moment.utcoffset() is not None:
            try:
                moment = moment.astimezone(zone)
            except OverflowError as error:
                raise _out_of_range(value, "invalid_date") from error
        return moment.date()

    def parse_date(value: Any) -> dt.date:
        cls = value.__class__
        if cls is str:
            text = value.strip()
            if len(text) == 10 and text[4] == "-":
                try:
                    return dt.date.fromisoformat(text)
                except ValueError:
                    pass
            moment = _parse_moment(text, parsers, value, "invalid_date")
            if moment is None:
                raise _unreadable(value, text, "date", "invalid_date", formats)
            return date_of(moment, value)
        if cls is dt.date:
            return value
        if isinstance(value, dt.datetime):
            return date_of(value, value)
        if isinstance(value, dt.date):
            return dt.date(value.year, value.month, value.day)
        if isinstance(value, int) and cls is not bool:
            moment = _epoch_ms(value)
            if moment is not None:
                return date_of(moment, value)
        if is_container(value):
            raise wrong_type(value, "a date")
        raise ValueProblem(
            "invalid_date",
            f"{show(value)} is not a date; expected ISO 8601 text such as '2026-11-04',"
            " a date, or epoch milliseconds (12-13 digits)",
        )

    return parse_date


def make_datetime(
    field_name: str, formats: Sequence[str] | None, timezone: str | None
) -> Converter:
    """Build the converter of a datetime field, canonical in the field's time zone."""
    parsers = _compile_formats(field_name, formats)
    zone = resolve_zone(field_name, timezone)

    def parse_datetime(value: Any) -> dt.datetime:
        cls = value.__class__
        if cls is str:
            text = value.strip()
            moment = _parse_moment(text, parsers, value, "invalid_datetime")
            if moment is None:
                raise _unreadable(value, text, "datetime", "invalid_datetime", formats)
            return _to_zone(moment, zone, value)
        if isinstance(value, dt.datetime):
            return _to_zone(value, zone, value)
        if isinstance(value, dt.date):
            return localize(
                dt.datetime(value.year, value.month, value.day), zone, value
            )
        if isinstance(value, int) and cls is not bool:
            moment = _epoch_ms(value)
            if moment is not None:
                return _to_zone(moment, zone, value)
            raise ValueProblem(
                "invalid_datetime",
                f"{show(value)} is not a datetime; integers are read as epoch"
                " milliseconds and must have 12 or 13 digits",
            )
        if is_container(value):
            raise wrong_type(value, "a datetime")
        raise ValueProblem(
            "invalid_datetime",
            f"{show(value)} is not a datetime; expected ISO 8601 text such as"
            " '2026-11-04T09:30:00+01:00', a datetime, or epoch milliseconds",
        )

    return parse_datetime


_CLOCK = re.compile(
    r"(?P<h>[0-9]+):(?P<m>[0-5][0-9])(?::(?P<s>[0-5][0-9](?:\.[0-9]{1,6})?))?"
)
_NUMBER = r"[0-9]+(?:[.,][0-9]+)?"
_ISO_DURATION = re.compile(
    rf"(?P<sign>-)?P(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?",
    re.IGNORECASE,
)
_CALENDAR_UNITS = re.compile(r"-?P[^T]*[YM]", re.IGNORECASE)  # Y or M before any T
_SECONDS_PER_UNIT = {
    "weeks": 604800,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
}
_DURATION_FORMS = (
    "expected h:mm:ss, h:mm, ISO 8601 such as 'PT1H30M', or decimal hours such as '1.5'"
)
_MICROS = Decimal(1_000_000)


def _from_seconds(seconds: Decimal, value: Any) -> dt.timedelta:
    try:
        micros = int((seconds * _MICROS).to_integral_value(rounding=ROUND_HALF_UP))
        return dt.timedelta(microseconds=micros)
    except (OverflowError, InvalidOperation) as error:
        raise ValueProblem(
            "invalid_duration", f"{show(value)} is too long for a duration"
        ) from error


def parse_iso_duration(text: str) -> dt.timedelta | None:
    """Return the timedelta of an ISO 8601 duration such as "P1DT2H30M".

    Weeks, days, hours, minutes and seconds are read, and a day is 24 hours. Years
    and months have no fixed length and are not read. Returns None for text of
    another form.
    """
    match = _ISO_DURATION.fullmatch(text)
    if match is None or text.upper().endswith(("P", "T")):
        return None
    total = Decimal(0)
    for unit, factor in _SECONDS_PER_UNIT.items():
        amount = match[unit]
        if amount:
            total += Decimal(amount.replace(",", ".")) * factor
    if match["sign"]:
        total = -total
    return _from_seconds(total, text)


def _parse_duration_text(value: str) -> dt.timedelta:
    text = value.strip()
    clock = _CLOCK.fullmatch(text)
    if clock is not None:
        seconds = clock["s"] or "0"
        if "." in seconds:
            total = (
                Decimal(clock["h"]) * 3600 + Decimal(clock["m"]) * 60 + Decimal(seconds)
            )
            return _from_seconds(total, value)
        try:
            return _timedelta(
                hours=int(clock["h"]), minutes=int(clock["m"]), seconds=int(seconds)
            )
        except OverflowError as error:
            raise ValueProblem(
                "invalid_duration", f"{show(value)} is too long for a duration"
            ) from error
    if text[:1] in ("P", "p", "-"):
        duration = parse_iso_duration(text)
        if duration is not None:
            return duration
        if _CALENDAR_UNITS.match(text):
            raise ValueProblem(
                "invalid_duration",
                f"{show(value)} uses years or months, which have no fixed length;"
                " write it in weeks, days, hours, minutes and seconds",
            )
    hours = parse_number_text(text)
    if hours is not None:
        return _from_seconds(hours * 3600, value)
    raise ValueProblem(
        "invalid_duration", f"{show(value)} is not a duration; {_DURATION_FORMS}"
    )


def parse_duration(value: Any) -> dt.timedelta:
    """Return a timedelta from duration text, a timedelta, or a number of hours."""
    cls = value.__class__
    if cls is str:
        return _parse_duration_text(value)
    if isinstance(value, dt.timedelta):
        return value
    if cls is bool:
        raise ValueProblem(
            "invalid_duration", f"{show(value)} is a boolean, not a duration"
        )
    if isinstance(value, (int, Decimal)):
        return _from_seconds(Decimal(value) * 3600, value)
    if isinstance(value, float):
        return _from_seconds(Decimal(repr(value)) * 3600, value)
    if is_container(value):
        raise wrong_type(value, "a duration")
    raise ValueProblem(
        "invalid_duration",
        f"{show(value)} of type {cls.__name__} is not a duration; {_DURATION_FORMS}",
    )


def make_duration() -> Converter:
    return parse_duration


def format_iso_duration(duration: dt.timedelta) -> str:
    """Write a timedelta as an ISO 8601 duration in hours, minutes and seconds.

    Days are written as hours ("PT26H", not "P1DT2H") so the text means a fixed
    length even across a DST change. A negative duration gets a leading "-".
    """
    micros = (
        duration.days * 86400 + duration.seconds
    ) * 1_000_000 + duration.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}H")
    if minutes:
        parts.append(f"{minutes}M")
    if seconds or fraction:
        text = str(seconds)
        if fraction:
            text += "." + f"{fraction:06d}".rstrip("0")
        parts.append(f"{text}S")
    return f"{sign}PT{''.join(parts) or '0S'}"
