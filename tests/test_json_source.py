"""Tests of the JSON and NDJSON source readers."""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import io
import json
from pathlib import Path
from typing import Any

import pytest

from compiler.plan import SystemPlan
from runtime.sources import jsonfile
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)

FIXTURES = Path(__file__).resolve().parent / "data" / "files"


def _context(base_dir: Path) -> SourceContext:
    return SourceContext(base_dir=base_dir, now=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))


def _read_json(base_dir: Path, **settings: Any) -> list[SourceRecord | SourceError]:
    system = SystemPlan(id="crm", kind="json", settings=settings)
    return list(jsonfile.read(system, "records", _context(base_dir)))


def _read_ndjson(base_dir: Path, **settings: Any) -> list[SourceRecord | SourceError]:
    system = SystemPlan(id="events", kind="ndjson", settings=settings)
    return list(jsonfile.read_ndjson(system, "records", _context(base_dir)))


def _write(tmp_path: Path, name: str, content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    (tmp_path / name).write_bytes(data)
    return name


def _records(items: list[SourceRecord | SourceError]) -> list[SourceRecord]:
    return [item for item in items if isinstance(item, SourceRecord)]


def _errors(items: list[SourceRecord | SourceError]) -> list[SourceError]:
    return [item for item in items if isinstance(item, SourceError)]


def test_json_fixture_record_path_items() -> None:
    items = _read_json(FIXTURES, path="deals.json", record_path="data.items")

    records = _records(items)
    assert [record.data["id"] for record in records] == [101, 102, 104]
    assert [record.position for record in records] == [
        "deals.json:$.data.items[0]",
        "deals.json:$.data.items[1]",
        "deals.json:$.data.items[3]",
    ]
    assert records[0].data["name"] == "Acme \u2013 renewal"
    assert records[1].data["owner"] == {"email": "lee@example.test"}
    assert records[1].data["amount"] is None


def test_json_fixture_numbers_stay_exact() -> None:
    records = _records(
        _read_json(FIXTURES, path="deals.json", record_path="data.items")
    )

    assert records[0].data["amount"] == decimal.Decimal("1200.50")
    assert str(records[0].data["amount"]) == "1200.50"
    assert str(records[0].data["probability"]) == "0.333333333333333333"
    assert str(records[2].data["amount"]) == "90071992547409930.01"
    assert type(records[0].data["id"]) is int


def test_json_fixture_non_object_item_reported() -> None:
    items = _read_json(FIXTURES, path="deals.json", record_path="data.items")

    errors = _errors(items)
    assert len(errors) == 1
    assert errors[0].code == "json_not_object"
    assert errors[0].position == "deals.json:$.data.items[2]"
    assert errors[0].raw == '"not a deal"'
    assert "a string" in errors[0].message


@pytest.mark.parametrize(
    ("document", "record_path", "expected_positions"),
    [
        ('[{"a": 1}, {"a": 2}]', None, ["$[0]", "$[1]"]),
        ('[{"a": 1}, {"a": 2}]', "", ["$[0]", "$[1]"]),
        ('{"a": 1}', None, ["$"]),
        ('{"data": {"a": 1}}', "data", ["$.data"]),
        (
            '{"results": [{"rows": [{"a": 1}]}]}',
            "results.0.rows",
            ["$.results[0].rows[0]"],
        ),
        ('[[{"a": 1}], [{"a": 2}]]', "1", ["$[1][0]"]),
        ('{"0": [{"a": 1}]}', "0", ["$['0'][0]"]),
        ('{"my items": [{"a": 1}]}', "my items", ["$['my items'][0]"]),
        ('{"it\'s": [{"a": 1}]}', "it's", ["$['it\\'s'][0]"]),
        ('{"data": []}', "data", []),
        ("[]", None, []),
    ],
)
def test_json_record_path_cases(
    tmp_path: Path,
    document: str,
    record_path: str | None,
    expected_positions: list[str],
) -> None:
    path = _write(tmp_path, "doc.json", document)
    settings: dict[str, Any] = {"path": path}
    if record_path is not None:
        settings["record_path"] = record_path

    items = _read_json(tmp_path, **settings)

    assert _errors(items) == []
    assert [record.position for record in _records(items)] == [
        f"doc.json:{position}" for position in expected_positions
    ]


@pytest.mark.parametrize(
    ("document", "record_path", "expected_texts"),
    [
        (
            '{"data": {"items": [], "paging": {}}}',
            "data.itemz",
            ["'itemz'", "$.data", "'items', 'paging'", "did you mean 'items'?"],
        ),
        ('{"results": []}', "deals", ["'deals'", "'results'", "at $;"]),
        ('{"data": {}}', "data.items", ["the object is empty"]),
        ('{"data": [{"a": 1}]}', "data.3", ["'3'", "1 items", "from 0 to 0"]),
        ('{"data": [{"a": 1}]}', "data.items", ["'items'", "list at $.data"]),
        ('{"data": []}', "data.0", ["the list at $.data is empty"]),
        ('{"data": "text"}', "data.items", ["$.data is a string", "'items'"]),
        ('{"data": null}', "data.items", ["$.data is null"]),
    ],
)
def test_json_record_path_not_found(
    tmp_path: Path, document: str, record_path: str, expected_texts: list[str]
) -> None:
    path = _write(tmp_path, "doc.json", document)

    items = _read_json(tmp_path, path=path, record_path=record_path)

    assert len(items) == 1
    error = items[0]
    assert isinstance(error, SourceError)
    assert error.code == "json_record_path"
    assert f"{record_path!r}" in error.message
    for text in expected_texts:
        assert text in error.message


def test_json_record_path_many_keys(tmp_path: Path) -> None:
    document = json.dumps({f"key{number:02}": number for number in range(30)})
    path = _write(tmp_path, "doc.json", document)

    items = _read_json(tmp_path, path=path, record_path="key99")

    message = items[0].message
    assert "'key19'" in message
    assert "'key20'" not in message
    assert "and 10 more" in message


@pytest.mark.parametrize(
    ("document", "record_path", "expected_type"),
    [
        ('"just text"', None, "a string"),
        ("42", None, "a number"),
        ("null", None, "null"),
        ('{"total": 3}', "total", "a number"),
        ('{"ok": true}', "ok", "a boolean"),
    ],
)
def test_json_target_not_list_or_object(
    tmp_path: Path, document: str, record_path: str | None, expected_type: str
) -> None:
    path = _write(tmp_path, "doc.json", document)
    settings: dict[str, Any] = {"path": path}
    if record_path is not None:
        settings["record_path"] = record_path

    items = _read_json(tmp_path, **settings)

    assert len(items) == 1
    assert items[0].code == "json_not_object"
    assert expected_type in items[0].message
    assert "`record_path`" in items[0].message


def test_json_non_object_items_keep_raw(tmp_path: Path) -> None:
    document = '[{"a": 1}, 1.50, [2.0, {"b": 1e400}], null, true, {"a": 2}]'
    path = _write(tmp_path, "doc.json", document)

    items = _read_json(tmp_path, path=path)

    assert [record.data for record in _records(items)] == [{"a": 1}, {"a": 2}]
    errors = _errors(items)
    assert [error.raw for error in errors] == [
        "1.50",
        '[2.0, {"b": 1E+400}]',
        "null",
        "true",
    ]
    assert [error.position for error in errors] == [
        "doc.json:$[1]",
        "doc.json:$[2]",
        "doc.json:$[3]",
        "doc.json:$[4]",
    ]


def test_json_non_finite_constants_become_decimal(tmp_path: Path) -> None:
    path = _write(tmp_path, "doc.json", '[{"a": NaN, "b": -Infinity, "c": 1e400}]')

    record = _records(_read_json(tmp_path, path=path))[0]

    assert isinstance(record.data["a"], decimal.Decimal)
    assert record.data["a"].is_nan()
    assert record.data["b"] == decimal.Decimal("-Infinity")
    assert record.data["c"] == decimal.Decimal("1e400")


@pytest.mark.parametrize(
    ("document", "line", "column"),
    [
        ('[{"a": 1},\n {"a": 2,}\n]', 2, 10),
        ('{"a": 1', 1, 8),
        ("[1] [2]", 1, 5),
    ],
)
def test_json_invalid_document_reported(
    tmp_path: Path, document: str, line: int, column: int
) -> None:
    path = _write(tmp_path, "doc.json", document)

    items = _read_json(tmp_path, path=path)

    assert len(items) == 1
    error = items[0]
    assert isinstance(error, SourceError)
    assert error.code == "json_invalid"
    assert error.position == f"doc.json:{line}:{column}"
    assert f"line {line}, column {column}" in error.message


def test_json_cut_off_string_message(tmp_path: Path) -> None:
    document = '{"clients": [\n  {"code": "ACM-001", "name": "Acme Ltd"},\n'
    document += '  {"code": "GLX-002", "name": "Glob'
    path = _write(tmp_path, "doc.json", document)

    items = _read_json(tmp_path, path=path)

    assert [item.code for item in items] == ["json_invalid"]
    assert items[0].position == "doc.json:3:31"
    assert items[0].message == (
        "invalid JSON at line 3, column 31: the string that starts here has no "
        "closing quote before the end of the file, so the file is probably cut "
        "off; no records were read; copy or export the whole file again"
    )


@pytest.mark.parametrize("document", ["", "\n  \n", "\ufeff"])
def test_json_empty_file_message(tmp_path: Path, document: str) -> None:
    path = _write(tmp_path, "doc.json", document)

    items = _read_json(tmp_path, path=path)

    assert [item.code for item in items] == ["json_invalid"]
    assert items[0].scope == "source"
    assert items[0].position == "doc.json"
    assert items[0].message == (
        "the file is empty, so no records were read; check that the export "
        "finished and that `path` names the right file"
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('[{"a": 1},', "the file ends before the JSON value is complete"),
        ('[{"a": 1},]', "a comma before ']' is not allowed in JSON"),
        ('{"a": 1,}', "a comma before '}' is not allowed in JSON"),
        ('{"a" 1}', "a ':' is expected after the property name"),
        ('["a\nb"]', "a string contains a control character"),
        ('["\\q"]', "a string contains an invalid backslash escape"),
        ('{"a": ]', "a JSON value is expected here"),
    ],
)
def test_json_invalid_messages_read_well(
    tmp_path: Path, document: str, problem: str
) -> None:
    path = _write(tmp_path, "doc.json", document)

    message = _read_json(tmp_path, path=path)[0].message

    assert problem in message
    assert " at;" not in message
    assert "Expecting" not in message


def test_ndjson_cut_off_line_message(tmp_path: Path) -> None:
    path = _write(tmp_path, "lines.ndjson", '{"id": 1}\n{"id": 2, "name": "Ac')

    errors = _errors(_read_ndjson(tmp_path, path=path))

    assert [error.code for error in errors] == ["ndjson_invalid"]
    assert errors[0].message == (
        "line 2 is not valid JSON at column 19: the string that starts here has no "
        "closing quote before the end of the line, so the line is probably cut "
        "off; the other lines are still read"
    )


def test_json_ndjson_file_suggests_kind(tmp_path: Path) -> None:
    path = _write(tmp_path, "doc.json", '{"a": 1}\n{"a": 2}\n')

    items = _read_json(tmp_path, path=path)

    assert [item.code for item in items] == ["json_invalid"]
    assert "'ndjson'" in items[0].message


def test_json_deep_nesting_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, "doc.json", "[" * 100_000 + "]" * 100_000)

    items = _read_json(tmp_path, path=path)

    assert [item.code for item in items] == ["json_invalid"]
    assert "nested too deeply" in items[0].message


@pytest.mark.parametrize(
    ("encoding", "content"),
    [
        ("utf-8", codecs.BOM_UTF8 + '[{"név": "Árvíz"}]'.encode()),
        ("utf-8", '[{"név": "Árvíz"}]'.encode()),
        ("utf-8-sig", codecs.BOM_UTF8 + '[{"név": "Árvíz"}]'.encode()),
        ("latin-1", '[{"név": "Árvíz"}]'.encode("latin-1")),
        ("utf-16", '[{"név": "Árvíz"}]'.encode("utf-16")),
        ("utf-16-le", '\ufeff[{"név": "Árvíz"}]'.encode("utf-16-le")),
    ],
)
def test_json_encodings_decode(tmp_path: Path, encoding: str, content: bytes) -> None:
    path = _write(tmp_path, "doc.json", content)

    items = _read_json(tmp_path, path=path, encoding=encoding)

    assert [record.data for record in _records(items)] == [{"név": "Árvíz"}]
    assert _errors(items) == []


def test_json_invalid_bytes_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, "doc.json", codecs.BOM_UTF8 + b'[{"a": "caf\xe9"}]')

    items = _read_json(tmp_path, path=path)

    assert len(items) == 1
    assert items[0].code == "json_encoding"
    assert "offset 14 (0xe9)" in items[0].message
    assert "`encoding`" in items[0].message


def test_json_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable) as raised:
        _read_json(tmp_path, path="exports/deals.json")

    assert "'exports/deals.json'" in str(raised.value)
    assert "`path`" in str(raised.value)


@pytest.mark.parametrize(
    ("settings", "setting_name"),
    [
        ({}, "`path`"),
        ({"path": 3}, "`path`"),
        ({"path": "doc.json", "encoding": "no-such-codec"}, "`encoding`"),
        ({"path": "doc.json", "encoding": "hex"}, "`encoding`"),
        ({"path": "doc.json", "encoding": None}, "`encoding`"),
        ({"path": "doc.json", "record_path": "data..items"}, "`record_path`"),
        ({"path": "doc.json", "record_path": ["data"]}, "`record_path`"),
    ],
)
def test_json_invalid_settings_raise(
    tmp_path: Path, settings: dict[str, Any], setting_name: str
) -> None:
    _write(tmp_path, "doc.json", "[]")

    with pytest.raises(SourceUnavailable) as raised:
        _read_json(tmp_path, **settings)

    assert setting_name in str(raised.value)


def test_json_unknown_stream_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "doc.json", "[]")
    system = SystemPlan(id="crm", kind="json", settings={"path": path})

    with pytest.raises(SourceUnavailable, match="'records'"):
        next(jsonfile.read(system, "rows", _context(tmp_path)))


def test_json_read_dispatches_ndjson_kind(tmp_path: Path) -> None:
    path = _write(tmp_path, "lines.ndjson", '{"a": 1}\n{"a": 2}\n')
    system = SystemPlan(id="events", kind="ndjson", settings={"path": path})

    items = list(jsonfile.read(system, "records", _context(tmp_path)))

    assert [record.position for record in _records(items)] == [
        "lines.ndjson:1",
        "lines.ndjson:2",
    ]


def test_ndjson_fixture_bad_line_in_middle() -> None:
    items = _read_ndjson(FIXTURES, path="events.ndjson")

    records = _records(items)
    assert [record.data["id"] for record in records] == ["e1", "e2", "e5"]
    assert [record.position for record in records] == [
        "events.ndjson:1",
        "events.ndjson:2",
        "events.ndjson:6",
    ]
    assert records[1].data["hours"] == decimal.Decimal("0.10")
    assert records[1].data["note"] == "café"
    errors = _errors(items)
    assert [(error.code, error.position) for error in errors] == [
        ("ndjson_invalid", "events.ndjson:4"),
        ("json_not_object", "events.ndjson:5"),
    ]
    assert errors[0].raw == '{"id": "e3", "hours": '
    assert "line 4" in errors[0].message
    assert errors[1].raw == '["e4"]'


@pytest.mark.parametrize(
    ("content", "expected_ids", "expected_errors"),
    [
        (b'{"id": 1}\r\n{"id": 2}\r\n', [1, 2], []),
        (b'{"id": 1}\n{"id": 2}', [1, 2], []),
        (b'\n\n  \n{"id": 1}\n\t\n', [1], []),
        (codecs.BOM_UTF8 + b'{"id": 1}\n', [1], []),
        (b'{"id": 1}\n{"id": \xff}\n{"id": 3}\n', [1, 3], [("ndjson_encoding", 2)]),
        (
            b'{"id": 1}\nnull\n"x"\n{"id": 4}\n',
            [1, 4],
            [("json_not_object", 2), ("json_not_object", 3)],
        ),
        (b'{"id": 1} {"id": 2}\n{"id": 3}\n', [3], [("ndjson_invalid", 1)]),
        (b'{"text": "a\\u2028b", "id": 1}\n', [1], []),
    ],
)
def test_ndjson_line_cases(
    tmp_path: Path,
    content: bytes,
    expected_ids: list[int],
    expected_errors: list[tuple[str, int]],
) -> None:
    path = _write(tmp_path, "lines.ndjson", content)

    items = _read_ndjson(tmp_path, path=path)

    assert [record.data["id"] for record in _records(items)] == expected_ids
    assert [
        (error.code, int(error.position.rsplit(":", 1)[1])) for error in _errors(items)
    ] == expected_errors


def test_ndjson_invalid_bytes_message(tmp_path: Path) -> None:
    path = _write(tmp_path, "lines.ndjson", b'{"a": 1}\n{"a": "caf\xe9"}\n')

    errors = _errors(_read_ndjson(tmp_path, path=path))

    assert len(errors) == 1
    assert "line 2, byte offset 10 in the line" in errors[0].message
    assert "e9" in errors[0].message
    assert errors[0].raw == '{"a": "caf\ufffd"}'


def test_ndjson_latin1_encoding(tmp_path: Path) -> None:
    path = _write(tmp_path, "lines.ndjson", '{"a": "café"}\n'.encode("latin-1"))

    items = _read_ndjson(tmp_path, path=path, encoding="latin-1")

    assert [record.data for record in _records(items)] == [{"a": "café"}]


def test_ndjson_utf16_encoding_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "lines.ndjson", '{"a": 1}\n'.encode("utf-16"))

    with pytest.raises(SourceUnavailable, match="`encoding`"):
        _read_ndjson(tmp_path, path=path, encoding="utf-16")


def test_ndjson_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="'missing.ndjson'"):
        _read_ndjson(tmp_path, path="missing.ndjson")


def test_ndjson_reader_streams_file(tmp_path: Path) -> None:
    # The last line is rewritten after the first record arrives. A reader that
    # loaded the whole file up front would still yield the old value.
    target = tmp_path / "lines.ndjson"
    target.write_bytes(b'{"n": 1}\n' * 200_000)
    system = SystemPlan(id="events", kind="ndjson", settings={"path": "lines.ndjson"})
    reader = jsonfile.read_ndjson(system, "records", _context(tmp_path))

    first = next(reader)
    with open(target, "r+b") as handle:
        handle.seek(-9, io.SEEK_END)
        handle.write(b'{"n": 9}\n')
    rest = list(reader)

    assert isinstance(first, SourceRecord)
    assert len(rest) == 199_999
    assert rest[-1].data == {"n": 9}
    assert rest[-2].data == {"n": 1}
