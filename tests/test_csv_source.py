"""Tests of the CSV source reader: dialects, encodings, headers and bad rows."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from compiler.plan import SystemPlan
from runtime.sources import csvfile
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)

FIXTURES = Path(__file__).resolve().parent / "data" / "files"
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


def _context(base_dir: Path) -> SourceContext:
    return SourceContext(base_dir=base_dir, now=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))


def _system(**settings: Any) -> SystemPlan:
    return SystemPlan(id="export", kind="csv", settings=settings)


def _read(base_dir: Path, **settings: Any) -> list[SourceRecord | SourceError]:
    return list(csvfile.read(_system(**settings), "rows", _context(base_dir)))


def _read_bytes(
    tmp_path: Path, content: bytes, **settings: Any
) -> list[SourceRecord | SourceError]:
    (tmp_path / "input.csv").write_bytes(content)
    return _read(tmp_path, path="input.csv", **settings)


def _records(items: list[SourceRecord | SourceError]) -> list[SourceRecord]:
    return [item for item in items if isinstance(item, SourceRecord)]


def _errors(items: list[SourceRecord | SourceError]) -> list[SourceError]:
    return [item for item in items if isinstance(item, SourceError)]


@pytest.mark.parametrize(
    ("delimiter", "content", "expected"),
    [
        (",", b"a,b\n1,2\n", [{"a": "1", "b": "2"}]),
        (";", b"a;b\n1,5;2\n", [{"a": "1,5", "b": "2"}]),
        ("\t", b"a\tb\n1 x\t2\n", [{"a": "1 x", "b": "2"}]),
        ("\\t", b"a\tb\n1\t2\n", [{"a": "1", "b": "2"}]),
        ("|", b"a|b\n1|2\n", [{"a": "1", "b": "2"}]),
        (
            "auto",
            b"a;b;c\n1;2;3\n4;5;6\n",
            [{"a": "1", "b": "2", "c": "3"}, {"a": "4", "b": "5", "c": "6"}],
        ),
        (
            "auto",
            b"a\tb\n1,5\t2\n3,5\t4\n",
            [{"a": "1,5", "b": "2"}, {"a": "3,5", "b": "4"}],
        ),
        (
            "auto",
            b'a,b\n"x, y",2\n"z",3\n',
            [{"a": "x, y", "b": "2"}, {"a": "z", "b": "3"}],
        ),
    ],
)
def test_csv_delimiter_settings(
    tmp_path: Path, delimiter: str, content: bytes, expected: list[dict[str, str]]
) -> None:
    items = _read_bytes(tmp_path, content, delimiter=delimiter)

    assert _errors(items) == []
    assert [record.data for record in _records(items)] == expected


@pytest.mark.parametrize(
    ("content", "settings", "expected"),
    [
        (b'a,b\n"say ""hi""",2\n', {}, {"a": 'say "hi"', "b": "2"}),
        (b'a,b\n"x, y","1,000"\n', {}, {"a": "x, y", "b": "1,000"}),
        (b'a,b\n"","x"\n1,\n', {}, {"a": "", "b": "x"}),
        (b"a,b\n'x, y',2\n", {"quotechar": "'"}, {"a": "x, y", "b": "2"}),
        (
            b'a\tb\n"x\t"y\n',
            {"delimiter": "\t", "quotechar": None},
            {"a": '"x', "b": '"y'},
        ),
        (b'a,b\n"x"y,2\n', {}, {"a": "xy", "b": "2"}),
    ],
)
def test_csv_quoting_cases(
    tmp_path: Path, content: bytes, settings: dict[str, Any], expected: dict[str, str]
) -> None:
    items = _read_bytes(tmp_path, content, **settings)

    assert _errors(items) == []
    assert _records(items)[0].data == expected


def test_csv_empty_quoted_cells_empty(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b'a,b,c\n"",,x\n')

    assert _records(items)[0].data == {"a": "", "b": "", "c": "x"}


@pytest.mark.parametrize(
    ("encoding", "content"),
    [
        ("utf-8", codecs.BOM_UTF8 + "név,ár\nÁrvíztűrő,€5\n".encode()),
        ("utf-8", "név,ár\nÁrvíztűrő,€5\n".encode()),
        ("UTF8", codecs.BOM_UTF8 + "név,ár\nÁrvíztűrő,€5\n".encode()),
        ("utf-8-sig", codecs.BOM_UTF8 + "név,ár\nÁrvíztűrő,€5\n".encode()),
        ("utf-8-sig", "név,ár\nÁrvíztűrő,€5\n".encode()),
        ("utf-16", "\ufeffnév,ár\nÁrvíztűrő,€5\n".encode("utf-16-le")),
        ("utf-16", "\ufeffnév,ár\nÁrvíztűrő,€5\n".encode("utf-16-be")),
        ("utf-16-le", "név,ár\nÁrvíztűrő,€5\n".encode("utf-16-le")),
        ("utf-16-le", "\ufeffnév,ár\nÁrvíztűrő,€5\n".encode("utf-16-le")),
        ("utf-16-be", "\ufeffnév,ár\r\nÁrvíztűrő,€5\r\n".encode("utf-16-be")),
    ],
)
def test_csv_utf_encodings_decode(
    tmp_path: Path, encoding: str, content: bytes
) -> None:
    items = _read_bytes(tmp_path, content, encoding=encoding)

    assert _errors(items) == []
    assert [record.data for record in _records(items)] == [
        {"név": "Árvíztűrő", "ár": "€5"}
    ]


@pytest.mark.parametrize(
    ("encoding", "content", "expected"),
    [
        (
            "latin-1",
            "naïve,prix\nçà,5\n".encode("latin-1"),
            {"naïve": "çà", "prix": "5"},
        ),
        (
            "cp1252",
            "name,price\n„Ü“ – x,€5\n".encode("cp1252"),
            {"name": "„Ü“ – x", "price": "€5"},
        ),
        # latin-1 decodes every byte, so cp1252's euro byte 0x80 becomes a C1 control.
        ("latin-1", b"name,price\nx,\x805\n", {"name": "x", "price": "\x805"}),
    ],
)
def test_csv_single_byte_encodings_decode(
    tmp_path: Path, encoding: str, content: bytes, expected: dict[str, str]
) -> None:
    items = _read_bytes(tmp_path, content, encoding=encoding)

    assert _errors(items) == []
    assert _records(items)[0].data == expected


def test_csv_utf8_bom_removed_from_first_header(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, codecs.BOM_UTF8 + b'"User",Email\nlee,l@x.test\n')

    record = _records(items)[0]
    assert list(record.data) == ["User", "Email"]
    assert record.position == "input.csv:2"


def test_csv_utf8_bom_with_latin1_reported(tmp_path: Path) -> None:
    items = _read_bytes(
        tmp_path, codecs.BOM_UTF8 + b"id,name\n1,x\n", encoding="latin-1"
    )

    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_encoding"]
    assert "'utf-8'" in errors[0].message
    assert len(_records(items)) == 1


def test_csv_utf16_bom_as_utf8_raises(tmp_path: Path) -> None:
    content = "\ufeffa,b\n1,2\n".encode("utf-16-le")

    with pytest.raises(SourceUnavailable, match="utf-16"):
        _read_bytes(tmp_path, content)


def test_csv_invalid_bytes_keep_other_rows(tmp_path: Path) -> None:
    content = b"name,city\nAnna,Berlin\nJos\xe9,M\xe1laga\nLee,Oslo\n"

    items = _read_bytes(tmp_path, content)

    assert [record.data["name"] for record in _records(items)] == ["Anna", "Lee"]
    errors = _errors(items)
    assert len(errors) == 1
    assert errors[0].code == "csv_encoding"
    assert errors[0].position == "input.csv:3"
    assert "line 3, column 4" in errors[0].message
    assert "e9" in errors[0].message
    assert "`encoding`" in errors[0].message
    assert errors[0].raw == "Jos\ufffd,M\ufffdlaga"


def test_csv_invalid_bytes_in_continuation_line(tmp_path: Path) -> None:
    content = b'id,note\n1,"first\nsecond \xff"\n2,ok\n'

    items = _read_bytes(tmp_path, content)

    errors = _errors(items)
    assert len(errors) == 1
    assert errors[0].position == "input.csv:2"
    assert "line 3, column 8" in errors[0].message
    assert [record.data for record in _records(items)] == [{"id": "2", "note": "ok"}]


def test_csv_invalid_cp1252_bytes_reported(tmp_path: Path) -> None:
    # 0x81 is one of the five bytes cp1252 leaves undefined.
    items = _read_bytes(tmp_path, b"a,b\n\x81,1\nx,2\n", encoding="cp1252")

    assert [error.code for error in _errors(items)] == ["csv_encoding"]
    assert [record.data for record in _records(items)] == [{"a": "x", "b": "2"}]


def test_csv_invalid_bytes_in_header(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b"na\xefve,b\n1,2\n")

    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_encoding"]
    assert "line 1" in errors[0].message
    assert [record.data for record in _records(items)] == [
        {"na\ufffdve": "1", "b": "2"}
    ]


def test_csv_header_row_skips_rows_above(tmp_path: Path) -> None:
    content = b"Report,,\nexported 2024-05-01,,\nid,name,amount\n1,Acme,10\n"

    items = _read_bytes(tmp_path, content, header_row=3)

    assert _errors(items) == []
    records = _records(items)
    assert [record.data for record in records] == [
        {"id": "1", "name": "Acme", "amount": "10"}
    ]
    assert records[0].position == "input.csv:4"


def test_csv_header_row_counts_spreadsheet_rows() -> None:
    # Rows 1-3 hold a title, a two-line quoted cell and a row of empty cells, so
    # the header is row 4 but line 5.
    items = _read(FIXTURES, path="report_with_title.csv", header_row=4)

    assert _errors(items) == []
    records = _records(items)
    assert [record.data for record in records] == [
        {"id": "1", "name": "Acme", "notes": "line one\nline two"},
        {"id": "2", "name": "Beta, Inc.", "notes": ""},
    ]
    assert [record.position for record in records] == [
        "report_with_title.csv:6",
        "report_with_title.csv:8",
    ]


@pytest.mark.parametrize(
    ("content", "header_row", "expected_text"),
    [
        (b"", 1, "only 0 rows"),
        (b"a,b\n1,2\n", 5, "only 2 rows"),
        (b"\na,b\n1,2\n", 1, "is blank"),
        (b"title\n , \na,b\n", 2, "is blank"),
    ],
)
def test_csv_missing_header_reported(
    tmp_path: Path, content: bytes, header_row: int, expected_text: str
) -> None:
    items = _read_bytes(tmp_path, content, header_row=header_row)

    assert _records(items) == []
    assert [error.code for error in items] == ["csv_header"]
    assert expected_text in items[0].message
    assert "header_row" in items[0].message


@pytest.mark.parametrize(
    ("header_line", "expected_names", "renamed"),
    [
        (b"a,,c", ["a", "column_2", "c"], ["column_2"]),
        (b"a,b,", ["a", "b", "column_3"], ["column_3"]),
        (b"a, ,c", ["a", "column_2", "c"], ["column_2"]),
        (b"a,a,a", ["a", "a_2", "a_3"], ["a_2", "a_3"]),
        (b"a,a,a_2", ["a", "a_3", "a_2"], ["a_3"]),
        (b"column_2,,x", ["column_2", "column_2_2", "x"], ["column_2_2"]),
        (b",b,", ["column_1", "b", "column_3"], ["column_1", "column_3"]),
        (b"Name,name,NAME", ["Name", "name", "NAME"], []),
    ],
)
def test_csv_blank_and_duplicate_headers(
    tmp_path: Path, header_line: bytes, expected_names: list[str], renamed: list[str]
) -> None:
    items = _read_bytes(tmp_path, header_line + b"\n1,2,3\n")

    records = _records(items)
    assert len(records) == 1
    assert list(records[0].data) == expected_names
    assert list(records[0].data.values()) == ["1", "2", "3"]
    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_header"] * len(renamed)
    assert [error.field for error in errors] == renamed
    assert all(error.position == "input.csv:1" for error in errors)


def test_csv_duplicate_header_message_names_columns(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b"id,amount,amount\n1,2,3\n4,5,6\n")

    errors = _errors(items)
    assert len(errors) == 1
    assert "'amount'" in errors[0].message
    assert "column 3" in errors[0].message
    assert "'amount_2'" in errors[0].message
    assert len(_records(items)) == 2


def test_csv_multiline_cells_positions(tmp_path: Path) -> None:
    content = b'id,note\r\n1,"a\r\nb"\r\n2,"x\ny\n\nz"\r\n3,plain\r\n'

    records = _records(_read_bytes(tmp_path, content))

    assert [record.data["note"] for record in records] == [
        "a\r\nb",
        "x\ny\n\nz",
        "plain",
    ]
    assert [record.position for record in records] == [
        "input.csv:2",
        "input.csv:4",
        "input.csv:8",
    ]


def test_csv_positions_count_skipped_blank_lines(tmp_path: Path) -> None:
    content = b"id\n\n1\n   \n\n2\n,\n"

    records = _records(_read_bytes(tmp_path, content))

    assert [(record.data["id"], record.position) for record in records] == [
        ("1", "input.csv:3"),
        ("2", "input.csv:6"),
    ]


def test_csv_blank_lines_kept_when_not_skipped(tmp_path: Path) -> None:
    content = b"a,b\n1,2\n\n,\n3,4\n"

    records = _records(_read_bytes(tmp_path, content, skip_blank_lines=False))

    assert [record.data for record in records] == [
        {"a": "1", "b": "2"},
        {"a": "", "b": ""},
        {"a": "", "b": ""},
        {"a": "3", "b": "4"},
    ]


def test_csv_short_row_reported_not_filled(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b"a,b,c\n1\n1,2,3\n1,2\n")

    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_missing_cells",
                                                "csv_missing_cells"]
    assert [error.position.rsplit(":", 1)[1] for error in errors] == ["2", "4"]
    assert errors[0].raw == "1"
    assert "'b', 'c' would be empty" in errors[0].message
    assert [record.data for record in _records(items)] == [
        {"a": "1", "b": "2", "c": "3"},
    ]


def test_csv_long_row_reported_not_truncated(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b"name,amount\nAcme, Inc.,100\nBeta,200\n")

    errors = _errors(items)
    assert len(errors) == 1
    assert errors[0].code == "csv_extra_cells"
    assert errors[0].position == "input.csv:2"
    assert errors[0].raw == "Acme, Inc.,100"
    assert "'100'" in errors[0].message
    assert [record.data for record in _records(items)] == [
        {"name": "Beta", "amount": "200"}
    ]


def test_csv_long_multiline_row_raw(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b'a,b\n1,"x\ny",extra\n')

    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_extra_cells"]
    assert errors[0].raw == '1,"x\ny",extra'


def test_csv_trailing_empty_cells_dropped(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b"a,b\n1,2,\n3,4,,\n")

    assert _errors(items) == []
    assert [record.data for record in _records(items)] == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": "4"},
    ]


def test_csv_unterminated_quote_reported(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b'a,b\n1,2\n"open,3\n4,5\n')

    assert [record.data for record in _records(items)] == [{"a": "1", "b": "2"}]
    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_invalid"]
    assert errors[0].position == "input.csv:3"
    assert errors[0].raw == '"open,3\n4,5'


def test_csv_last_line_without_newline_read(tmp_path: Path) -> None:
    items = _read_bytes(tmp_path, b'a,b\n1,"2"')

    assert _errors(items) == []
    assert [record.data for record in _records(items)] == [{"a": "1", "b": "2"}]


def test_csv_oversized_cell_reported_then_continues(tmp_path: Path) -> None:
    too_long = b"x" * (csv.field_size_limit() + 10)
    content = b"a,b\n1,2\n" + too_long + b",3\n4,5\n"

    items = _read_bytes(tmp_path, content)

    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_invalid"]
    assert errors[0].position == "input.csv:3"
    assert "field larger than field limit" in errors[0].message
    assert [record.data for record in _records(items)] == [
        {"a": "1", "b": "2"},
        {"a": "4", "b": "5"},
    ]


def test_csv_cp1252_semicolon_fixture() -> None:
    items = _read(
        FIXTURES, path="deals_cp1252_semicolon.csv", delimiter=";", encoding="cp1252"
    )

    assert _errors(items) == []
    assert [record.data for record in _records(items)] == [
        {"Kunde": "Müller GmbH", "Betrag": "1.234,50", "Notiz": "Größe „L“ – €"},
        {"Kunde": "Café; Bar", "Betrag": "", "Notiz": "Straße"},
    ]


def test_csv_cp1252_fixture_as_utf8() -> None:
    items = _read(FIXTURES, path="deals_cp1252_semicolon.csv", delimiter=";")

    errors = _errors(items)
    assert [error.code for error in errors] == ["csv_encoding", "csv_encoding"]
    assert [error.position for error in errors] == [
        "deals_cp1252_semicolon.csv:2",
        "deals_cp1252_semicolon.csv:3",
    ]
    assert _records(items) == []


def test_csv_utf16_tab_fixture() -> None:
    items = _read(
        FIXTURES, path="timesheet_utf16_tab.csv", delimiter="auto", encoding="utf-16"
    )

    assert _errors(items) == []
    assert [record.data for record in _records(items)] == [
        {"Name": "Zoë", "Hours": "7.5", "Note": "日本語"},
        {"Name": "Tab\tinside", "Hours": "1", "Note": 'quoted "x"'},
    ]


def test_csv_absolute_path_ignores_base_dir(tmp_path: Path) -> None:
    target = tmp_path / "abs.csv"
    target.write_bytes(b"a\n1\n")

    items = _read(Path("/nonexistent-base"), path=str(target))

    assert [record.data for record in _records(items)] == [{"a": "1"}]


def test_csv_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable) as raised:
        _read(tmp_path, path="data/missing.csv")

    message = str(raised.value)
    assert "'data/missing.csv'" in message
    assert "`path`" in message
    assert "not found" in message


def test_csv_directory_path_raises(tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()

    with pytest.raises(SourceUnavailable, match="is not a file"):
        _read(tmp_path, path="folder.csv")


@pytest.mark.parametrize(
    ("settings", "setting_name"),
    [
        ({}, "`path`"),
        ({"path": ""}, "`path`"),
        ({"path": "input.csv", "delimiter": ",,"}, "`delimiter`"),
        ({"path": "input.csv", "delimiter": "\n"}, "`delimiter`"),
        ({"path": "input.csv", "delimiter": 5}, "`delimiter`"),
        ({"path": "input.csv", "delimiter": '"'}, "`quotechar`"),
        ({"path": "input.csv", "quotechar": "ab"}, "`quotechar`"),
        ({"path": "input.csv", "encoding": "klingon-8"}, "`encoding`"),
        ({"path": "input.csv", "encoding": "rot13"}, "`encoding`"),
        ({"path": "input.csv", "encoding": 8}, "`encoding`"),
        ({"path": "input.csv", "header_row": 0}, "`header_row`"),
        ({"path": "input.csv", "header_row": "2"}, "`header_row`"),
        ({"path": "input.csv", "header_row": True}, "`header_row`"),
        ({"path": "input.csv", "skip_blank_lines": "no"}, "`skip_blank_lines`"),
    ],
)
def test_csv_invalid_settings_raise(
    tmp_path: Path, settings: dict[str, Any], setting_name: str
) -> None:
    (tmp_path / "input.csv").write_bytes(b"a\n1\n")

    with pytest.raises(SourceUnavailable) as raised:
        _read(tmp_path, **settings)

    assert setting_name in str(raised.value)


def test_csv_unknown_stream_raises(tmp_path: Path) -> None:
    (tmp_path / "input.csv").write_bytes(b"a\n1\n")
    reader = csvfile.read(_system(path="input.csv"), "records", _context(tmp_path))

    with pytest.raises(SourceUnavailable, match="'rows'"):
        next(reader)


def test_csv_auto_delimiter_undetectable_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="`delimiter`"):
        _read_bytes(tmp_path, b"onlyone\nvalue\n", delimiter="auto")


def test_csv_auto_delimiter_cut_sample(tmp_path: Path) -> None:
    row = "é;" * 20 + "x\n"
    rows_needed = csvfile.SNIFF_BYTES // len(row.encode()) + 50
    header = ";".join(f"h{number}" for number in range(21)) + "\n"
    content = (header + row * rows_needed).encode()

    items = _read_bytes(tmp_path, content, delimiter="auto")

    assert _errors(items) == []
    assert len(_records(items)) == rows_needed


def test_csv_reader_streams_file(tmp_path: Path) -> None:
    # The last row is rewritten after the first record arrives. A reader that
    # loaded the whole file up front would still yield the old value.
    target = tmp_path / "input.csv"
    target.write_bytes(b"a\n" + b"2\n" * 500_000)
    reader = csvfile.read(_system(path="input.csv"), "rows", _context(tmp_path))

    first = next(reader)
    with open(target, "r+b") as handle:
        handle.seek(-2, io.SEEK_END)
        handle.write(b"9\n")
    rest = list(reader)

    assert isinstance(first, SourceRecord)
    assert first.data == {"a": "2"}
    assert len(rest) == 499_999
    assert rest[-1].data == {"a": "9"}
    assert rest[-2].data == {"a": "2"}


# Real exports written by other tools. Each is read with the reader and compared
# with an independent parse of the whole decoded text.

_REAL_CSV_FILES = [
    "dataloader/src/main/resources/samples/data/opportunityData.csv",
    "solidtime/resources/testfiles/toggl_time_entries_import_test_1.csv",
    "solidtime/resources/testfiles/toggl_time_entries_import_test_2.csv",
    "solidtime/resources/testfiles/clockify_time_entries_import_test_1.csv",
]


def _require_realdata() -> None:
    if not REALDATA.is_dir():
        pytest.skip(
            f"real data folder {REALDATA} is absent; these files are not in the repo"
        )


def _independent_parse(file_path: Path) -> tuple[list[str], list[list[str]]]:
    text = file_path.read_bytes().decode("utf-8")
    text = text.removeprefix("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    return rows[0], rows[1:]


def _read_real(relative: str) -> list[SourceRecord | SourceError]:
    # Every file is UTF-8, comma-separated and quoted with '"'. The Toggl files
    # start with a byte-order mark, which the default encoding removes.
    return _read(REALDATA, path=relative)


def test_csv_real_solidtime_files_are_present() -> None:
    _require_realdata()
    found = sorted(path.name for path in (REALDATA / "solidtime").rglob("*.csv"))

    assert found == sorted(Path(name).name for name in _REAL_CSV_FILES[1:])


@pytest.mark.parametrize("relative", _REAL_CSV_FILES)
def test_csv_real_file_read_without_loss(relative: str) -> None:
    _require_realdata()
    header, rows = _independent_parse(REALDATA / relative)

    items = _read_real(relative)

    assert _errors(items) == []
    records = _records(items)
    assert len(records) == len(rows)
    assert len(records) > 0
    for record, row in zip(records, rows, strict=True):
        assert list(record.data) == header
        assert list(record.data.values()) == row
        assert all(isinstance(value, str) for value in record.data.values())


@pytest.mark.parametrize("relative", _REAL_CSV_FILES)
def test_csv_real_file_positions_match_lines(relative: str) -> None:
    _require_realdata()
    lines = (REALDATA / relative).read_text(encoding="utf-8-sig").splitlines()

    records = _records(_read_real(relative))

    for record in records:
        path, line_number = record.position.rsplit(":", 1)
        assert path == relative
        row_from_line = next(csv.reader([lines[int(line_number) - 1]]))
        assert row_from_line == list(record.data.values())


def test_csv_real_toggl_bom_removed() -> None:
    _require_realdata()
    for name in _REAL_CSV_FILES[1:3]:
        raw = (REALDATA / name).read_bytes()
        assert raw.startswith(codecs.BOM_UTF8)

        records = _records(_read_real(name))

        first_header = next(iter(records[0].data))
        assert first_header == "User"


def test_csv_real_toggl_special_characters_intact() -> None:
    _require_realdata()
    expected = (
        r'\\ 🔥 Special characters  """`!@#$%^&*()_+\-=\[\]{};'
        + "':\""
        + r"\\|,.''<>\/?~ "
        + "\\\\\\"
    )

    records = _records(_read_real(_REAL_CSV_FILES[2]))

    assert len(records) == 1
    assert records[0].data["Description"] == expected
    assert records[0].data["Tags"] == ""


def test_csv_real_toggl_commas_empty_amount() -> None:
    _require_realdata()

    records = _records(_read_real(_REAL_CSV_FILES[1]))

    assert records[0].data["Tags"] == "Development, Backend"
    assert records[0].data["Amount (EUR)"] == ""
    assert records[0].data["Client"] == ""
    assert records[1].data["Amount (EUR)"] == "111.11"
    assert "Amount (EUR)" in records[0].data


def test_csv_real_clockify_times_text() -> None:
    _require_realdata()

    records = _records(_read_real(_REAL_CSV_FILES[3]))

    assert [record.data["Start Time"] for record in records] == [
        "10:23:52 AM",
        "10:23 AM",
    ]
    assert [record.data["Duration (h)"] for record in records] == [
        "00:00:00",
        "01:00:01",
    ]
    assert records[0].data["Tags"] == "Development, Backend"
    assert records[0].data["Client"] == ""


def test_csv_real_opportunity_names_and_amounts() -> None:
    _require_realdata()

    records = _records(_read_real(_REAL_CSV_FILES[0]))

    assert len(records) == 38
    assert all(len(record.data) == 31 for record in records)
    names = [record.data["NAME"] for record in records]
    assert "Acme - 1,200 Widgets" in names
    assert names.count("Acme - 1,200 Widgets") == 4
    amounts = [record.data["AMOUNT"] for record in records]
    assert amounts.count("") == 5
    assert amounts[0] == "500000.0"
