"""Read a CSV file as one record per data row (kind ``csv``, stream ``rows``).

Settings, from ``system.settings``:

``path``
    The file, relative to ``context.base_dir`` unless absolute. Required.
``delimiter``
    One character, ``","`` by default. ``"\\t"`` (a tab, or the two characters
    backslash and ``t`` as single-quoted YAML writes them) and ``";"`` are the usual
    others. ``"auto"`` detects ``,``, ``;``, tab or ``|`` with ``csv.Sniffer`` over
    the first 64 KiB.
``quotechar``
    ``'"'`` by default; ``null`` or ``""`` turns quoting off.
``encoding``
    ``"utf-8"`` by default. Any Python text codec is accepted, for example
    ``"utf-8-sig"``, ``"latin-1"``, ``"cp1252"`` or ``"utf-16"``. A byte-order
    mark at the start of the file is removed whenever the codec decodes it as
    U+FEFF, as every UTF codec does. ``"utf-16"`` reads the byte-order mark to
    choose the byte order, so a file without one needs ``"utf-16-le"`` or
    ``"utf-16-be"``.
``header_row``
    1-based row number of the header, 1 by default. Rows above it are skipped.
    Rows are counted as a spreadsheet program numbers them: a blank line is a row,
    and a quoted cell spanning several lines belongs to one row.
``skip_blank_lines``
    ``true`` by default: a data row whose cells are all empty or whitespace
    yields nothing. With ``false`` it yields a record of empty values.

Each data row yields ``SourceRecord(data={header: cell text}, position="PATH:LINE")``
where PATH is the ``path`` setting as written and LINE the physical line on which
the row starts. Every value is a ``str``, and an empty cell is ``""``.

Input that does not become a record yields a ``SourceError`` and reading goes on:

``csv_header``
    A blank header cell was named ``column_N`` (N is the 1-based column number),
    or a repeated header name got a ``_2``, ``_3`` suffix. Each renamed column is
    reported once, and its values still arrive under the new name (scope
    ``"note"``). The code is also used, with no records following, when the
    header row is missing, blank or unparsable; that error has scope
    ``"source"`` and fails the run (see ``runtime.sources.base``).
``csv_extra_cells``
    The row has non-empty cells beyond the last header column. The whole row is
    reported with its raw text and no record is made of it, because yielding only
    the known columns would drop data without a trace. Extra cells that are all
    empty (a trailing delimiter) hold nothing, so they are dropped and the record
    is yielded.
``csv_missing_cells``
    The row has fewer cells than the header. Like a row with extra cells it is
    reported with its raw text and makes no record: a short row is usually a
    broken one, and filling it with empty values would hide that.
``csv_encoding``
    A line contains bytes that are invalid in the declared encoding. The message
    names the line, the column and the bytes, and the row yields no record. A
    UTF-8 byte-order mark under another declared encoding is reported with
    scope ``"note"``, and the rows are still read.
``csv_invalid``
    The csv module rejected the row, for example a cell longer than
    ``csv.field_size_limit()``, or the file ends inside a quoted cell.

The file is read one physical line at a time, so memory stays flat in the file
size: only the lines of the row being parsed are held. A missing or unreadable
file, an unknown encoding or an invalid setting raises ``SourceUnavailable``.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from compiler.plan import SystemPlan
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)
from runtime.sources.files import open_binary, resolve_path

__all__ = ["read"]

logger = logging.getLogger(__name__)

STREAM = "rows"
SNIFF_BYTES = 64 * 1024
SNIFF_DELIMITERS = ",;\t|"

# Decoding maps each invalid byte B to the lone surrogate U+DC00+B, which keeps the
# byte value for the error message. Strict decoding with the utf-8, utf-16,
# latin-1 and cp1252 codecs never produces a lone surrogate, so with them a
# surrogate in the text always marks an invalid byte.
# NOTE: a codec that decodes escapes, such as unicode_escape, can produce lone
# surrogates, and rows containing them would be reported as invalid bytes.
_MARK_INVALID_BYTES = "syncplan.csv.mark_invalid_bytes"
_MARKER_BASE = 0xDC00
_MARKER_RUN = re.compile("[\udc00-\udcff]+")

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _mark_invalid_bytes(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    invalid = error.object[error.start : error.end]
    return "".join(chr(_MARKER_BASE + byte) for byte in invalid), error.end


codecs.register_error(_MARK_INVALID_BYTES, _mark_invalid_bytes)


@dataclass(frozen=True, slots=True)
class _CsvSettings:
    """The validated settings of one CSV system."""

    path: str
    delimiter: str | None  # None means detect it from the file
    quotechar: str | None  # None means no quoting
    encoding: str  # the declared encoding, as written
    codec: str  # the codec that decodes the file
    header_row: int
    skip_blank_lines: bool


@dataclass(slots=True)
class _Row:
    """One parsed CSV row with the physical lines it came from."""

    line: int
    cells: list[str] | None  # None when the csv module rejected the row
    lines: list[str]
    problem: str | None = None


@dataclass(slots=True)
class _ReadCounts:
    records: int = 0
    errors: int = 0
    encoding_errors: int = 0


class _LineFeed:
    """The physical lines given to ``csv.reader``, keeping those of the current row.

    ``csv.reader`` pulls a line only when the row it is parsing needs one, so after
    it returns a row, ``row_lines`` contains exactly that row's lines.
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.line_number = 0
        self.row_lines: list[str] = []
        self.at_end = False

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._lines)
        except StopIteration:
            self.at_end = True
            raise
        if self.line_number == 0:
            # U+FEFF at the start of a file is a byte-order mark. The utf-16 and
            # utf-8-sig codecs remove it, but utf-16-le, utf-16-be and others keep it.
            line = line.removeprefix("\ufeff")
        self.line_number += 1
        self.row_lines.append(line)
        return line

    def start_row(self) -> int:
        """Forget the last row's lines and return the line the next row starts on."""
        self.row_lines = []
        return self.line_number + 1


def read(
    system: SystemPlan, stream: str, context: SourceContext
) -> Iterator[SourceRecord | SourceError]:
    """Yield one record per data row of the system's CSV file, and its errors."""
    if stream != STREAM:
        raise SourceUnavailable(
            f"CSV system {system.id!r} has no stream {stream!r}; "
            f"the only stream is {STREAM!r}"
        )
    settings = _parse_settings(system)
    file_path = resolve_path(settings.path, context.base_dir, system.id, "CSV file")
    logger.info("reading CSV file %s for system %r", file_path, system.id)
    counts = _ReadCounts()
    for item in _read_file(file_path, settings, system.id):
        if isinstance(item, SourceRecord):
            counts.records += 1
        else:
            counts.errors += 1
            if item.code == "csv_encoding":
                counts.encoding_errors += 1
        yield item
    if counts.encoding_errors:
        logger.warning(
            "%d rows of %s have bytes invalid in encoding %r (system %r)",
            counts.encoding_errors,
            file_path,
            settings.encoding,
            system.id,
        )
    logger.info(
        "read %d records and %d errors from %s",
        counts.records,
        counts.errors,
        file_path,
    )


def _parse_settings(system: SystemPlan) -> _CsvSettings:
    """Validate the CSV settings, raising ``SourceUnavailable`` on an invalid one."""
    settings = system.settings
    path = settings.get("path")
    if not isinstance(path, str) or not path:
        raise SourceUnavailable(
            f"CSV system {system.id!r} has no file: set `path` to the CSV file, "
            f"got {path!r}"
        )
    encoding = _setting_str(system, "encoding", "utf-8")
    quotechar = _parse_quotechar(system)
    return _CsvSettings(
        path=path,
        delimiter=_parse_delimiter(system, quotechar),
        quotechar=quotechar,
        encoding=encoding,
        codec=_decoding_codec(encoding, system.id),
        header_row=_parse_header_row(system),
        skip_blank_lines=_parse_bool(system, "skip_blank_lines", True),
    )


def _setting_str(system: SystemPlan, name: str, default: str) -> str:
    value = system.settings.get(name, default)
    if not isinstance(value, str):
        raise SourceUnavailable(
            f"CSV system {system.id!r}: `{name}` must be a string, got {value!r}"
        )
    return value


def _parse_quotechar(system: SystemPlan) -> str | None:
    value = system.settings.get("quotechar", '"')
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
        raise SourceUnavailable(
            f"CSV system {system.id!r}: `quotechar` must be one character other than a "
            f"line break, or null for no quoting, got {value!r}"
        )
    return value


def _parse_delimiter(system: SystemPlan, quotechar: str | None) -> str | None:
    value = system.settings.get("delimiter", ",")
    if value == "auto":
        return None
    if value == "\\t":
        value = "\t"
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
        raise SourceUnavailable(
            f"CSV system {system.id!r}: `delimiter` must be one character such as ',', "
            f"';' or '\\t', or 'auto' to detect it, got {value!r}"
        )
    if value == quotechar:
        raise SourceUnavailable(
            f"CSV system {system.id!r}: `delimiter` and `quotechar` are both "
            f"{value!r}; set them to different characters"
        )
    return value


def _parse_header_row(system: SystemPlan) -> int:
    value = system.settings.get("header_row", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SourceUnavailable(
            f"CSV system {system.id!r}: `header_row` must be a row number from 1, "
            f"got {value!r}"
        )
    return value


def _parse_bool(system: SystemPlan, name: str, default: bool) -> bool:
    value = system.settings.get(name, default)
    if not isinstance(value, bool):
        raise SourceUnavailable(
            f"CSV system {system.id!r}: `{name}` must be true or false, got {value!r}"
        )
    return value


def _decoding_codec(encoding: str, system_id: str) -> str:
    try:
        info = codecs.lookup(encoding)
        # TextIOWrapper rejects codecs that do not decode bytes to text, like rot13.
        io.TextIOWrapper(io.BytesIO(), encoding=info.name)
    except LookupError:
        raise SourceUnavailable(
            f"CSV system {system_id!r}: unknown `encoding` {encoding!r}; use a Python "
            "codec name such as 'utf-8', 'cp1252', 'latin-1' or 'utf-16'"
        ) from None
    if info.name in ("utf-8", "utf-8-sig"):
        return "utf-8-sig"
    return info.name


def _read_file(
    file_path: Path, settings: _CsvSettings, system_id: str
) -> Iterator[SourceRecord | SourceError]:
    with open_binary(file_path, settings.path, system_id, "CSV file") as binary:
        start = binary.read(4)
        binary.seek(0)
        yield from _check_byte_order_mark(start, settings, system_id)
        delimiter = settings.delimiter
        if delimiter is None:
            delimiter = _sniff_delimiter(binary, settings, system_id)
            logger.info("detected delimiter %r in %s", delimiter, file_path)
        text = io.TextIOWrapper(
            binary, encoding=settings.codec, errors=_MARK_INVALID_BYTES, newline=""
        )
        try:
            yield from _read_rows(_LineFeed(text), delimiter, settings)
        finally:
            # The `with` closes the binary file, so the wrapper is detached to keep
            # it from closing the file again when it is garbage collected.
            text.detach()


def _check_byte_order_mark(
    start: bytes, settings: _CsvSettings, system_id: str
) -> Iterator[SourceError]:
    codec = settings.codec
    if codec.startswith(("utf-16", "utf-32")):
        return
    if start.startswith(_UTF16_BOMS):
        raise SourceUnavailable(
            f"CSV file {settings.path!r} of system {system_id!r} starts with a UTF-16 "
            f"byte-order mark but `encoding` is {settings.encoding!r}; set `encoding` "
            "to 'utf-16'"
        )
    if start.startswith(codecs.BOM_UTF8) and codec != "utf-8-sig":
        yield SourceError(
            position=f"{settings.path}:1",
            code="csv_encoding",
            scope="note",
            message=(
                f"the file starts with a UTF-8 byte-order mark but `encoding` is "
                f"{settings.encoding!r}, so the first header name starts with stray "
                "characters; set `encoding` to 'utf-8'"
            ),
        )


def _sniff_delimiter(binary: IO[bytes], settings: _CsvSettings, system_id: str) -> str:
    sample_bytes = binary.read(SNIFF_BYTES)
    binary.seek(0)
    is_whole_file = len(sample_bytes) < SNIFF_BYTES
    decoder = codecs.getincrementaldecoder(settings.codec)(errors=_MARK_INVALID_BYTES)
    sample = decoder.decode(sample_bytes, final=is_whole_file)
    if not is_whole_file:
        # A row cut at the sample's end would skew the per-line delimiter counts.
        last_break = max(sample.rfind("\n"), sample.rfind("\r"))
        if last_break > 0:
            sample = sample[:last_break]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=SNIFF_DELIMITERS)
    except csv.Error:
        raise SourceUnavailable(
            f"CSV system {system_id!r}: the delimiter of {settings.path!r} could not "
            f"be detected from its first {SNIFF_BYTES} bytes; set `delimiter` to ',', "
            "';' or '\\t' instead of 'auto'"
        ) from None
    return dialect.delimiter


def _read_rows(
    feed: _LineFeed, delimiter: str, settings: _CsvSettings
) -> Iterator[SourceRecord | SourceError]:
    if settings.quotechar is None:
        reader = csv.reader(feed, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(feed, delimiter=delimiter, quotechar=settings.quotechar)
    rows = _parse_rows(reader, feed, delimiter, settings.quotechar)
    header: list[str] | None = None
    row_number = 0
    for row in rows:
        row_number += 1
        if row_number < settings.header_row:
            logger.debug(
                "skipping row %d above the header (line %d)", row_number, row.line
            )
            continue
        if header is None:
            header = yield from _read_header(row, settings)
            if not header:
                return
            continue
        yield from _row_items(row, header, settings)
    if header is None:
        yield SourceError(
            position=settings.path,
            code="csv_header",
            scope="source",
            message=(
                f"header row {settings.header_row} not found: the file has only "
                f"{row_number} rows; check `path` and `header_row`"
            ),
        )


def _parse_rows(
    reader: Iterator[list[str]], feed: _LineFeed, delimiter: str, quotechar: str | None
) -> Iterator[_Row]:
    while True:
        line = feed.start_row()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Row(
                line, None, list(feed.row_lines), f"the row cannot be parsed: {exc}"
            )
            continue
        row = _Row(line, cells, list(feed.row_lines))
        if feed.at_end and _ends_inside_quotes(row.lines, delimiter, quotechar):
            row.cells = None
            row.problem = (
                "the file ends inside a quoted cell opened in this row; a quote "
                "character is probably missing or unescaped (write it twice inside a "
                "quoted cell)"
            )
        yield row


def _ends_inside_quotes(
    lines: list[str], delimiter: str, quotechar: str | None
) -> bool:
    # The lenient reader accepts the end of the file inside quotes. Only the last
    # row can reach the end, so that row alone is parsed again in strict mode.
    if quotechar is None:
        return False
    strict = csv.reader(lines, delimiter=delimiter, quotechar=quotechar, strict=True)
    try:
        for _ in strict:
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _read_header(
    row: _Row, settings: _CsvSettings
) -> Generator[SourceError, None, list[str]]:
    """Yield the header's errors and return its column names, empty when unusable."""
    position = f"{settings.path}:{row.line}"
    if row.cells is None:
        yield SourceError(
            position=position,
            code="csv_header",
            scope="source",
            message=(
                f"header row {settings.header_row}: {row.problem}; no rows were read"
            ),
            raw=_raw_text(row.lines),
        )
        return []
    if _is_blank(row.cells):
        yield SourceError(
            position=position,
            code="csv_header",
            scope="source",
            message=(
                f"header row {settings.header_row} (line {row.line}) is blank, so no "
                "rows were read; set `header_row` to the row number of the header"
            ),
        )
        return []
    encoding_error = _encoding_error(row, settings)
    cells = row.cells
    if encoding_error is not None:
        yield encoding_error
        cells = [_replace_markers(cell) for cell in cells]
    header, errors = _build_header(cells, position)
    yield from errors
    return header


def _build_header(
    cells: list[str], position: str
) -> tuple[list[str], list[SourceError]]:
    """Name every column, renaming blank and repeated header cells.

    A blank cell becomes ``column_N`` (N is the 1-based column number) and the
    second and later uses of a name get ``_2``, ``_3`` and so on. A generated name
    never takes a name that appears elsewhere in the header. Returns the names and
    one ``csv_header`` error per renamed column.
    """
    reserved = {cell for cell in cells if cell.strip()}
    first_column: dict[str, int] = {}
    names: list[str] = []
    errors: list[SourceError] = []
    for column, cell in enumerate(cells, start=1):
        if not cell.strip():
            name = _unused_name(f"column_{column}", reserved, first_column)
            message = (
                f"header cell in column {column} is blank; the column is named {name!r}"
            )
        elif cell in first_column:
            name = _unused_name(cell, reserved, first_column, first_suffix=2)
            message = (
                f"header {cell!r} in column {column} repeats column "
                f"{first_column[cell]}; this column is named {name!r}"
            )
        else:
            first_column[cell] = column
            names.append(cell)
            continue
        first_column[name] = column
        names.append(name)
        errors.append(
            SourceError(
                position=position,
                code="csv_header",
                message=message,
                field=name,
                scope="note",
            )
        )
    return names, errors


def _unused_name(
    base: str, reserved: set[str], used: dict[str, int], first_suffix: int | None = None
) -> str:
    suffix = first_suffix
    while True:
        name = base if suffix is None else f"{base}_{suffix}"
        if name not in reserved and name not in used:
            return name
        suffix = 2 if suffix is None else suffix + 1


def _row_items(
    row: _Row, header: list[str], settings: _CsvSettings
) -> Iterator[SourceRecord | SourceError]:
    position = f"{settings.path}:{row.line}"
    if row.cells is None:
        yield SourceError(
            position=position,
            code="csv_invalid",
            message=row.problem or "",
            raw=_raw_text(row.lines),
        )
        return
    encoding_error = _encoding_error(row, settings)
    if encoding_error is not None:
        yield encoding_error
        return
    cells = row.cells
    if settings.skip_blank_lines and _is_blank(cells):
        return
    extra = cells[len(header) :]
    if any(extra):
        yield SourceError(
            position=position,
            code="csv_extra_cells",
            message=(
                f"row has {len(cells)} cells but the header has {len(header)} columns; "
                f"the cells after column {len(header)} are {extra!r}. No record was "
                "made of this row so that no value is lost; quote the cell that "
                "contains the delimiter, or add the missing header columns"
            ),
            raw=_raw_text(row.lines),
        )
        return
    if len(cells) < len(header) and not _is_blank(cells):
        yield SourceError(
            position=position,
            code="csv_missing_cells",
            message=(
                f"row has {len(cells)} cells but the header has {len(header)} columns,"
                f" so {', '.join(repr(name) for name in header[len(cells):])} would"
                " be empty. No record was made of this row, because a short row is"
                " usually a broken one (an unclosed quote, a lost delimiter); fix"
                " the row, or end it with delimiters for the empty cells"
            ),
            raw=_raw_text(row.lines),
        )
        return
    data = {
        name: (cells[index] if index < len(cells) else "")
        for index, name in enumerate(header)
    }
    yield SourceRecord(data=data, position=position)


def _encoding_error(row: _Row, settings: _CsvSettings) -> SourceError | None:
    for offset, line in enumerate(row.lines):
        match = _MARKER_RUN.search(line)
        if match is None:
            continue
        invalid = bytes(ord(char) - _MARKER_BASE for char in match.group())
        return SourceError(
            position=f"{settings.path}:{row.line}",
            code="csv_encoding",
            message=(
                f"line {row.line + offset}, column {match.start() + 1}: bytes "
                f"{invalid.hex(' ')} are invalid in encoding {settings.encoding!r}, so "
                "no record was made of this row; set `encoding` to the file's encoding "
                "(files saved by Excel on Windows are often 'cp1252')"
            ),
            raw=_raw_text(row.lines),
        )
    return None


def _replace_markers(text: str) -> str:
    return _MARKER_RUN.sub(lambda match: "\ufffd" * len(match.group()), text)


def _raw_text(lines: list[str]) -> str:
    raw = "".join(lines)
    if raw.endswith("\r\n"):
        raw = raw[:-2]
    elif raw.endswith(("\n", "\r")):
        raw = raw[:-1]
    return _replace_markers(raw)


def _is_blank(cells: list[str]) -> bool:
    return all(not cell.strip() for cell in cells)
