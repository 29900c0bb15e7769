"""Reader for iCalendar (.ics) files: event instances and attendance rows.

``read(system, stream, context)`` yields, for stream ``events``, one record per event
instance that overlaps the window ``[context.window_start, context.window_end)``
(60 days either side of ``context.now`` when the context has no window). For stream
``attendance`` it yields one record per instance and attendee, the organizer
included. Every record has exactly the fields that ``compiler.catalog`` lists for
the stream, a missing value being None.

Settings of the system: ``path`` (relative to ``context.base_dir``), ``timezone``
(an IANA name, default UTC) and ``encoding`` (default UTF-8, a byte-order mark is
allowed).

Time rules:

- ``recurring-ical-events`` expands RRULE, RDATE, EXDATE and RECURRENCE-ID in the
  event's own time zone, so a weekly 10:00 Europe/London meeting stays at 10:00
  local time after the clocks change.
- A floating time (no TZID and no ``Z``) is read in the system ``timezone``. A time
  written in UTC is reported in the system ``timezone`` when the setting is
  present, and in UTC otherwise. A time with a TZID keeps its own zone. An RDATE
  or override written in UTC for a series with a TZID is reported in the zone of
  that series.
- All-day events have ``datetime.date`` start and end values, the end exclusive as
  in RFC 5545. Their ``duration_hours`` is 0, because days of leave are not
  meeting hours. The window bounds meet all-day dates at midnight in the system
  ``timezone``.
- ``duration_hours`` of a timed instance is the elapsed time from start to end as
  a ``Decimal`` with 2 places, so an instance across a DST change counts its real
  length.

People: ``organizer`` and each attendee carry the address without ``mailto:`` in
lower case and the CN. An attendee's PARTSTAT defaults to NEEDS-ACTION and ROLE to
REQ-PARTICIPANT (RFC 5545 defaults). In the attendance stream an organizer who is
not also an attendee gets a row with PARTSTAT ACCEPTED and ROLE CHAIR.

Identity: ``instance_id`` is ``UID/<original start>``, where the original start is
the RECURRENCE-ID, or the start of an unmoved instance, in UTC as
``20261104T100000Z``, or as ``20261104`` in an all-day series. It does not change
when an instance is moved. A cancelled instance (STATUS:CANCELLED on the event or
on its override) arrives with status ``CANCELLED`` so that a filter drops it
visibly.

Errors: a VEVENT that cannot be used (no DTSTART, an invalid date or rule, an
unknown TZID, a rule that fails to expand) becomes a ``SourceError`` with code
``ics_invalid_event``, and the events of every other UID still arrive. A file that
is not an iCalendar file yields one ``ics_unreadable`` error of scope ``"source"``,
which fails the run (see ``runtime.sources.base``). A file that looks cut off
(it ends before END:VCALENDAR, or a calendar is not closed before the next
BEGIN:VCALENDAR) yields ``ics_truncated``, and BEGIN and END lines that do not
pair up (an END without its BEGIN, a component directly inside the calendar
closed by an outer END) yield ``ics_unbalanced``. Both have scope ``"record"``,
so the events read still arrive, but no mirror destination deletes rows in that
run, because other events may be missing. Errors about input whose
events still arrive (``ics_invalid_line``, ``ics_duplicate_event``,
``ics_invalid_encoding``) have scope ``"note"``. A missing file raises
``SourceUnavailable``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import re
import warnings
import zoneinfo
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import icalendar
import recurring_ical_events
from icalendar.prop import vBroken
from icalendar.timezone.tzid import tzid_from_tzinfo
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from compiler.plan import SystemPlan
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)

logger = logging.getLogger(__name__)

STREAMS = ("events", "attendance")
DEFAULT_WINDOW_DAYS = 60
# A guard against rules such as FREQ=SECONDLY that would expand to millions of
# instances in a normal window. Such a series is reported as an error instead.
MAX_INSTANCES_PER_SERIES = 100_000

_UTC = dt.timezone.utc
_HOURS = Decimal(3600)
_CENTS = Decimal("0.01")
_RAW_EXCERPT_CHARS = 400
_DATETIME_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID")
_DATE_LIST_PROPERTIES = ("RDATE", "EXDATE")
_CRITICAL_PROPERTIES = (
    *_DATETIME_PROPERTIES,
    "DURATION",
    "RRULE",
    *_DATE_LIST_PROPERTIES,
)
# Errors that recurring-ical-events and dateutil raise on bad rules and dates.
_EXPANSION_ERRORS = (ValueError, TypeError, KeyError, OverflowError)
_UTC_ZONE_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu"})


@dataclass(slots=True)
class _Block:
    """The physical lines of one VEVENT or VTIMEZONE of the file."""

    name: str
    first_line: int
    lines: list[str]
    complete: bool = False

    @property
    def text(self) -> str:
        return "\r\n".join(self.lines) + "\r\n"


@dataclass(slots=True)
class _Imbalance:
    """A BEGIN or END line that shows events may be missing from the file."""

    line: int
    code: str
    message: str


@dataclass(slots=True)
class _Scan:
    """The components found in the file and the calendar-level facts."""

    blocks: list[_Block] = field(default_factory=list)
    calendars: int = 0
    calscale: str | None = None
    imbalances: list[_Imbalance] = field(default_factory=list)


@dataclass(slots=True)
class _Member:
    """One parsed VEVENT: a master or a RECURRENCE-ID override."""

    event: icalendar.Event
    block: _Block
    uid: str
    # A broken override is kept only to take the instance it replaces out.
    broken: bool = False

    @property
    def is_override(self) -> bool:
        return "RECURRENCE-ID" in self.event


@dataclass(slots=True)
class _Reading:
    """The facts about the file and the system that one read uses."""

    label: str
    zone: dt.tzinfo
    zone_is_set: bool
    window_start: dt.datetime
    window_end: dt.datetime
    broken_zones: dict[str, str]

    def position(self, line: int, uid: str | None) -> str:
        where = f"{self.label}:{line}"
        return f"{where} (UID {uid})" if uid else where


@dataclass(slots=True)
class _Series:
    """The facts shared by every instance of one UID."""

    uid: str
    line: int
    is_recurring: bool
    all_day_ids: bool
    master_sequence: int
    # The zone of the master's DTSTART when it has a TZID, for instances that an
    # RDATE or an override gives in UTC.
    zone: dt.tzinfo | None
    # recurring-ical-events writes the highest SEQUENCE of the series into every
    # instance, so each instance takes its own component's value from here.
    override_sequences: dict[Any, int]

    def sequence_of(self, instance: icalendar.Event) -> int:
        slot = _override_slot(instance)
        return self.override_sequences.get(slot, self.master_sequence)


def read(
    system: SystemPlan, stream: str, context: SourceContext
) -> Iterator[SourceRecord | SourceError]:
    """Yield the records of ``stream`` ("events" or "attendance") of an ICS file."""
    if stream not in STREAMS:
        raise SourceUnavailable(
            f"system {system.id!r}: unknown ics stream {stream!r}; "
            f"use one of {', '.join(STREAMS)}"
        )
    path = _resolve_path(system, context)
    zone, zone_is_set = _system_zone(system)
    window_start, window_end = _window(context, zone)
    label = str(system.settings["path"])

    encoding = system.settings.get("encoding")
    text, decode_error = _read_text(path, label, system.id, encoding)
    if decode_error is not None:
        yield decode_error
    scan = _scan_blocks(text.split("\n"))
    file_error = _calendar_error(scan, label, text)
    if file_error is not None:
        yield file_error
        return
    for imbalance in scan.imbalances:
        yield SourceError(
            position=f"{label}:{imbalance.line}",
            code=imbalance.code,
            message=imbalance.message,
        )

    reading = _Reading(
        label=label,
        zone=zone,
        zone_is_set=zone_is_set,
        window_start=window_start,
        window_end=window_end,
        broken_zones=_load_time_zones(scan.blocks),
    )
    counts = {"records": 0, "errors": 0}
    for item in _read_events(scan.blocks, reading, stream):
        counts["errors" if isinstance(item, SourceError) else "records"] += 1
        yield item
    logger.info(
        "read %s stream %s: %d records, %d errors",
        label,
        stream,
        counts["records"],
        counts["errors"],
    )


def _calendar_error(scan: _Scan, label: str, text: str) -> SourceError | None:
    """Return the error that makes the whole file unusable, if there is one."""
    if scan.calendars == 0:
        return SourceError(
            position=label,
            code="ics_unreadable",
            scope="source",
            message=(
                f"file {label!r} is not an iCalendar file: no BEGIN:VCALENDAR line "
                "was found; export the calendar as .ics or fix the path"
            ),
            raw=text[:_RAW_EXCERPT_CHARS] or None,
        )
    if scan.calscale and scan.calscale != "GREGORIAN":
        return SourceError(
            position=label,
            code="ics_unreadable",
            scope="source",
            message=(
                f"calendar scale {scan.calscale!r} is not supported; only GREGORIAN "
                "calendars can be expanded, so export the calendar as Gregorian"
            ),
        )
    return None


def _resolve_path(system: SystemPlan, context: SourceContext) -> Path:
    raw = system.settings.get("path")
    if not raw:
        raise SourceUnavailable(
            f"system {system.id!r}: setting 'path' is missing; set it to the .ics file"
        )
    path = Path(raw)
    if not path.is_absolute():
        path = context.base_dir / path
    if not path.is_file():
        raise SourceUnavailable(
            f"system {system.id!r}: calendar file {str(path)!r} was not found; "
            "check the 'path' setting"
        )
    return path


def _system_zone(system: SystemPlan) -> tuple[dt.tzinfo, bool]:
    name = system.settings.get("timezone")
    if not name:
        return _UTC, False
    try:
        return zoneinfo.ZoneInfo(str(name)), True
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise SourceUnavailable(
            f"system {system.id!r}: setting 'timezone' {name!r} is not an IANA time "
            "zone name; use a name such as 'Europe/London'"
        ) from error


def _window(context: SourceContext, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    default = dt.timedelta(days=DEFAULT_WINDOW_DAYS)
    now = context.now if context.now.tzinfo else context.now.replace(tzinfo=_UTC)
    start = context.window_start or now - default
    end = context.window_end or now + default
    # In the system zone, all-day dates compare with the window at local midnight.
    return _aware(start, _UTC).astimezone(zone), _aware(end, _UTC).astimezone(zone)


def _read_text(
    path: Path, label: str, system_id: str, encoding: str | None
) -> tuple[str, SourceError | None]:
    """Decode the file, replacing invalid bytes and reporting the first of them."""
    codec = encoding or "utf-8"
    if codec.lower().replace("_", "-") in ("utf-8", "utf8"):
        codec = "utf-8-sig"
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SourceUnavailable(
            f"system {system_id!r}: calendar file {str(path)!r} cannot be read: "
            f"{error.strerror}; check the file's permissions"
        ) from error
    try:
        return data.decode(codec), None
    except LookupError as error:
        raise SourceUnavailable(
            f"system {system_id!r}: setting 'encoding' {encoding!r} is not a known "
            "text encoding; use a name such as 'utf-8' or 'cp1252'"
        ) from error
    except UnicodeDecodeError as error:
        problem = SourceError(
            position=f"{label} byte {error.start}",
            code="ics_invalid_encoding",
            scope="note",
            message=(
                f"bytes {data[error.start : error.start + 4]!r} at offset "
                f"{error.start} "
                f"are not valid {codec}; invalid characters were replaced by U+FFFD. "
                "Set the system's 'encoding' setting to the file's encoding"
            ),
        )
        return data.decode(codec, errors="replace"), problem


def _scan_blocks(lines: list[str]) -> _Scan:
    """Split the file into VEVENT and VTIMEZONE blocks, keeping line numbers.

    Each block is parsed on its own later, so one broken block cannot make the
    parser reject the whole file. BEGIN and END lines outside a block that do
    not pair up go to ``imbalances``, because events around them may be lost.
    Inside a block, the block's own parse judges them.
    """
    scan = _Scan()
    # The open components, outermost first, each with the line of its BEGIN.
    stack: list[tuple[str, int]] = []
    current: _Block | None = None
    last_line = 0
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.rstrip("\r")
        if line.strip():
            last_line = number
        if line[:1] in (" ", "\t"):
            if current is not None:
                current.lines.append(line)
            continue
        upper = line.upper()
        at_top = len(stack) == 1 and stack[0][0] == "VCALENDAR"
        if upper.startswith("BEGIN:"):
            name = upper[6:].strip()
            if current is not None and name in ("VEVENT", "VTIMEZONE", "VCALENDAR"):
                # A new top-level component starts inside an unterminated one.
                current, stack = None, stack[:1]
                at_top = True
            if name == "VCALENDAR":
                if stack:
                    scan.imbalances.append(_unclosed_calendar(*stack[0], number))
                stack = []
                scan.calendars += 1
            elif at_top and name in ("VEVENT", "VTIMEZONE"):
                current = _Block(name, number, [])
                scan.blocks.append(current)
            stack.append((name, number))
        elif upper.startswith("END:"):
            name = upper[4:].strip()
            if name not in (open_name for open_name, _ in stack):
                scan.imbalances.append(_unmatched_end(name, number))
                continue
            while stack[-1][0] != name:
                open_name, begin_line = stack.pop()
                if current is None and len(stack) == 1:
                    scan.imbalances.append(
                        _unclosed_component(open_name, begin_line, name, number)
                    )
            stack.pop()
            if current is not None and not stack:
                # END:VCALENDAR closed the calendar before the block's own END.
                current = None
            elif current is not None:
                current.lines.append(line)
                if len(stack) == 1:
                    current.complete = name == current.name
                    current = None
            continue
        elif at_top and upper.startswith("CALSCALE:"):
            scan.calscale = upper[9:].strip()
        if current is not None:
            current.lines.append(line)
    if stack:
        scan.imbalances.append(_truncated_end(*stack[0], last_line))
    return scan


_RECOVERY = "copy or export the whole calendar again"


def _truncated_end(name: str, begin_line: int, last_line: int) -> _Imbalance:
    return _Imbalance(
        line=last_line,
        code="ics_truncated",
        message=(
            f"the file ends at line {last_line} without END:{name} (BEGIN:{name} is "
            f"at line {begin_line}), so it is probably cut off and events after "
            f"line {last_line} may be missing; {_RECOVERY}"
        ),
    )


def _unclosed_calendar(name: str, begin_line: int, next_line: int) -> _Imbalance:
    return _Imbalance(
        line=next_line,
        code="ics_truncated",
        message=(
            f"BEGIN:{name} at line {begin_line} has no END:{name} before the next "
            f"BEGIN:VCALENDAR at line {next_line}, so the file is probably cut off "
            f"there and events before line {next_line} may be missing; {_RECOVERY}"
        ),
    )


def _unmatched_end(name: str, line: int) -> _Imbalance:
    return _Imbalance(
        line=line,
        code="ics_unbalanced",
        message=(
            f"END:{name} at line {line} has no matching BEGIN:{name}, so a "
            f"component before it is probably damaged and its events may be "
            f"missing; fix the BEGIN line or {_RECOVERY}"
        ),
    )


def _unclosed_component(
    name: str, begin_line: int, closer: str, line: int
) -> _Imbalance:
    return _Imbalance(
        line=begin_line,
        code="ics_unbalanced",
        message=(
            f"BEGIN:{name} at line {begin_line} has no END:{name} before "
            f"END:{closer} at line {line}, so the events between those lines were "
            f"not read; add the missing END:{name} line or {_RECOVERY}"
        ),
    )


def _unfolded(block: _Block) -> list[str]:
    return re.sub(r"\r\n[ \t]", "", block.text).split("\r\n")


def _block_property(block: _Block, name: str) -> str | None:
    """Return the raw value of the first ``name`` line of a block, parsed or not."""
    pattern = re.compile(rf"^{re.escape(name)}(;[^:]*)?:(.*)$", re.IGNORECASE)
    for line in _unfolded(block):
        match = pattern.match(line)
        if match:
            return match.group(2).strip()
    return None


def _known_zone(tzid: str) -> bool:
    """Return whether icalendar maps ``tzid`` to an IANA zone by its name alone."""
    cleaned = tzid.strip("/")
    if cleaned in WINDOWS_TO_OLSON:
        return True
    try:
        zoneinfo.ZoneInfo(cleaned)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _load_time_zones(blocks: list[_Block]) -> dict[str, str]:
    """Register the file's custom VTIMEZONEs with icalendar and return the broken ones.

    A VTIMEZONE whose TZID is an IANA or Windows zone name is not parsed at all:
    icalendar uses the IANA zone for those names, so a wrong historical offset in
    such a definition cannot reject the file.
    """
    broken: dict[str, str] = {}
    for block in blocks:
        if block.name != "VTIMEZONE":
            continue
        tzid = _block_property(block, "TZID")
        if not tzid or _known_zone(tzid):
            continue
        try:
            # NOTE: icalendar caches custom zones per process by TZID, so a second
            # file with another definition under the same TZID gets the first one.
            with _logged_warnings(block.first_line):
                icalendar.Timezone.from_ical(block.text)
        except (ValueError, TypeError, KeyError) as error:
            broken[tzid] = str(error)
            logger.warning(
                "VTIMEZONE %r at line %d is invalid: %s", tzid, block.first_line, error
            )
    return broken


@contextlib.contextmanager
def _logged_warnings(line: int) -> Iterator[None]:
    """Turn icalendar's warnings (such as a guessed TZID) into log lines."""
    # NOTE: warnings.catch_warnings swaps process-wide filters, so two reads in
    # parallel threads may log or lose each other's warnings.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        logger.warning("line %d: %s", line, warning.message)


@functools.lru_cache(maxsize=256)
def _zone_name(zone: dt.tzinfo) -> str:
    return tzid_from_tzinfo(zone) or str(zone)


def _read_events(
    blocks: list[_Block], reading: _Reading, stream: str
) -> Iterator[SourceRecord | SourceError]:
    groups: dict[str, list[_Member]] = {}
    for block in blocks:
        if block.name != "VEVENT":
            continue
        member = yield from _parse_member(block, reading)
        if member is not None:
            groups.setdefault(member.uid, []).append(member)
    for uid, members in groups.items():
        yield from _read_group(uid, members, reading, stream)


def _parse_member(
    block: _Block, reading: _Reading
) -> Generator[SourceError, None, _Member | None]:
    """Parse and check one VEVENT block, yielding an error for each problem found.

    Returns the usable event, a broken override that still names the instance it
    replaces, or None.
    """
    uid = _block_property(block, "UID")
    if not block.complete:
        problem = "it has no END:VEVENT line, so the file may be truncated"
        yield _event_error(reading, block, uid, problem)
        return None
    try:
        with _logged_warnings(block.first_line):
            event = icalendar.Event.from_ical(block.text)
    except (ValueError, TypeError, KeyError) as error:
        yield _event_error(reading, block, uid, f"it cannot be parsed: {error}")
        return None

    problems = _problems(event, reading.broken_zones)
    if problems:
        replaced = _readable_recurrence_id(event) if uid else None
        if replaced is not None:
            # Showing the replaced instance at its old time would be wrong, so
            # the override stays as a marker that takes that instance out.
            problems.append(f"the instance of {replaced} it replaces is left out too")
        yield _event_error(reading, block, uid, "; ".join(problems))
        if replaced is None:
            return None
        return _Member(event=event, block=block, uid=str(uid), broken=True)

    uid = str(event.get("UID") or "").strip() or _substitute_uid(event)
    skipped = [
        message for name, message in event.errors if name not in _CRITICAL_PROPERTIES
    ]
    if skipped:
        yield _skipped_lines_error(reading, block, uid, skipped)
    _anchor_floating(event, reading.zone)
    _normalize_until(event, reading.zone)
    return _Member(event=event, block=block, uid=uid)


def _skipped_lines_error(
    reading: _Reading, block: _Block, uid: str, messages: list[str]
) -> SourceError:
    return SourceError(
        position=reading.position(block.first_line, uid),
        code="ics_invalid_line",
        scope="note",
        message=(
            f"{len(messages)} line(s) of VEVENT {uid!r} cannot be parsed and were "
            f"left out, but the event was kept. First: {messages[0]}. Lines of a "
            "long value must start with a space when folded; fix the exporting "
            "program"
        ),
        raw=_excerpt(block),
        key=uid,
    )


def _readable_recurrence_id(event: icalendar.Event) -> Any:
    value = event.get("RECURRENCE-ID")
    if value is None or isinstance(value, vBroken) or isinstance(value, list):
        return None
    return value.dt


def _problems(event: icalendar.Event, broken_zones: dict[str, str]) -> list[str]:
    problems: list[str] = []
    if "DTSTART" not in event:
        problems.append("it has no DTSTART; add the start date or time of the event")
    for name in _CRITICAL_PROPERTIES:
        for value in _values(event, name):
            if isinstance(value, vBroken):
                problems.append(
                    f"{name} value {str(value)!r} is invalid ({value.parse_error}); "
                    "write it as in RFC 5545, e.g. 20261104T100000Z"
                )
                continue
            tzid = value.params.get("TZID") if hasattr(value, "params") else None
            if tzid and _has_floating(value):
                problems.append(_unknown_zone_problem(name, str(tzid), broken_zones))
    return problems


def _unknown_zone_problem(name: str, tzid: str, broken_zones: dict[str, str]) -> str:
    if tzid in broken_zones:
        return (
            f"{name} uses TZID {tzid!r}, whose VTIMEZONE is invalid "
            f"({broken_zones[tzid]}); fix the VTIMEZONE or use an IANA name"
        )
    return (
        f"{name} uses unknown TZID {tzid!r}; add a VTIMEZONE with that TZID or use "
        "an IANA name such as 'Europe/London'"
    )


def _has_floating(value: Any) -> bool:
    for item in _moments(value):
        if isinstance(item, dt.datetime) and item.tzinfo is None:
            return True
    return False


def _moments(value: Any) -> list[Any]:
    """Return the date and datetime values of a DTSTART-like or RDATE-like property."""
    items = [entry.dt for entry in value.dts] if hasattr(value, "dts") else [value.dt]
    moments: list[Any] = []
    for item in items:
        moments.extend(item if isinstance(item, tuple) else (item,))
    return moments


def _values(component: icalendar.Component, name: str) -> list[Any]:
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _substitute_uid(event: icalendar.Event) -> str:
    """Build a stable UID for an event without one, from its start and summary.

    DTSTAMP is left out because exporters rewrite it on every export.
    """
    seed = f"{event['DTSTART'].to_ical()!r}|{event.get('SUMMARY', '')}"
    uid = "no-uid-" + hashlib.sha256(seed.encode()).hexdigest()[:16]
    logger.warning(
        "VEVENT without UID starting %s gets UID %s", event["DTSTART"].dt, uid
    )
    return uid


def _anchor_floating(event: icalendar.Event, zone: dt.tzinfo) -> None:
    """Give the floating times of an event with a floating DTSTART the system zone."""
    start = event["DTSTART"].dt
    if not isinstance(start, dt.datetime) or start.tzinfo is not None:
        return
    for name in _DATETIME_PROPERTIES:
        value = event.get(name)
        if value is not None:
            value.dt = _aware(value.dt, zone)
    for name in _DATE_LIST_PROPERTIES:
        for value in _values(event, name):
            for entry in value.dts:
                entry.dt = _aware(entry.dt, zone)


def _aware(value: Any, zone: dt.tzinfo) -> Any:
    if isinstance(value, tuple):
        return tuple(_aware(item, zone) for item in value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value


def _normalize_until(event: icalendar.Event, zone: dt.tzinfo) -> None:
    """Rewrite each RRULE UNTIL whose type does not match DTSTART (RFC 5545 3.3.10).

    Exchange writes the UNTIL of an all-day series as local midnight of the last
    day in UTC, so such a value becomes its date in the system zone. A floating
    UNTIL of a timed series is read in the zone of DTSTART, and a date UNTIL
    includes that whole day.
    """
    start = event["DTSTART"].dt
    for rule in _values(event, "RRULE"):
        untils = rule.get("UNTIL")
        if not untils:
            continue
        until = untils[0]
        if not isinstance(start, dt.datetime):
            if isinstance(until, dt.datetime):
                rule["UNTIL"] = [_aware(until, zone).astimezone(zone).date()]
            continue
        start_zone = start.tzinfo
        if start_zone is None:
            continue
        if not isinstance(until, dt.datetime):
            until = dt.datetime.combine(until, dt.time(23, 59, 59))
        rule["UNTIL"] = [_aware(until, start_zone).astimezone(_UTC)]


def _event_error(
    reading: _Reading, block: _Block, uid: str | None, problem: str
) -> SourceError:
    name = f"VEVENT {uid!r}" if uid else "VEVENT without UID"
    return SourceError(
        position=reading.position(block.first_line, uid),
        code="ics_invalid_event",
        message=f"{name} at line {block.first_line} was skipped: {problem}",
        raw=_excerpt(block),
        key=uid,
    )


def _excerpt(block: _Block) -> str:
    text = "\n".join(block.lines)
    if len(text) <= _RAW_EXCERPT_CHARS:
        return text
    return text[:_RAW_EXCERPT_CHARS] + " ..."


def _read_group(
    uid: str, members: list[_Member], reading: _Reading, stream: str
) -> Iterator[SourceRecord | SourceError]:
    """Expand the master and overrides of one UID and yield their records."""
    usable = [member for member in members if not member.broken]
    if not usable:
        return
    chosen = yield from _choose_members(uid, usable, reading)
    master = next((member for member in chosen if not member.is_override), None)
    if master is not None:
        for member in members:
            if member.broken:
                master.event.add("EXDATE", member.event["RECURRENCE-ID"].dt)
    anchor = master or chosen[0]
    series = _describe_series(uid, anchor, chosen)

    calendar = icalendar.Calendar()
    for member in chosen:
        calendar.add_component(member.event)
    try:
        with _logged_warnings(series.line):
            instances = _expand(calendar, reading)
    except _EXPANSION_ERRORS as error:
        problem = (
            f"its recurrence cannot be expanded ({type(error).__name__}: {error}); "
            "check RRULE, RDATE and EXDATE"
        )
        yield _event_error(reading, anchor.block, uid, problem)
        return
    except _TooManyInstances:
        problem = (
            f"it has more than {MAX_INSTANCES_PER_SERIES} instances in the window; "
            "shorten the window or fix the RRULE frequency"
        )
        yield _event_error(reading, anchor.block, uid, problem)
        return

    position = reading.position(series.line, uid)
    for instance in instances:
        record = _event_record(instance, series, reading)
        if stream == "events":
            key = record["instance_id"]
            yield SourceRecord(data=record, position=position, key=key)
        else:
            yield from _attendance_records(record, position)


def _describe_series(uid: str, anchor: _Member, chosen: list[_Member]) -> _Series:
    return _Series(
        uid=uid,
        line=anchor.block.first_line,
        is_recurring=_is_recurring(chosen),
        all_day_ids=not isinstance(anchor.event["DTSTART"].dt, dt.datetime),
        master_sequence=_sequence(anchor.event),
        zone=_own_zone(anchor.event["DTSTART"].dt),
        override_sequences={
            _override_slot(member.event): _sequence(member.event)
            for member in chosen
            if member.is_override
        },
    )


def _own_zone(start: Any) -> dt.tzinfo | None:
    if not isinstance(start, dt.datetime) or start.tzinfo is None:
        return None
    if _zone_name(start.tzinfo) in _UTC_ZONE_NAMES:
        return None
    return start.tzinfo


def _choose_members(
    uid: str, members: list[_Member], reading: _Reading
) -> Generator[SourceError, None, list[_Member]]:
    """Keep one master and one override per RECURRENCE-ID, the highest SEQUENCE first.

    RFC 5545 lets a copy with a higher SEQUENCE replace an older one. Two copies
    with the same SEQUENCE are a conflict, so the later one is reported and left
    out.
    """
    chosen_by_slot: dict[Any, _Member] = {}
    for member in members:
        slot = _override_slot(member.event) if member.is_override else None
        previous = chosen_by_slot.get(slot)
        if previous is None or _sequence(member.event) > _sequence(previous.event):
            chosen_by_slot[slot] = member
            loser = previous
        else:
            loser = member
        winner = chosen_by_slot[slot]
        if loser is not None and _sequence(loser.event) == _sequence(winner.event):
            yield _duplicate_error(reading, uid, slot, loser, winner)
    return list(chosen_by_slot.values())


def _duplicate_error(
    reading: _Reading, uid: str, slot: Any, loser: _Member, winner: _Member
) -> SourceError:
    repeated_part = "the master" if slot is None else f"the override of {slot}"
    line = loser.block.first_line
    return SourceError(
        position=reading.position(line, uid),
        code="ics_duplicate_event",
        scope="note",
        message=(
            f"VEVENT {uid!r} at line {line} repeats {repeated_part} with the same "
            f"SEQUENCE as line {winner.block.first_line} and was left out; give "
            "each event its own UID or raise SEQUENCE"
        ),
        raw=_excerpt(loser.block),
        key=uid,
    )


def _override_slot(event: icalendar.Event) -> Any:
    value = event["RECURRENCE-ID"].dt
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(_UTC)
    return value


def _sequence(event: icalendar.Component) -> int:
    try:
        return int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        return 0


def _is_recurring(members: list[_Member]) -> bool:
    for member in members:
        if member.is_override or "RRULE" in member.event or "RDATE" in member.event:
            return True
    return False


class _TooManyInstances(Exception):
    """A series has more than MAX_INSTANCES_PER_SERIES instances in the window."""


def _expand(calendar: icalendar.Calendar, reading: _Reading) -> list[icalendar.Event]:
    """Return the instances overlapping the window, sorted by start."""
    query = recurring_ical_events.of(calendar)
    instances: list[icalendar.Event] = []
    for instance in query.after(reading.window_start):
        if _start_instant(instance, reading.zone) >= reading.window_end:
            break
        instances.append(instance)
        if len(instances) > MAX_INSTANCES_PER_SERIES:
            raise _TooManyInstances
    return instances


def _start_instant(instance: icalendar.Event, zone: dt.tzinfo) -> dt.datetime:
    start = instance["DTSTART"].dt
    if not isinstance(start, dt.datetime):
        start = dt.datetime.combine(start, dt.time())
    return _aware(start, zone)


def _event_record(
    instance: icalendar.Event, series: _Series, reading: _Reading
) -> dict[str, Any]:
    start = instance["DTSTART"].dt
    end = instance["DTEND"].dt if "DTEND" in instance else start
    original = _original_stamp(instance, series, reading.zone)
    organizer, attendees = _people(instance)
    record: dict[str, Any] = {
        "instance_id": f"{series.uid}/{original}",
        "uid": series.uid,
        "recurrence_id": original if series.is_recurring else None,
        "is_recurring": series.is_recurring,
        "summary": _text(instance, "SUMMARY"),
        "description": _text(instance, "DESCRIPTION"),
        "location": _text(instance, "LOCATION"),
        "categories": _categories(instance),
        "status": (_text(instance, "STATUS") or "CONFIRMED").upper(),
        "organizer": organizer,
        "organizer_email": organizer["email"] if organizer else None,
        "attendees": attendees,
        "sequence": series.sequence_of(instance),
    }
    record.update(_time_fields(start, end, series.zone, reading))
    return record


def _time_fields(
    start: Any, end: Any, series_zone: dt.tzinfo | None, reading: _Reading
) -> dict[str, Any]:
    if not isinstance(start, dt.datetime) and not isinstance(end, dt.datetime):
        return {
            "start": start,
            "end": end,
            "date": start,
            "all_day": True,
            "duration_hours": Decimal("0.00"),
            "timezone": None,
        }
    start = _reported(_as_datetime(start, reading.zone), series_zone, reading)
    end = _reported(_as_datetime(end, reading.zone), series_zone, reading)
    seconds = (end.astimezone(_UTC) - start.astimezone(_UTC)).total_seconds()
    hours = (Decimal(str(seconds)) / _HOURS).quantize(_CENTS, rounding=ROUND_HALF_UP)
    return {
        "start": start,
        "end": end,
        "date": start.date(),
        "all_day": False,
        "duration_hours": hours,
        "timezone": _zone_name(start.tzinfo),
    }


def _as_datetime(value: Any, zone: dt.tzinfo) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return _aware(value, zone)


def _reported(
    value: dt.datetime, series_zone: dt.tzinfo | None, reading: _Reading
) -> dt.datetime:
    """Move a UTC time into the series' zone, or else into the system's zone if set."""
    if _zone_name(value.tzinfo) not in _UTC_ZONE_NAMES:
        return value
    if series_zone is not None:
        return value.astimezone(series_zone)
    if reading.zone_is_set:
        return value.astimezone(reading.zone)
    return value


def _original_stamp(instance: icalendar.Event, series: _Series, zone: dt.tzinfo) -> str:
    """Format the instance's original start (its RECURRENCE-ID) for instance_id."""
    prop = instance.get("RECURRENCE-ID") or instance["DTSTART"]
    value = prop.dt
    if series.all_day_ids:
        return (value.date() if isinstance(value, dt.datetime) else value).strftime(
            "%Y%m%d"
        )
    value = _as_datetime(value, zone)
    return value.astimezone(_UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(component: icalendar.Component, name: str) -> str | None:
    values = _values(component, name)
    if not values:
        return None
    text = str(values[0])
    return text if text.strip() else None


def _categories(component: icalendar.Component) -> list[str]:
    names: list[str] = []
    for value in _values(component, "CATEGORIES"):
        items = [value] if isinstance(value, vBroken) else value.cats
        for item in items:
            name = str(item).strip()
            if name:
                names.append(name)
    return names


def _people(
    component: icalendar.Component,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    organizers = _values(component, "ORGANIZER")
    organizer = None
    if organizers:
        organizer = {
            "email": _email(organizers[0]),
            "name": _parameter(organizers[0], "CN"),
        }
    attendees = [
        {
            "email": _email(value),
            "name": _parameter(value, "CN"),
            "partstat": (_parameter(value, "PARTSTAT") or "NEEDS-ACTION").upper(),
            "role": (_parameter(value, "ROLE") or "REQ-PARTICIPANT").upper(),
        }
        for value in _values(component, "ATTENDEE")
    ]
    return organizer, attendees


def _email(address: Any) -> str | None:
    text = str(address).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    return text.strip().lower() or None


def _parameter(value: Any, name: str) -> str | None:
    params = getattr(value, "params", None) or {}
    text = params.get(name)
    if text is None:
        return None
    text = str(text).strip()
    return text or None


def _attendance_records(event: dict[str, Any], position: str) -> Iterable[SourceRecord]:
    """Yield one row per attendee of an instance, and one for an unlisted organizer."""
    organizer = event["organizer"]
    organizer_email = event["organizer_email"]
    people: list[dict[str, Any]] = []
    seen: set[str] = set()
    for attendee in event["attendees"]:
        email = attendee["email"]
        if email is not None and email in seen:
            continue
        if email is not None:
            seen.add(email)
        people.append(
            {**attendee, "is_organizer": email is not None and email == organizer_email}
        )
    if organizer is not None and (
        organizer_email is None or organizer_email not in seen
    ):
        people.insert(
            0,
            {
                "email": organizer_email,
                "name": organizer["name"],
                "partstat": "ACCEPTED",
                "role": "CHAIR",
                "is_organizer": True,
            },
        )
    for index, person in enumerate(people):
        data = {
            **event,
            "attendee_email": person["email"],
            "attendee_name": person["name"],
            "partstat": person["partstat"],
            "role": person["role"],
            "declined": person["partstat"] == "DECLINED",
            "is_organizer": person["is_organizer"],
        }
        suffix = person["email"] or f"#{index}"
        yield SourceRecord(
            data=data, position=position, key=f"{event['instance_id']}/{suffix}"
        )
