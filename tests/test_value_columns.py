"""Tests of runtime.values.columns: the chunk converter against the per-value one.

The property tests draw chunks that mix plain values with edge cases and check
that ``compile_column`` returns None or exactly the per-value results (same
values, types and reprs), and None whenever any per-value conversion raises.
The table tests check that typical chunks take the fast path at all.
"""

from __future__ import annotations

import datetime as dt
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.plan import FieldPlan, Normalizer
from runtime.values import ValueProblem, compile_column, compile_field

ENUM_VALUES = ["Closed Won", "Closed Lost", "Open"]
ENUM_SYNONYMS = {"won": "Closed Won", "lost": "Closed Lost", "in progress": "Open"}


class TextSubclass(str):
    """A str subclass, which the per-value converter does not treat as text."""


def make_field(field_type: str, *steps: tuple[str, Any], **settings: Any) -> FieldPlan:
    normalize = [Normalizer(op=op, arg=arg) for op, arg in steps]
    return FieldPlan(
        name="f", type=field_type, owner="src", normalize=normalize, **settings
    )


TRIM = ("trim", None)
LOWER = ("lower", None)
UPPER = ("upper", None)
COLLAPSE = ("collapse_spaces", None)

FIELDS: dict[str, FieldPlan] = {
    "string": make_field("string"),
    "string_trim": make_field("string", TRIM),
    "string_lower": make_field("string", LOWER),
    "string_upper": make_field("string", UPPER),
    "string_collapse": make_field("string", COLLAPSE),
    "string_collapse_trim_lower": make_field("string", COLLAPSE, TRIM, LOWER),
    "string_upper_trim": make_field("string", UPPER, TRIM),
    "string_title_invisible": make_field(
        "string", ("strip_invisible", None), ("title", None)
    ),
    "string_zero_pad_replace": make_field(
        "string", TRIM, ("replace", {"pattern": "-", "with": ""}), ("zero_pad", 5)
    ),
    "string_map": make_field("string", ("map", {"n/a": None, "x": 5, "a": "A"})),
    "string_required": make_field("string", TRIM, required=True),
    "string_default": make_field("string", TRIM, ("default", "none given")),
    "string_constrained": make_field(
        "string", TRIM, pattern="[A-Za-z0-9 ]*", min_length=2, max_length=12
    ),
    "integer": make_field("integer"),
    "integer_required": make_field("integer", required=True),
    "integer_bounds": make_field("integer", minimum=-5.5, maximum=1000),
    "integer_default": make_field("integer", ("default", 7)),
    "integer_trim_collapse": make_field("integer", TRIM, COLLAPSE),
    "decimal": make_field("decimal"),
    "decimal_scale_2": make_field("decimal", scale=2),
    "decimal_scale_0": make_field("decimal", scale=0),
    "decimal_bounds": make_field("decimal", scale=2, minimum=0, maximum=99.99),
    "decimal_default": make_field("decimal", ("default", "1.50")),
    "money": make_field("money"),
    "money_scale_3_bounds": make_field("money", scale=3, currency="EUR", minimum=-10),
    "date": make_field("date"),
    "date_formats": make_field("date", formats=["%d.%m.%Y", "%Y-%m-%d"]),
    "date_timezone": make_field("date", timezone="Europe/London"),
    "date_required": make_field("date", required=True),
    "boolean": make_field("boolean"),
    "boolean_required": make_field("boolean", required=True),
    "boolean_map": make_field("boolean", ("map", {"ja": True, "nein": False})),
    "email": make_field("email"),
    "email_lower": make_field("email", LOWER),
    "email_constrained": make_field("email", max_length=20, pattern=".*@.*"),
    "enum": make_field("enum", values=ENUM_VALUES, synonyms=ENUM_SYNONYMS),
    "enum_required": make_field(
        "enum", TRIM, values=ENUM_VALUES, synonyms=ENUM_SYNONYMS, required=True
    ),
    "enum_default": make_field(
        "enum", ("default", "Open"), values=ENUM_VALUES, synonyms=ENUM_SYNONYMS
    ),
    "datetime": make_field("datetime", timezone="Europe/Berlin"),
    "url": make_field("url"),
    "duration": make_field("duration"),
}

# Compiled once, so memo columns keep their state across examples as they would
# across the chunks of a run.
COLUMNS = {name: compile_column(field) for name, field in FIELDS.items()}
CONVERTERS = {name: compile_field(field) for name, field in FIELDS.items()}

EDGE_VALUES: list[Any] = [
    None,
    "",
    " ",
    "\t",
    "\u00a0",
    "\u2028",
    "\x1c",
    "\u200b",
    " \t\u00a0 ",
    "١٢",
    "٣.٥",
    "1_000",
    " 12 ",
    "\u00a012\u00a0",
    "\t7\t",
    "+5",
    "-0",
    "-0.00",
    "-0.001",
    "0.10",
    ".5",
    "5.",
    "1e3",
    "1E+2",
    "-2.5e-3",
    "NaN",
    "nan",
    "sNaN",
    "Infinity",
    "-inf",
    "1,234",
    "1,234.50",
    "12,34",
    "(12.00)",
    "$12.50",
    "12.50 EUR",
    "12%",
    "007",
    "9" * 200,
    "9" * 5000,
    "1" * 70 + ".5",
    12,
    0,
    -3,
    10**4300,
    1.5,
    2.0,
    float("nan"),
    1e20,
    Decimal("1.50"),
    Decimal("-0"),
    Decimal("1E+3"),
    Decimal("NaN"),
    Decimal("sNaN"),
    True,
    False,
    dt.date(2026, 1, 2),
    dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
    "2026-02-30",
    "2026-13-01",
    "2026-02-03",
    " 2026-02-03 ",
    "20260203",
    "2026-W05-1",
    "2026-02-03T10:00:00",
    "03.02.2026",
    "1738540800000",
    "A@B.COM",
    " John.Smith@Example.COM ",
    "mailto:x@example.org",
    "MAILTO:Y@EXAMPLE.ORG",
    "user@bücher.de",
    "USER@BÜCHER.DE",
    "a" * 60 + "@example.com",
    "a" * 65 + "@example.com",
    "x@" + "d" * 64 + ".com",
    "not an email",
    "two@@example.com",
    "yes",
    "N",
    " TRUE ",
    "maybe",
    "ja",
    "Open",
    " closed won ",
    "WON",
    "In Progress",
    "opne",
    "n/a",
    "x",
    "a",
    "a\x00b",
    "a \x00 b",
    "\x00",
    "ΑΣ",
    "İ",
    "\u212a",
    "o'neil they're",
    "\U0001f468\u200d\U0001f469",
    "a\u200db",
    "12-34",
    "  multiple   spaces\there  ",
    TextSubclass("12"),
    TextSubclass("x@example.com"),
    [1],
    {"a": 1},
]

RAISED = object()


def shown(value: Any) -> str:
    # repr of an int beyond 4300 digits raises ValueError, and hex has no limit.
    if type(value) is int:
        return f"int {value:#x}"
    return repr(value)


def convert_each(name: str, chunk: list[Any]) -> Any:
    """Return the per-value results of the chunk, or RAISED if any value fails."""
    convert = CONVERTERS[name]
    try:
        return [convert(value) for value in chunk]
    except (ValueProblem, ValueError, ArithmeticError):
        # ValueError: str() of an int beyond the interpreter's digit limit.
        # ArithmeticError: the boolean and duration converters compare
        # Decimal('sNaN') with numbers, which raises InvalidOperation.
        return RAISED


def assert_column_agrees(name: str, chunk: list[Any]) -> Any:
    expected = convert_each(name, chunk)
    result = COLUMNS[name](list(chunk))
    if result is None:
        return None
    assert expected is not RAISED, f"{name}: fast path accepted a failing chunk {chunk!r}"
    assert len(result) == len(expected)
    assert [type(value) for value in result] == [type(value) for value in expected]
    assert [shown(value) for value in result] == [shown(value) for value in expected]
    assert result == expected
    return result


def spaced(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    padding = st.sampled_from(["", "", "", " ", "  ", "\t", "\u00a0"])
    return st.tuples(padding, values, padding).map("".join)


def random_case(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(values, st.randoms()).map(
        lambda pair: "".join(
            char.upper() if pair[1].random() < 0.5 else char for char in pair[0]
        )
    )


PLAIN_INTEGERS = st.integers(-(10**12), 10**12).map(str)
PLAIN_DECIMALS = st.one_of(
    st.from_regex(r"-?[0-9]{1,6}\.[0-9]{0,5}", fullmatch=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
PLAIN_DATES = st.dates().map(dt.date.isoformat)
EMAIL_LOCAL = st.text(string.ascii_letters + string.digits + "._%+-", min_size=1, max_size=20)
EMAIL_DOMAIN = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
PLAIN_EMAILS = st.builds(
    lambda local, domain, top: f"{local}@{domain}.{top}",
    EMAIL_LOCAL,
    random_case(EMAIL_DOMAIN),
    st.sampled_from(["com", "org", "ORG", "io", "Co", "xn--p1ai", "de"]),
)
BOOLEAN_WORDS = random_case(
    st.sampled_from(["true", "false", "yes", "no", "y", "n", "t", "f", "on", "off", "1", "0"])
)
ENUM_WORDS = random_case(
    st.sampled_from([*ENUM_VALUES, *ENUM_SYNONYMS, "closed  won", "opne"])
)
PLAIN_TEXTS = st.one_of(
    st.text(max_size=15),
    st.text(string.ascii_letters + string.digits + " -", max_size=15),
)

PLAIN_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.one_of(spaced(PLAIN_TEXTS), st.integers(-999, 99999)),
    "integer": st.one_of(spaced(PLAIN_INTEGERS), st.integers(-(10**6), 10**6)),
    "decimal": st.one_of(spaced(PLAIN_DECIMALS), st.integers(-1000, 1000)),
    "money": st.one_of(spaced(PLAIN_DECIMALS), st.integers(-1000, 1000)),
    "date": st.one_of(spaced(PLAIN_DATES), st.dates()),
    "boolean": st.one_of(spaced(BOOLEAN_WORDS), st.booleans()),
    "email": spaced(PLAIN_EMAILS),
    "enum": spaced(ENUM_WORDS),
    "datetime": st.datetimes().map(dt.datetime.isoformat),
    "url": st.just("https://example.com/a"),
    "duration": st.just("1:30"),
}


def chunks_for(field_type: str) -> st.SearchStrategy[list[Any]]:
    """Draw chunks of mostly plain values with up to three edge cases mixed in."""
    plain = st.lists(PLAIN_BY_TYPE[field_type], max_size=30)
    edges = st.lists(st.sampled_from(EDGE_VALUES), max_size=3)
    return st.tuples(plain, edges).flatmap(
        lambda parts: st.permutations(parts[0] + parts[1])
    )


PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", sorted(FIELDS))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_compile_column_matches_per_value(name: str, data: st.DataObject) -> None:
    chunk = data.draw(chunks_for(FIELDS[name].type), label="chunk")
    assert_column_agrees(name, chunk)


@pytest.mark.parametrize("name", sorted(FIELDS))
@PROPERTY_SETTINGS
@given(chunk=st.lists(st.sampled_from(EDGE_VALUES), max_size=8))
def test_compile_column_edge_chunks(name: str, chunk: list[Any]) -> None:
    assert_column_agrees(name, chunk)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_compile_column_each_edge_value_alone(name: str) -> None:
    for value in EDGE_VALUES:
        assert_column_agrees(name, [value])
        assert_column_agrees(name, ["7", value, "x@example.com"])


def repeat_to(values: list[Any], size: int = 1000) -> list[Any]:
    return [values[index % len(values)] for index in range(size)]


# Typical chunks of each supported type, which must take the fast path.
FAST_CHUNKS: list[tuple[str, list[Any]]] = [
    ("string", repeat_to(["Alice", "Bob Smith", " padded ", "ACME Ltd", "x"])),
    ("string", repeat_to(["Alice", "", None, "Bob"])),
    ("string", repeat_to([12, 345, "text"])),
    ("string_trim", repeat_to([" Alice ", "Bob\t", "\u00a0Carol"])),
    ("string_lower", repeat_to(["Alice", "BOB"])),
    ("string_upper", repeat_to(["alice", "bob"])),
    ("string_collapse", repeat_to(["a  b", "c\t\td e", "f\u00a0\u00a0g"])),
    ("string_collapse_trim_lower", repeat_to(["  New   York ", "PARIS"])),
    ("string_upper_trim", repeat_to([" gb ", "fr"])),
    ("string_title_invisible", repeat_to(["o'neil", "mary\u200b ann"])),
    ("string_zero_pad_replace", repeat_to(["12-3", " 45 ", "A7"])),
    ("string_map", repeat_to(["a", "b", "c"])),
    ("string_required", repeat_to(["x", " y "])),
    ("string_default", repeat_to(["x", "  ", None])),
    ("string_constrained", repeat_to(["ab", "Order 12", " xyz "])),
    ("integer", repeat_to(["12", "-3", "+5", " 42 ", "007", "0", "-0"])),
    ("integer", repeat_to([12, -3, 0, None])),
    ("integer", repeat_to(["12", "", None, " "])),
    ("integer_bounds", repeat_to(["-5", "0", "1000", "17"])),
    ("integer_default", repeat_to(["1", ""])),
    ("integer_trim_collapse", repeat_to([" 1 ", "2"])),
    ("decimal", repeat_to(["12.50", "-0.5", "3", ".25", "-0", "0.10", "1234567.891"])),
    ("decimal", repeat_to([1, -2, 0])),
    ("decimal_scale_2", repeat_to(["12.505", "-0.001", "3", "1e3", "0.125"])),
    ("decimal_scale_0", repeat_to(["12.5", "-0.4", "7"])),
    ("decimal_bounds", repeat_to(["0", "99.99", "12.3"])),
    ("decimal_default", repeat_to(["4.5", "", None])),
    ("money", repeat_to(["12.50", "-3.999", "100"])),
    ("money_scale_3_bounds", repeat_to(["-10", "12.3456", "5"])),
    ("money_scale_3_bounds", repeat_to([-10, 12, None])),
    ("date", repeat_to(["2026-01-31", " 2024-02-29 ", "1999-12-31"])),
    ("date", repeat_to([dt.date(2026, 1, 2), None])),
    ("date_formats", repeat_to(["2026-01-31", "2026-11-04"])),
    ("date_timezone", repeat_to(["2026-03-29", "2026-10-25"])),
    ("boolean", repeat_to(["true", "False", " yes ", "N", "1", "0", "on"])),
    ("boolean", repeat_to([True, False, None])),
    ("boolean_map", repeat_to(["ja", "nein", "yes"])),
    ("email", repeat_to(["a.b@example.com", " x+tag@mail.example.org "])),
    ("email", repeat_to(["John.Smith@Example.COM", "jane@EXAMPLE.org", None, ""])),
    ("email_lower", repeat_to(["John.Smith@Example.COM"])),
    ("email_constrained", repeat_to(["a@example.com"])),
    ("enum", repeat_to(["Open", " closed won ", "WON", "in progress", "Lost"])),
    ("enum_required", repeat_to(["Open", " lost "])),
    ("enum_default", repeat_to(["open", "", None])),
]


@pytest.mark.parametrize(("name", "chunk"), FAST_CHUNKS)
def test_compile_column_takes_fast_path(name: str, chunk: list[Any]) -> None:
    result = assert_column_agrees(name, chunk)
    assert result is not None, f"{name}: chunk took the slow path"
    assert result is not chunk


# Chunks with one value the per-value converter rejects (or, for the last group,
# accepts only through its slow path); the column converter must return None.
SLOW_CHUNKS: list[tuple[str, Any]] = [
    ("string_required", ""),
    ("string_constrained", "way too long for twelve"),
    ("string_constrained", "a"),
    ("string_constrained", "bad!"),
    ("string_map", "n/a"),
    ("string_map", "x"),
    ("integer", "12a"),
    ("integer", "1_000"),
    ("integer", "12.5"),
    ("integer", True),
    ("integer_required", " "),
    ("integer_required", None),
    ("integer_bounds", "-6"),
    ("integer_bounds", "1001"),
    ("integer_bounds", 2000),
    ("decimal", "NaN"),
    ("decimal", "Infinity"),
    ("decimal", "1_000.5"),
    ("decimal", "1.2.3"),
    ("decimal_bounds", "-0.01"),
    ("decimal_bounds", "100"),
    ("decimal_scale_2", "1" * 70),
    ("money_scale_3_bounds", "-10.001"),
    ("date", "2026-02-30"),
    ("date", "2026-13-01"),
    ("date", "tomorrow"),
    ("date_required", ""),
    ("boolean", "maybe"),
    ("boolean_required", None),
    ("email", "not an email"),
    ("email", "a@b"),
    ("email_constrained", "long.address@example.com"),
    ("enum", "bogus"),
    ("enum_required", "  "),
    # Accepted per value, but only through the slow path.
    ("integer", "1,234"),
    ("decimal", "1e3"),
    ("decimal", "(12.00)"),
    ("money", "$12.50"),
    ("date", "20260203"),
    ("date_formats", "03.02.2026"),
    ("email", "mailto:x@example.org"),
    ("email", "user@bücher.de"),
    ("email", "a" * 60 + "@example.com"),
]

PLAIN_BY_FIELD = {
    "string": "abc",
    "integer": "12",
    "decimal": "1.5",
    "money": "1.5",
    "date": "2026-01-02",
    "boolean": "yes",
    "email": "a@example.com",
    "enum": "Open",
}


@pytest.mark.parametrize(("name", "odd_value"), SLOW_CHUNKS)
def test_compile_column_slow_path_chunks(name: str, odd_value: Any) -> None:
    plain = PLAIN_BY_FIELD[FIELDS[name].type]
    chunk = [plain] * 20 + [odd_value] + [plain] * 20
    result = assert_column_agrees(name, chunk)
    assert result is None


@pytest.mark.parametrize("name", ["datetime", "url", "duration"])
def test_compile_column_unsupported_types(name: str) -> None:
    chunk = repeat_to(["2026-01-02T10:00:00", "https://example.com", "1:30"], 30)
    assert COLUMNS[name](chunk) is None


@pytest.mark.parametrize("name", ["string", "integer", "date", "enum", "boolean"])
def test_compile_column_empty_chunk(name: str) -> None:
    assert COLUMNS[name]([]) == []


def test_compile_column_all_missing_uses_default() -> None:
    result = COLUMNS["decimal_default"]([None, "", "  "])
    assert result == [Decimal("1.50")] * 3
    assert [repr(value) for value in result] == ["Decimal('1.50')"] * 3


def test_compile_column_nul_inside_text() -> None:
    column = compile_column(make_field("string", COLLAPSE))
    result = column(["a\x00  b", "c   d"])
    assert result == ["a\x00 b", "c d"]


def test_compile_column_memo_many_spellings() -> None:
    field = make_field("boolean")
    column = compile_column(field)
    convert = compile_field(field)
    # More distinct raw spellings than the memo holds: the chunk takes the slow
    # path, and a later ordinary chunk still converts correctly.
    spellings = [" " * count + "yes" for count in range(5000)]
    assert column(spellings) is None
    ordinary = repeat_to(["yes", "no", " on "], 100)
    assert column(ordinary) == [convert(value) for value in ordinary]


def test_compile_column_memo_remembers_rejection() -> None:
    column = compile_column(make_field("enum", values=ENUM_VALUES))
    assert column(["Open", "bogus"]) is None
    assert column(["bogus"]) is None
    assert column(["Open"]) == ["Open"]
