"""Read a JSON document (kind ``json``) or an NDJSON file (kind ``ndjson``).

Both kinds have the one stream ``records`` and these settings, from
``system.settings``:

``path``
    The file, relative to ``context.base_dir`` unless absolute. Required.
``encoding``
    ``"utf-8"`` by default. Any Python text codec is accepted. With a UTF-8 codec
    a leading UTF-8 byte-order mark is removed, and a JSON document loses a
    leading U+FEFF in every codec. NDJSON is split at newline bytes,
    so it needs an encoding in which ``"\\n"`` is the single byte 0x0A (UTF-16
    and UTF-32 are rejected).
``record_path`` (``json`` only)
    A dotted path to the records inside the document, such as ``data.items``.
    Each segment is an object key, or a list index when the value reached so far
    is a list (``results.0.rows``). Keys that contain a dot cannot be named.
    Without it the document itself contains the records.

``json``: the value at ``record_path`` (or the whole document) must be a list or
an object. Each object in the list yields
``SourceRecord(data=item, position="PATH:$.data.items[3]")``; an object alone
yields one record at its own position. ``read`` reads the whole document into
memory, because the ``json`` module parses only complete documents.

``ndjson``: each non-blank line yields a record at ``"PATH:LINE"``. The file is
read one line at a time, so memory stays flat in the file size.

Numbers stay exact: decimals and ``NaN``/``Infinity`` are parsed as
``decimal.Decimal``, integers as ``int``. PATH in positions is the ``path``
setting as written.

Input that does not become a record yields a ``SourceError``. The errors that
leave nothing of a JSON document usable have scope ``"source"``, so the run of
the flow fails (see ``runtime.sources.base``):

``json_invalid``
    The document is not valid JSON (line and column from the parser), is
    empty, or ends before its value is complete (a cut-off file). No
    records; scope ``"source"``.
``json_encoding`` / ``ndjson_encoding``
    Bytes invalid in the declared encoding: the whole document (scope
    ``"source"``), or that one line.
``json_record_path``
    ``record_path`` leads nowhere. The message names the keys (or the list size)
    found where the path stopped and suggests the closest key. Scope
    ``"source"``.
``json_not_object``
    An item (or an NDJSON line) is valid JSON but not an object. When the
    value at ``record_path`` itself is neither a list nor an object, the scope
    is ``"source"``.
``ndjson_invalid``
    One line is not valid JSON. The other lines still yield their records.

A missing or unreadable file, an unknown encoding or an invalid setting raises
``SourceUnavailable``.
"""

from __future__ import annotations

import codecs
import decimal
import difflib
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from compiler.plan import SystemPlan
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)
from runtime.sources.files import open_binary, resolve_path

__all__ = ["read", "read_ndjson"]

logger = logging.getLogger(__name__)

STREAM = "records"
# How many keys a json_record_path message lists before it only counts the rest.
MAX_LISTED_KEYS = 20

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class _FileSettings:
    path: str
    encoding: str  # the declared encoding, as written
    codec: str  # the normalized codec name, "utf-8" for every UTF-8 spelling


class _RecordPathError(Exception):
    """``record_path`` leads nowhere. The message names where it stopped."""


def read(
    system: SystemPlan, stream: str, context: SourceContext
) -> Iterator[SourceRecord | SourceError]:
    """Yield one record per object of the system's JSON file, and its errors.

    A system of kind ``ndjson`` is read with ``read_ndjson``.
    """
    if system.kind == "ndjson":
        yield from read_ndjson(system, stream, context)
        return
    _check_stream(system, stream)
    settings = _parse_file_settings(system)
    record_path = _parse_record_path(system)
    file_path = resolve_path(settings.path, context.base_dir, system.id)
    logger.info("reading JSON file %s for system %r", file_path, system.id)
    document_or_error = _load_document(file_path, settings, system.id)
    if isinstance(document_or_error, SourceError):
        yield document_or_error
        return
    try:
        target, pointer = _follow_record_path(document_or_error, record_path)
    except _RecordPathError as exc:
        yield SourceError(
            position=settings.path,
            code="json_record_path",
            message=str(exc),
            scope="source",
        )
        return
    yield from _target_items(target, pointer, settings.path, record_path)


def read_ndjson(
    system: SystemPlan, stream: str, context: SourceContext
) -> Iterator[SourceRecord | SourceError]:
    """Yield one record per non-blank line of the NDJSON file, and its errors."""
    _check_stream(system, stream)
    settings = _parse_file_settings(system)
    if "\n".encode(settings.codec) != b"\n":
        raise SourceUnavailable(
            f"NDJSON system {system.id!r}: `encoding` {settings.encoding!r} does not "
            "write a newline as the single byte 0x0A, so lines cannot be split; "
            "convert the file to UTF-8 and set `encoding` to 'utf-8'"
        )
    file_path = resolve_path(settings.path, context.base_dir, system.id)
    logger.info("reading NDJSON file %s for system %r", file_path, system.id)
    records = errors = 0
    with open_binary(file_path, settings.path, system.id) as binary:
        for item in _ndjson_items(binary, settings):
            if isinstance(item, SourceRecord):
                records += 1
            else:
                errors += 1
            yield item
    logger.info("read %d records and %d errors from %s", records, errors, file_path)


def _check_stream(system: SystemPlan, stream: str) -> None:
    if stream != STREAM:
        raise SourceUnavailable(
            f"{system.kind.upper()} system {system.id!r} has no stream {stream!r}; "
            f"the only stream is {STREAM!r}"
        )


def _parse_file_settings(system: SystemPlan) -> _FileSettings:
    path = system.settings.get("path")
    if not isinstance(path, str) or not path:
        raise SourceUnavailable(
            f"{system.kind.upper()} system {system.id!r} has no file: set `path` to "
            f"the file, got {path!r}"
        )
    encoding = system.settings.get("encoding", "utf-8")
    if not isinstance(encoding, str):
        raise SourceUnavailable(
            f"{system.kind.upper()} system {system.id!r}: `encoding` must be a string, "
            f"got {encoding!r}"
        )
    try:
        info = codecs.lookup(encoding)
        # TextIOWrapper rejects codecs that do not decode bytes to text, like rot13.
        io.TextIOWrapper(io.BytesIO(), encoding=info.name)
    except LookupError:
        raise SourceUnavailable(
            f"{system.kind.upper()} system {system.id!r}: unknown `encoding` "
            f"{encoding!r}; use a Python codec name such as 'utf-8' or 'latin-1'"
        ) from None
    codec = "utf-8" if info.name in ("utf-8", "utf-8-sig") else info.name
    return _FileSettings(path=path, encoding=encoding, codec=codec)


def _parse_record_path(system: SystemPlan) -> list[str]:
    value = system.settings.get("record_path")
    if value is None or value == "":
        return []
    if not isinstance(value, str) or "" in value.split("."):
        raise SourceUnavailable(
            f"JSON system {system.id!r}: `record_path` must be dotted keys such as "
            f"'data.items', got {value!r}"
        )
    return value.split(".")


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=decimal.Decimal, parse_constant=decimal.Decimal)


def _load_document(file_path: Path, settings: _FileSettings, system_id: str) -> Any:
    """Return the parsed document, or the ``SourceError`` that replaces it."""
    with open_binary(file_path, settings.path, system_id) as binary:
        content = binary.read()
    try:
        text = content.decode(settings.codec)
    except UnicodeDecodeError as exc:
        offset = exc.start
        return SourceError(
            position=settings.path,
            code="json_encoding",
            scope="source",
            message=(
                f"the byte at offset {offset} (0x{content[offset]:02x}) is invalid in "
                f"encoding {settings.encoding!r}: {exc.reason}; set `encoding` to the "
                "file's encoding (JSON files are normally 'utf-8')"
            ),
        )
    try:
        # The json module rejects a byte-order mark, and utf-8, utf-16-le and
        # other codecs keep one as U+FEFF.
        return _loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        return _invalid_document_error(exc, settings.path)
    except RecursionError:
        return SourceError(
            position=settings.path,
            code="json_invalid",
            message="the document is nested too deeply for the JSON parser",
            scope="source",
        )


def _invalid_document_error(exc: json.JSONDecodeError, path: str) -> SourceError:
    if not exc.doc.strip():
        return SourceError(
            position=path,
            code="json_invalid",
            scope="source",
            message=(
                "the file is empty, so no records were read; check that the export "
                "finished and that `path` names the right file"
            ),
        )
    problem, cut_off = _decode_problem(exc, "the file")
    if cut_off:
        tail = "copy or export the whole file again"
    elif exc.msg == "Extra data":
        tail = (
            "if the file contains one JSON value per line, set the system's kind to "
            "'ndjson'"
        )
    else:
        tail = "fix the file"
    return SourceError(
        position=f"{path}:{exc.lineno}:{exc.colno}",
        code="json_invalid",
        scope="source",
        message=(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {problem}; "
            f"no records were read; {tail}"
        ),
    )


# The json module's messages, as sentences that stand on their own. Some of
# its messages end in "at" because the full text appends the position.
_DECODE_PROBLEMS = {
    "Expecting value": "a JSON value is expected here",
    "Expecting property name enclosed in double quotes": (
        "a property name in double quotes is expected here"
    ),
    "Expecting ':' delimiter": "a ':' is expected after the property name",
    "Expecting ',' delimiter": "a ',' is expected between two items",
    "Invalid control character at": (
        "a string contains a control character such as a line break, which JSON "
        "allows only as an escape such as \\n"
    ),
    "Invalid \\escape": (
        "a string contains an invalid backslash escape, and a backslash itself must "
        "be written as \\\\"
    ),
    "Invalid \\uXXXX escape": "a \\u escape needs four hexadecimal digits",
    "Extra data": "more data follows the end of the JSON document",
}


def _decode_problem(exc: json.JSONDecodeError, text_name: str) -> tuple[str, bool]:
    """Describe a parse error in a sentence, and whether the text was cut off.

    ``text_name`` names what was parsed, such as "the file" or "the line".
    """
    if exc.msg == "Unterminated string starting at":
        # The parser reports an unclosed string only at the end of the text,
        # because a line break inside a string is an error of its own.
        return (
            f"the string that starts here has no closing quote before the end of "
            f"{text_name}, so {text_name} is probably cut off",
            True,
        )
    if exc.pos >= len(exc.doc.rstrip()):
        return (
            f"{text_name} ends before the JSON value is complete, so it is probably "
            "cut off",
            True,
        )
    before = exc.doc[: exc.pos].rstrip()
    if exc.msg.startswith("Expecting") and before.endswith(","):
        closer = exc.doc[exc.pos]
        if closer in "]}":
            return f"a comma before {closer!r} is not allowed in JSON", False
    problem = _DECODE_PROBLEMS.get(exc.msg, exc.msg.removesuffix(" at"))
    return problem, False


def _follow_record_path(document: Any, segments: list[str]) -> tuple[Any, str]:
    """Return the value at ``segments`` and its JSONPath, or raise _RecordPathError."""
    current = document
    pointer = "$"
    for segment in segments:
        if isinstance(current, dict):
            if segment not in current:
                raise _RecordPathError(
                    _missing_key_message(segments, segment, pointer, current)
                )
            current = current[segment]
            pointer = _child_pointer(pointer, segment)
        elif isinstance(current, list):
            if _INDEX.fullmatch(segment) is None or int(segment) >= len(current):
                raise _RecordPathError(
                    _bad_index_message(segments, segment, pointer, current)
                )
            current = current[int(segment)]
            pointer = f"{pointer}[{int(segment)}]"
        else:
            raise _RecordPathError(
                f"record_path {'.'.join(segments)!r}: the value at {pointer} is "
                f"{_json_type(current)}, so it has no {segment!r}; shorten "
                "`record_path`"
            )
    return current, pointer


def _missing_key_message(
    segments: list[str], segment: str, pointer: str, level: dict[str, Any]
) -> str:
    keys = list(level)
    listed = ", ".join(repr(key) for key in keys[:MAX_LISTED_KEYS])
    if len(keys) > MAX_LISTED_KEYS:
        listed += f" and {len(keys) - MAX_LISTED_KEYS} more"
    message = (
        f"record_path {'.'.join(segments)!r}: key {segment!r} not found in the object "
        f"at {pointer}; its keys are {listed or 'none (the object is empty)'}"
    )
    close = difflib.get_close_matches(segment, keys, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message


def _bad_index_message(
    segments: list[str], segment: str, pointer: str, level: list[Any]
) -> str:
    prefix = f"record_path {'.'.join(segments)!r}"
    if not level:
        return (
            f"{prefix}: the list at {pointer} is empty, so it has no item {segment!r}"
        )
    return (
        f"{prefix}: {segment!r} is not an index of the list at {pointer}, which has "
        f"{len(level)} items; use a number from 0 to {len(level) - 1}"
    )


def _child_pointer(pointer: str, key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return f"{pointer}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{pointer}['{escaped}']"


def _target_items(
    target: Any, pointer: str, path: str, record_path: list[str]
) -> Iterator[SourceRecord | SourceError]:
    if isinstance(target, dict):
        yield SourceRecord(data=target, position=f"{path}:{pointer}")
        return
    if not isinstance(target, list):
        where = (
            f"record_path {'.'.join(record_path)!r}" if record_path else "the document"
        )
        yield SourceError(
            position=f"{path}:{pointer}",
            code="json_not_object",
            scope="source",
            message=(
                f"{where} leads to {_json_type(target)}, not a list of objects or an "
                "object; set `record_path` to the list of records"
            ),
            raw=_dump(target),
        )
        return
    for index, item in enumerate(target):
        position = f"{path}:{pointer}[{index}]"
        if isinstance(item, dict):
            yield SourceRecord(data=item, position=position)
        else:
            yield SourceError(
                position=position,
                code="json_not_object",
                message=(
                    f"item {index} of the list at {pointer} is {_json_type(item)}, not "
                    "an object; only objects become records"
                ),
                raw=_dump(item),
            )


def _ndjson_items(
    binary: IO[bytes], settings: _FileSettings
) -> Iterator[SourceRecord | SourceError]:
    for number, line_bytes in enumerate(binary, start=1):
        if number == 1 and settings.codec == "utf-8":
            line_bytes = line_bytes.removeprefix(codecs.BOM_UTF8)
        position = f"{settings.path}:{number}"
        try:
            line = line_bytes.decode(settings.codec)
        except UnicodeDecodeError as exc:
            yield SourceError(
                position=position,
                code="ndjson_encoding",
                message=(
                    f"line {number}, byte offset {exc.start} in the line: bytes "
                    f"{exc.object[exc.start : exc.end].hex(' ')} are invalid in "
                    f"encoding {settings.encoding!r}; set `encoding` to the file's "
                    "encoding"
                ),
                raw=line_bytes.decode(settings.codec, errors="replace").rstrip("\r\n"),
            )
            continue
        if line.strip():
            yield _ndjson_line_item(line.rstrip("\r\n"), number, position)


def _ndjson_line_item(
    line: str, number: int, position: str
) -> SourceRecord | SourceError:
    try:
        value = _loads(line)
    except json.JSONDecodeError as exc:
        problem, _ = _decode_problem(exc, "the line")
        return SourceError(
            position=position,
            code="ndjson_invalid",
            message=(
                f"line {number} is not valid JSON at column {exc.colno}: {problem}; "
                "the other lines are still read"
            ),
            raw=line,
        )
    except RecursionError:
        return SourceError(
            position=position,
            code="ndjson_invalid",
            message=f"line {number} is nested too deeply for the JSON parser",
            raw=line,
        )
    if not isinstance(value, dict):
        return SourceError(
            position=position,
            code="json_not_object",
            message=(
                f"line {number} is {_json_type(value)}, not an object; only objects "
                "become records"
            ),
            raw=line,
        )
    return SourceRecord(data=value, position=position)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, decimal.Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _dump(value: Any) -> str:
    """Write ``value`` as JSON text, writing each ``Decimal`` as the number it is."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_dump(item) for item in value) + "]"
    if isinstance(value, dict):
        members = (
            f"{json.dumps(key, ensure_ascii=False)}: {_dump(item)}"
            for key, item in value.items()
        )
        return "{" + ", ".join(members) + "}"
    return json.dumps(value, ensure_ascii=False)
