"""Tests of the spec file loader: values, positions and problems of YAML and JSON."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import compiler.loader
from compiler.loader import (
    MAX_DEPTH,
    MAX_NODES,
    LoadedFile,
    escape_pointer_token,
    load_bytes,
    load_file,
    resolve_plain_scalar,
)


def load_yaml(text: str | bytes) -> LoadedFile:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return load_bytes(raw, "spec.yaml", is_json=False)


def load_json(text: str | bytes) -> LoadedFile:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return load_bytes(raw, "spec.json", is_json=True)


def only_code(loaded: LoadedFile) -> str:
    assert len(loaded.diagnostics) == 1, [d.to_text() for d in loaded.diagnostics]
    return loaded.diagnostics[0].code


def where(loaded: LoadedFile) -> tuple[int, int]:
    diagnostic = loaded.diagnostics[0]
    return diagnostic.line, diagnostic.column


# --- positions -------------------------------------------------------------

YAML_SPEC = """\
version: 1
systems:
  crm:
    kind: csv
    columns: [id, "name"]
  report: {kind: sheets, spreadsheet: out.xlsx}
flows:
  - first
  -   second
  - {a: 1}
"""


def test_yaml_positions_of_values() -> None:
    loaded = load_yaml(YAML_SPEC)
    assert loaded.diagnostics == []
    assert loaded.positions[""] == (1, 1)
    assert loaded.positions["/version"] == (1, 10)
    assert loaded.positions["/systems"] == (3, 3)
    assert loaded.positions["/systems/crm"] == (4, 5)
    assert loaded.positions["/systems/crm/kind"] == (4, 11)
    assert loaded.positions["/systems/crm/columns"] == (5, 14)
    assert loaded.positions["/systems/crm/columns/0"] == (5, 15)
    assert loaded.positions["/systems/crm/columns/1"] == (5, 19)
    assert loaded.positions["/systems/report"] == (6, 11)
    assert loaded.positions["/systems/report/spreadsheet"] == (6, 39)
    assert loaded.positions["/flows/0"] == (8, 5)
    assert loaded.positions["/flows/1"] == (9, 7)
    assert loaded.positions["/flows/2/a"] == (10, 9)


def test_yaml_positions_of_keys() -> None:
    loaded = load_yaml(YAML_SPEC)
    assert loaded.key_positions["/version"] == (1, 1)
    assert loaded.key_positions["/systems"] == (2, 1)
    assert loaded.key_positions["/systems/crm"] == (3, 3)
    assert loaded.key_positions["/systems/crm/columns"] == (5, 5)
    assert loaded.key_positions["/systems/report"] == (6, 3)
    assert loaded.key_positions["/systems/report/kind"] == (6, 12)
    assert loaded.key_positions["/flows/2/a"] == (10, 6)
    assert "/flows/0" not in loaded.key_positions


def test_yaml_positions_block_scalar_and_comments() -> None:
    loaded = load_yaml("# heading\na: |\n  one\n  two\nb: >-\n  x\n  y\nc: 3  # note\n")
    assert loaded.data == {"a": "one\ntwo\n", "b": "x y", "c": 3}
    assert loaded.positions["/a"] == (2, 4)
    assert loaded.positions["/b"] == (5, 4)
    assert loaded.key_positions["/c"] == (8, 1)
    assert loaded.positions["/c"] == (8, 4)


def test_yaml_positions_with_crlf() -> None:
    loaded = load_yaml("a: 1\r\nb:\r\n  c: 2\r\n")
    assert loaded.data == {"a": 1, "b": {"c": 2}}
    assert loaded.key_positions["/b/c"] == (3, 3)
    assert loaded.positions["/b/c"] == (3, 6)


def test_yaml_columns_count_characters() -> None:
    loaded = load_yaml("name: \u00e9t\u00e9\nkey: {\u00e9: 1, b: 2}\n")
    assert loaded.positions["/key/b"] == (2, 16)
    assert loaded.key_positions["/key/b"] == (2, 13)


def test_pointer_tokens_escaped() -> None:
    loaded = load_yaml("a/b: 1\nc~d: {e: 2}\n")
    assert loaded.data == {"a/b": 1, "c~d": {"e": 2}}
    assert loaded.key_positions["/a~1b"] == (1, 1)
    assert loaded.positions["/c~0d/e"] == (2, 10)
    assert escape_pointer_token("x/y~z") == "x~1y~0z"


JSON_SPEC = """\
{
  "version": 1,
  "systems": {
    "crm": {"kind": "csv", "columns": ["id",
                                        "name"]}
  },
  "list": [ 1 ,2, {"x": null} ]
}
"""


def test_json_positions_of_values() -> None:
    loaded = load_json(JSON_SPEC)
    assert loaded.diagnostics == []
    assert loaded.positions[""] == (1, 1)
    assert loaded.positions["/version"] == (2, 14)
    assert loaded.positions["/systems"] == (3, 14)
    assert loaded.positions["/systems/crm"] == (4, 12)
    assert loaded.positions["/systems/crm/kind"] == (4, 21)
    assert loaded.positions["/systems/crm/columns/0"] == (4, 40)
    assert loaded.positions["/systems/crm/columns/1"] == (5, 41)
    assert loaded.positions["/list/0"] == (7, 13)
    assert loaded.positions["/list/1"] == (7, 16)
    assert loaded.positions["/list/2/x"] == (7, 25)


def test_json_positions_of_keys() -> None:
    loaded = load_json(JSON_SPEC)
    assert loaded.key_positions["/version"] == (2, 3)
    assert loaded.key_positions["/systems/crm"] == (4, 5)
    assert loaded.key_positions["/systems/crm/columns"] == (4, 28)
    assert loaded.key_positions["/list/2/x"] == (7, 20)


def test_json_columns_count_characters() -> None:
    loaded = load_json('{"\u00e9\u00e9": 1, "b": 2}')
    assert loaded.key_positions["/b"] == (1, 11)


def test_json_positions_with_crlf() -> None:
    loaded = load_json('{\r\n  "a": {\r\n    "b": true\r\n  }\r\n}\r\n')
    assert loaded.data == {"a": {"b": True}}
    assert loaded.key_positions["/a/b"] == (3, 5)
    assert loaded.positions["/a/b"] == (3, 10)


# --- YAML 1.2 scalars ------------------------------------------------------

@pytest.mark.parametrize("text", [
    "no", "No", "NO", "yes", "on", "off", "y", "n", "tRuE", "nULL", "1_000", "0b101",
    "1:30", "2024-01-01", "0x", ".inf_x", "1e", "+", ".", "-",
])
def test_plain_scalar_stays_string(text: str) -> None:
    assert resolve_plain_scalar(text) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("True", True), ("TRUE", True), ("false", False),
    ("FALSE", False), ("12", 12), ("-3", -3), ("+12", 12), ("012", 12), ("0x1F", 31),
    ("0o17", 15), ("1.5", 1.5), ("-0.5", -0.5), (".5", 0.5), ("1.", 1.0),
    ("1e3", 1000.0), ("1E-2", 0.01), ("~", None), ("null", None), ("Null", None),
    ("NULL", None), ("", None),
])
def test_plain_scalar_resolves(text: str, expected: object) -> None:
    value = resolve_plain_scalar(text)
    assert value == expected
    assert type(value) is type(expected)


def test_plain_scalar_infinity_and_nan() -> None:
    assert resolve_plain_scalar(".inf") == math.inf
    assert resolve_plain_scalar("-.Inf") == -math.inf
    assert math.isnan(resolve_plain_scalar(".NaN"))


def test_yaml_scalars_in_document() -> None:
    loaded = load_yaml("a: no\nb: on\nc: yes\nd: true\ne: 1.5\nf: 0x1F\ng: ~\nh:\n"
                       "i: 'true'\nj: \"12\"\nk: ! 12\nl: !!str 1.5\nm: !!int '7'\n")
    assert loaded.diagnostics == []
    assert loaded.data == {"a": "no", "b": "on", "c": "yes", "d": True, "e": 1.5,
                           "f": 31, "g": None, "h": None, "i": "true", "j": "12",
                           "k": "12", "l": "1.5", "m": 7}


def test_yaml_keys_keep_their_text() -> None:
    loaded = load_yaml("true: 1\n12: 2\n~: 3\n1.50: 4\n.inf: 5\nno: 6\n")
    assert loaded.diagnostics == []
    assert list(loaded.data) == ["true", "12", "~", "1.50", ".inf", "no"]


@pytest.mark.parametrize("text", ["a: .inf\n", "a: -.inf\n", "a: .nan\n", "a: 1e400\n",
                                  "a: !!float inf\n"])
def test_yaml_non_finite_number_rejected(text: str) -> None:
    loaded = load_yaml(text)
    assert only_code(loaded) == "E105"
    assert where(loaded) == (1, 4)
    assert "finite" in loaded.diagnostics[0].message
    assert loaded.data is None


def test_yaml_quoted_infinity_stays_string() -> None:
    assert load_yaml("a: '.inf'\n").data == {"a": ".inf"}


def test_yaml_huge_integer_rejected() -> None:
    loaded = load_yaml("a: " + "1" * 5000 + "\n")
    assert only_code(loaded) == "E105"
    assert "more than 100 characters" in loaded.diagnostics[0].message


def test_yaml_huge_tagged_integer_clipped() -> None:
    loaded = load_yaml("a: !!int " + "1" * 5000 + "\n")
    assert only_code(loaded) == "E003"
    assert len(loaded.diagnostics[0].message) < 100


def test_yaml_bad_tagged_value() -> None:
    loaded = load_yaml("a: !!bool yes\n")
    assert only_code(loaded) == "E003"
    assert where(loaded) == (1, 4)


# --- anchors and aliases -----------------------------------------------------

def test_alias_repeats_anchored_value() -> None:
    loaded = load_yaml("base: &b {kind: csv, path: a.csv}\ncopy: *b\nlist: [*b, *b]\n")
    assert loaded.diagnostics == []
    assert loaded.data["copy"] == {"kind": "csv", "path": "a.csv"}
    assert loaded.data["list"] == [loaded.data["base"], loaded.data["base"]]
    assert loaded.positions["/copy"] == (2, 7)
    assert loaded.positions["/list/1"] == (3, 12)


def test_alias_of_scalar() -> None:
    loaded = load_yaml("a: &n 12\nb: *n\nc: &s no\nd: *s\n")
    assert loaded.data == {"a": 12, "b": 12, "c": "no", "d": "no"}


def test_alias_unknown_anchor() -> None:
    loaded = load_yaml("a: *missing\n")
    assert only_code(loaded) == "E003"
    assert where(loaded) == (1, 4)
    assert "'missing'" in loaded.diagnostics[0].message


def test_alias_inside_its_own_anchor() -> None:
    loaded = load_yaml("a: &x\n  b: [*x]\n")
    assert only_code(loaded) == "E013"
    assert where(loaded) == (2, 7)


def test_alias_expansion_counted() -> None:
    lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    for level in range(1, 7):
        items = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{items}]")
    loaded = load_yaml("\n".join(lines) + "\n")
    assert only_code(loaded) == "E009"
    assert "aliases are expanded" in loaded.diagnostics[0].message


def test_merge_key_rejected() -> None:
    loaded = load_yaml("a: &a {x: 1}\nb:\n  <<: *a\n  y: 2\n")
    assert only_code(loaded) == "E013"
    assert where(loaded) == (3, 3)


# --- duplicates, documents, tags ---------------------------------------------

def test_yaml_duplicate_keeps_first() -> None:
    loaded = load_yaml("a:\n  x: 1\nb: 2\na:\n  x: [1, 2]\n")
    assert only_code(loaded) == "E005"
    assert where(loaded) == (4, 1)
    assert loaded.data == {"a": {"x": 1}, "b": 2}
    assert loaded.positions["/a/x"] == (2, 6)
    assert loaded.key_positions["/a"] == (1, 1)


def test_yaml_duplicate_nested_flow() -> None:
    loaded = load_yaml("a: {b: {c: 1, c: 2}}\n")
    assert only_code(loaded) == "E005"
    assert where(loaded) == (1, 15)
    assert "first defined at line 1, column 9" in loaded.diagnostics[0].message


def test_yaml_single_explicit_document() -> None:
    loaded = load_yaml("---\nversion: 1\n...\n")
    assert loaded.diagnostics == []
    assert loaded.data == {"version": 1}


def test_yaml_two_documents() -> None:
    loaded = load_yaml("---\nversion: 1\n---\nversion: 2\n")
    assert only_code(loaded) == "E012"
    assert where(loaded) == (3, 1)


@pytest.mark.parametrize(("text", "position"), [
    ("a: !!python/object/apply:os.system [ls]\n", (1, 4)),
    ("a: !Ref b\n", (1, 4)),
    ("a: !!set {x, y}\n", (1, 4)),
    ("a: !!omap [{x: 1}]\n", (1, 4)),
    ("!!binary a: 1\n", (1, 1)),
])
def test_yaml_unsupported_tag(text: str, position: tuple[int, int]) -> None:
    loaded = load_yaml(text)
    assert only_code(loaded) == "E013"
    assert where(loaded) == position


def test_yaml_standard_collection_tags_accepted() -> None:
    loaded = load_yaml("a: !!map {x: 1}\nb: !!seq [1]\n")
    assert loaded.diagnostics == []
    assert loaded.data == {"a": {"x": 1}, "b": [1]}


def test_yaml_complex_key_rejected() -> None:
    loaded = load_yaml("? {a: 1}\n: 2\n")
    assert only_code(loaded) == "E013"


# --- nesting and size ----------------------------------------------------------

def test_yaml_nesting_at_limit_allowed() -> None:
    depth = MAX_DEPTH - 1
    loaded = load_yaml("a: " + "[" * depth + "]" * depth + "\n")
    assert loaded.diagnostics == []


def test_yaml_nesting_over_limit() -> None:
    loaded = load_yaml("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    assert only_code(loaded) == "E008"
    assert where(loaded) == (1, 4 + MAX_DEPTH - 1)


@pytest.mark.parametrize("parser", ["CSafeLoader", "SafeLoader"])
def test_yaml_nesting_past_libyaml_limit(parser: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml stops at 1000 flow levels; the position must not depend on it."""
    if not hasattr(yaml, parser):
        pytest.skip(f"PyYAML is built without {parser}")
    monkeypatch.setattr(compiler.loader, "_YAML_LOADER", getattr(yaml, parser))
    loaded = load_yaml("version: 1\nx: " + "[" * 2000 + "]" * 2000 + "\n")
    assert only_code(loaded) == "E008"
    assert where(loaded) == (2, 4 + MAX_DEPTH - 1)
    assert loaded.data is None


def test_yaml_nesting_rebuild_keeps_nothing_partial(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A duplicate key before the deep part is reported once, not once per parse."""
    text = "a: 1\na: 2\nx: " + "[" * 2000 + "]" * 2000 + "\n"
    loaded = load_yaml(text)
    assert [d.code for d in loaded.diagnostics] == ["E005", "E008"]


def test_json_nesting_over_limit() -> None:
    loaded = load_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert only_code(loaded) == "E008"
    assert where(loaded) == (1, MAX_DEPTH + 1)


def test_node_limit() -> None:
    loaded = load_json("[" + "1," * MAX_NODES + "1]")
    assert only_code(loaded) == "E009"


def test_file_size_limit() -> None:
    loaded = load_yaml(b"# " + b"x" * (5 * 1024 * 1024))
    assert only_code(loaded) == "E009"
    assert where(loaded) == (1, 1)


# --- encodings and bytes ------------------------------------------------------

def test_bom_removed_in_yaml() -> None:
    loaded = load_yaml(b"\xef\xbb\xbfversion: 1\nb: 2\n")
    assert loaded.diagnostics == []
    assert loaded.data == {"version": 1, "b": 2}
    assert loaded.key_positions["/version"] == (1, 1)
    assert not loaded.text.startswith("\ufeff")


def test_bom_removed_in_json() -> None:
    loaded = load_json(b'\xef\xbb\xbf{"a": 1}')
    assert loaded.diagnostics == []
    assert loaded.data == {"a": 1}
    assert loaded.positions["/a"] == (1, 7)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_wide_encoding_reported(encoding: str) -> None:
    raw = "version: 1\n".encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    loaded = load_yaml(raw)
    assert only_code(loaded) == "E002"
    assert "UTF-" in loaded.diagnostics[0].message


def test_invalid_utf8_position_in_characters() -> None:
    loaded = load_yaml(b"a: 1\nb: \xc3\xa9\xc3\xa9\xff\n")
    assert only_code(loaded) == "E002"
    assert where(loaded) == (2, 6)
    assert "0xff" in loaded.diagnostics[0].message


def test_control_character_position() -> None:
    loaded = load_yaml(b"a: 1\nb: \xc3\xa9\x07\n")
    assert only_code(loaded) == "E010"
    assert where(loaded) == (2, 5)
    assert "U+0007" in loaded.diagnostics[0].message


def test_binary_reported_before_utf8() -> None:
    loaded = load_json(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    assert only_code(loaded) == "E010"


def test_empty_and_null_documents() -> None:
    assert only_code(load_yaml("")) == "E007"
    assert only_code(load_yaml("  \n\n")) == "E007"
    assert only_code(load_yaml("# only\n# comments\n")) == "E007"
    assert only_code(load_yaml("~\n")) == "E007"
    assert only_code(load_yaml("---\n")) == "E007"
    assert only_code(load_json(" \n")) == "E007"
    assert only_code(load_json("null")) == "E007"


def test_load_file_missing(tmp_path: Path) -> None:
    loaded = load_file(tmp_path / "gone.yaml", "gone.yaml")
    assert only_code(loaded) == "E001"
    assert loaded.path == "gone.yaml"


def test_load_file_format_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "spec.JSON"
    path.write_text('{"a": 1, "a": 2}', encoding="utf-8")
    loaded = load_file(path, "spec.JSON")
    assert only_code(loaded) == "E005"
    assert "JSON parsers" in loaded.diagnostics[0].hint


# --- JSON strings and numbers -------------------------------------------------

def test_json_string_escapes() -> None:
    loaded = load_json(r'{"a": "\n\t\"\\\/\u00e9\ud83d\ude00", "b": "\u0041\b\f\r"}')
    assert loaded.diagnostics == []
    assert loaded.data == {"a": '\n\t"\\/\u00e9\U0001F600', "b": "A\b\f\r"}


def test_json_escaped_key() -> None:
    loaded = load_json(r'{"a\/b": 1, "\u0063": 2}')
    assert loaded.data == {"a/b": 1, "c": 2}
    assert loaded.key_positions["/a~1b"] == (1, 2)


@pytest.mark.parametrize(("text", "message", "position"), [
    (r'{"a": "\x"}', "Invalid \\escape", (1, 8)),
    ('{"a": "abc', "Unterminated string", (1, 7)),
    ('{"a": "x\ny"}', "Invalid control character", (1, 9)),
    (r'{"a": "\u12"}', "Invalid \\uXXXX escape", (1, 9)),
])
def test_json_bad_string(text: str, message: str, position: tuple[int, int]) -> None:
    loaded = load_json(text)
    assert only_code(loaded) == "E004"
    assert loaded.diagnostics[0].message == f"invalid string: {message}"
    assert where(loaded) == position


def test_json_numbers() -> None:
    loaded = load_json("[0, -0, 12, -3, 1.5, 1e3, 1E-2, -0.5e+2, 12345678901234567890]")
    assert loaded.diagnostics == []
    assert loaded.data == [0, 0, 12, -3, 1.5, 1000.0, 0.01, -50.0, 12345678901234567890]
    assert [type(v) for v in loaded.data] == [int, int, int, int, float, float, float,
                                              float, int]


@pytest.mark.parametrize(("text", "message"), [
    ("[012]", "invalid number '012'"),
    ("[-01]", "invalid number '-01'"),
    ("[1.]", "invalid number '1.'"),
    ("[1.5e]", "invalid number '1.5e'"),
    ("[.5]", "invalid number starting with '.'"),
    ("[+1]", "invalid number starting with '+'"),
    ("[NaN]", "expected a JSON value, found 'N'"),
    ("[Infinity]", "expected a JSON value, found 'I'"),
    ("[-]", "expected a JSON value, found '-'"),
    ("[tru]", "expected a JSON value, found 't'"),
])
def test_json_bad_number(text: str, message: str) -> None:
    loaded = load_json(text)
    assert only_code(loaded) == "E004"
    assert loaded.diagnostics[0].message == message
    assert where(loaded) == (1, 2)


def test_json_number_out_of_range() -> None:
    loaded = load_json("[1e400]")
    assert only_code(loaded) == "E105"
    assert "finite" in loaded.diagnostics[0].message
    loaded = load_json("[" + "9" * 200 + "]")
    assert only_code(loaded) == "E105"


def test_json_literals() -> None:
    loaded = load_json('{"t": true, "f": false, "n": null}')
    assert loaded.data == {"t": True, "f": False, "n": None}


@pytest.mark.parametrize(("text", "position"), [
    ('{"a":1,}', (1, 8)),
    ("[1,]", (1, 4)),
    ("{'a': 1}", (1, 2)),
    ('{"a": 1} {"b": 2}', (1, 10)),
    ('{"a" 1}', (1, 6)),
    ('{"a": 1 "b": 2}', (1, 9)),
    ("[1 2]", (1, 4)),
])
def test_json_syntax_error_position(text: str, position: tuple[int, int]) -> None:
    loaded = load_json(text)
    assert only_code(loaded) == "E004"
    assert where(loaded) == position


def test_json_duplicate_keeps_first_positions() -> None:
    loaded = load_json('{\n "a": {"x": 1},\n "a": {"x": [1,\n2]}\n}')
    assert only_code(loaded) == "E005"
    assert where(loaded) == (3, 2)
    assert loaded.data == {"a": {"x": 1}}
    assert loaded.positions["/a"] == (2, 7)
    assert loaded.positions["/a/x"] == (2, 13)
    assert loaded.key_positions["/a/x"] == (2, 8)
    assert "/a/x/1" not in loaded.positions
