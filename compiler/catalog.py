"""What each kind of system offers: its streams, their record fields, its settings.

The compiler checks references to streams and the type fit of path mappings
against this catalog, and the runtime's readers are tested to yield exactly these
fields, so the catalog is the contract between the two.

A stream whose ``fields`` is ``None`` has columns that only the data knows (a CSV
export): every value arrives as text, and a system may list its ``columns`` to get
them checked at compile time.
"""

from __future__ import annotations

from dataclasses import dataclass

# Types a source value can have, beyond the field types: ``list`` and ``object``
# are only reachable through a deeper path or a template.
SourceType = str


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a kind of system and the type of each field it yields."""

    description: str
    fields: dict[str, SourceType] | None


@dataclass(frozen=True)
class KindInfo:
    """One kind of system: whether flows may read it or write it, and its streams."""

    description: str
    readable: bool
    writable: bool
    streams: dict[str, StreamInfo]


_EVENT_FIELDS: dict[str, SourceType] = {
    "instance_id": "string",
    "uid": "string",
    "recurrence_id": "string",
    "is_recurring": "boolean",
    "summary": "string",
    "description": "string",
    "location": "string",
    "categories": "list",
    "status": "string",
    "start": "datetime",
    "end": "datetime",
    "date": "date",
    "all_day": "boolean",
    "duration_hours": "decimal",
    "timezone": "string",
    "organizer": "object",
    "organizer_email": "email",
    "attendees": "list",
    "sequence": "integer",
}

_ATTENDANCE_FIELDS: dict[str, SourceType] = {
    **_EVENT_FIELDS,
    "attendee_email": "email",
    "attendee_name": "string",
    "partstat": "string",
    "role": "string",
    "declined": "boolean",
    "is_organizer": "boolean",
}

KINDS: dict[str, KindInfo] = {
    "csv": KindInfo(
        "A CSV file.",
        readable=True,
        writable=False,
        streams={"rows": StreamInfo("One record per data row, keyed by header.", None)},
    ),
    "json": KindInfo(
        "A JSON file holding a list of records, or an object with one at record_path.",
        readable=True,
        writable=False,
        streams={"records": StreamInfo("One record per list item.", None)},
    ),
    "ndjson": KindInfo(
        "A newline-delimited JSON file, one record per line.",
        readable=True,
        writable=False,
        streams={"records": StreamInfo("One record per line.", None)},
    ),
    "ics": KindInfo(
        "An iCalendar (.ics) file, recurring events expanded in a time window.",
        readable=True,
        writable=False,
        streams={
            "events": StreamInfo("One record per event instance.", _EVENT_FIELDS),
            "attendance": StreamInfo(
                "One record per event instance and attendee (organizer included).",
                _ATTENDANCE_FIELDS,
            ),
        },
    ),
    "sheets": KindInfo(
        "A spreadsheet: a local .xlsx path, or a Google Sheets id or URL.",
        readable=False,
        writable=True,
        streams={},
    ),
    # An http system declares its streams, and their fields, in the spec.
    "http": KindInfo(
        "A REST API whose streams are declared under 'streams' of the system.",
        readable=True,
        writable=True,
        streams={},
    ),
}

# Which source types fit which field types. A text value fits every field type,
# because normalizers parse text; anything else must be the same kind of value.
TYPE_FIT: dict[SourceType, frozenset[str]] = {
    "string": frozenset(
        {
            "string",
            "integer",
            "decimal",
            "boolean",
            "date",
            "datetime",
            "duration",
            "email",
            "url",
            "enum",
            "money",
        }
    ),
    "integer": frozenset({"integer", "decimal", "money", "string", "enum", "duration"}),
    "decimal": frozenset({"decimal", "money", "string", "duration", "integer"}),
    "boolean": frozenset({"boolean", "string"}),
    "date": frozenset({"date", "datetime", "string"}),
    "datetime": frozenset({"datetime", "date", "string"}),
    "duration": frozenset({"duration", "decimal", "string"}),
    "email": frozenset({"email", "string"}),
    "url": frozenset({"url", "string"}),
    "enum": frozenset({"enum", "string"}),
    "money": frozenset({"money", "decimal", "string"}),
    "list": frozenset(),
    "object": frozenset(),
}

# Field types that take minimum and maximum, and those that take pattern and
# the lengths: the runtime's converters reject these settings on other types.
NUMBER_TYPES = frozenset({"integer", "decimal", "money"})
TEXT_TYPES = frozenset({"string", "email", "url", "enum"})
CONSTRAINT_TYPES: dict[str, frozenset[str]] = {
    "minimum": NUMBER_TYPES,
    "maximum": NUMBER_TYPES,
    "pattern": TEXT_TYPES,
    "min_length": TEXT_TYPES,
    "max_length": TEXT_TYPES,
}
# The directives of datetime.strptime on Python 3.11, which reads the formats
# of date and datetime fields.
STRPTIME_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSUuVwWxXyYzZ%")
FORMAT_HINT = ("use strptime directives such as %Y, %m, %d, %H, %M, %S, %I and %p,"
               " and write %% for a literal '%'")


def unknown_directive(fmt: str) -> str | None:
    """Return the first directive of a strptime format that Python lacks, or None.

    A '%' at the end of the format, with no letter after it, is returned as "".
    """
    index = fmt.find("%")
    while index != -1:
        directive = fmt[index + 1 : index + 2]
        if directive not in STRPTIME_DIRECTIVES:
            return directive
        index = fmt.find("%", index + 2)
    return None


def constraint_types_text(types: frozenset[str]) -> str:
    """Return ``types`` as prose: 'integer, decimal and money'."""
    *others, last = sorted(types)
    return f"{', '.join(others)} and {last}"


def header_key(header: str) -> str:
    """Return a column header as the sheet layer compares it.

    The runtime matches header cells ignoring case and runs of whitespace, so two
    headers with the same key would name the same column.
    """
    return " ".join(header.split()).casefold()
