"""Tests of runtime.values: field compilation, normalizers, types and JSON storage."""

from __future__ import annotations

import csv
import datetime as dt
import json
import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from compiler.plan import FieldPlan, Normalizer
from runtime.values import (
    FieldPlanError,
    ValueProblem,
    compile_field,
    from_json_value,
    to_json_value,
)

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
UTC = dt.UTC
GMT = dt.timezone(dt.timedelta(0))
BST = dt.timezone(dt.timedelta(hours=1))
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
CLOCKIFY_FORMATS = ["%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p"]
# A Toggl export description that uses every special character.
TOGGL_DESCRIPTION = (
    "\\ \U0001f525 Special characters  "
    + '"""`!@#$%^&*()_+\\-=\\[\\]{};'
    + "':\"\\|,.''<>\\/?~ \\"
)
ENUM = {
    "values": ["Closed Won", "Closed Lost", "Open"],
    "synonyms": {"won": "Closed Won", "lost": "Closed Lost", "in progress": "Open"},
}


def make_field(field_type: str, **settings: Any) -> FieldPlan:
    normalize = [
        step if isinstance(step, Normalizer) else Normalizer(op=step[0], arg=step[1])
        for step in settings.pop("normalize", [])
    ]
    return FieldPlan(
        name="f", type=field_type, owner="src", normalize=normalize, **settings
    )


def convert(field_type: str, raw: Any, **settings: Any) -> Any:
    return compile_field(make_field(field_type, **settings))(raw)


def step(op: str, arg: Any = None) -> tuple[str, Any]:
    return (op, arg)


# (field type, settings, raw value, expected canonical value)
ACCEPTED = [
    # normalizers
    pytest.param(
        "string",
        {"normalize": [step("trim")]},
        "  Acme Ltd \u00a0",
        "Acme Ltd",
        id="trim-nbsp",
    ),
    pytest.param(
        "string",
        {"normalize": [step("collapse_spaces")]},
        "a \u00a0\t b  c",
        "a b c",
        id="collapse-spaces",
    ),
    pytest.param(
        "string", {"normalize": [step("lower")]}, "ÉCOLE", "école", id="lower"
    ),
    pytest.param(
        "string", {"normalize": [step("upper")]}, "abc-12", "ABC-12", id="upper"
    ),
    pytest.param(
        "string",
        {"normalize": [step("title")]},
        "mary-jane o'neil",
        "Mary-Jane O'neil",
        id="title-names",
    ),
    pytest.param(
        "string",
        {"normalize": [step("title")]},
        "they're 3rd",
        "They're 3rd",
        id="title-apostrophe",
    ),
    pytest.param(
        "string", {"normalize": [step("zero_pad", 5)]}, "42", "00042", id="zero-pad"
    ),
    pytest.param(
        "string",
        {"normalize": [step("zero_pad", 5)]},
        "A42",
        "A42",
        id="zero-pad-non-digits",
    ),
    pytest.param(
        "string",
        {"normalize": [step("zero_pad", 5)]},
        42,
        "00042",
        id="zero-pad-json-int",
    ),
    pytest.param(
        "string",
        {"normalize": [step("zero_pad", 2)]},
        "12345",
        "12345",
        id="zero-pad-longer",
    ),
    pytest.param(
        "string",
        {"normalize": [step("replace", {"pattern": r"[^0-9]", "with": ""})]},
        "(555) 123-4567",
        "5551234567",
        id="replace-strip",
    ),
    pytest.param(
        "string",
        {"normalize": [step("replace", {"pattern": r"(\d+)/(\d+)", "with": r"\2-\1"})]},
        "11/2026",
        "2026-11",
        id="replace-groups",
    ),
    pytest.param(
        "string",
        {"normalize": [step("map", {"Y": "yes"})]},
        " y ",
        "yes",
        id="map-trim-case",
    ),
    pytest.param(
        "string",
        {"normalize": [step("map", {"Y": "yes"})]},
        " other ",
        " other ",
        id="map-unmapped",
    ),
    pytest.param(
        "string",
        {"normalize": [step("map", {"n/a": None})]},
        "N/A",
        None,
        id="map-to-missing",
    ),
    pytest.param(
        "string",
        {"normalize": [step("map", {"x": 7}), step("zero_pad", 3)]},
        "X",
        "7",
        id="map-non-text-skips-rest",
    ),
    pytest.param(
        "integer",
        {"normalize": [step("map", {"null": None, "-": None})]},
        "null",
        None,
        id="map-hubspot-null",
    ),
    pytest.param(
        "string",
        {"normalize": [step("strip_invisible"), step("trim")]},
        "\u200eTask 1",
        "Task 1",
        id="clickup-left-to-right-mark",
    ),
    pytest.param(
        "string",
        {"normalize": [step("strip_invisible")]},
        "\U0001f9e0 Work Smarter with ClickUp AI",
        "\U0001f9e0 Work Smarter with ClickUp AI",
        id="strip-invisible-keeps-emoji",
    ),
    pytest.param(
        "string",
        {"normalize": [step("strip_invisible")]},
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 team",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 team",
        id="strip-invisible-keeps-emoji-joiner",
    ),
    pytest.param(
        "string",
        {"normalize": [step("strip_invisible")]},
        "\ufeffUs\u200ber\u200d\u202aname\u202c\u2066x\u2069",
        "Usernamex",
        id="strip-invisible-marks",
    ),
    pytest.param(
        "string", {"normalize": [step("default", "n/a")]}, "", "n/a", id="default-empty"
    ),
    pytest.param(
        "string",
        {"normalize": [step("trim"), step("default", "n/a")]},
        "  ",
        "n/a",
        id="default-blank",
    ),
    pytest.param(
        "decimal",
        {"scale": 2, "normalize": [step("default", "0")]},
        None,
        Decimal("0.00"),
        id="default-none",
    ),
    pytest.param(
        "string",
        {"required": True, "normalize": [step("default", "x")]},
        None,
        "x",
        id="default-beats-required",
    ),
    pytest.param(
        "string",
        {"normalize": [step("trim")]},
        5,
        "5",
        id="normalizers-on-rendered-int",
    ),
    pytest.param(
        "integer", {"normalize": [step("upper")]}, 5, 5, id="normalizers-skip-non-text"
    ),
    # string
    pytest.param("string", {}, "", None, id="string-empty-missing"),
    pytest.param("string", {}, None, None, id="string-none-missing"),
    pytest.param("string", {}, "   ", "   ", id="string-blank-kept"),
    pytest.param("string", {}, 12345, "12345", id="string-from-int"),
    pytest.param("string", {}, 3.0, "3", id="string-from-integral-float"),
    pytest.param("string", {}, 2.5, "2.5", id="string-from-float"),
    pytest.param("string", {}, True, "true", id="string-from-bool"),
    pytest.param("string", {}, Decimal("1.50"), "1.50", id="string-from-decimal"),
    pytest.param(
        "string",
        {"pattern": "[A-Z]{3}-[0-9]{3}"},
        "ABC-123",
        "ABC-123",
        id="string-pattern",
    ),
    pytest.param(
        "string",
        {"pattern": "^[A-Z]{3}-[0-9]{3}$"},
        "ABC-123",
        "ABC-123",
        id="string-pattern-anchored",
    ),
    pytest.param(
        "string", {"min_length": 2, "max_length": 3}, "abc", "abc", id="string-lengths"
    ),
    pytest.param(
        "string",
        {},
        TOGGL_DESCRIPTION,
        TOGGL_DESCRIPTION,
        id="toggl-special-characters",
    ),
    # integer
    pytest.param("integer", {}, "42", 42, id="integer-text"),
    pytest.param("integer", {}, " 42 ", 42, id="integer-spaces"),
    pytest.param("integer", {}, "1,234", 1234, id="integer-comma-groups"),
    pytest.param("integer", {}, "1,234,567", 1234567, id="integer-two-groups"),
    pytest.param("integer", {}, "1 234", 1234, id="integer-space-groups"),
    pytest.param("integer", {}, "1\u00a0234", 1234, id="integer-nbsp-groups"),
    pytest.param("integer", {}, "+5", 5, id="integer-plus"),
    pytest.param("integer", {}, "-5", -5, id="integer-minus"),
    pytest.param("integer", {}, "1e3", 1000, id="integer-exponent"),
    pytest.param("integer", {}, "12.000", 12, id="integer-integral-decimal-text"),
    pytest.param("integer", {}, "(12)", -12, id="integer-parentheses"),
    pytest.param("integer", {}, 7, 7, id="integer-int"),
    pytest.param("integer", {}, 7.0, 7, id="integer-integral-float"),
    pytest.param("integer", {}, Decimal("12.00"), 12, id="integer-integral-decimal"),
    pytest.param("integer", {}, "   ", None, id="integer-blank-missing"),
    pytest.param(
        "integer",
        {"minimum": 0, "maximum": 100},
        "100",
        100,
        id="integer-bounds-inclusive",
    ),
    pytest.param("integer", {"minimum": 2.5}, "3", 3, id="integer-fractional-minimum"),
    # decimal
    pytest.param("decimal", {}, "1,234.50", Decimal("1234.50"), id="decimal-groups"),
    pytest.param("decimal", {}, "(12.00)", Decimal("-12.00"), id="decimal-parentheses"),
    pytest.param(
        "decimal",
        {},
        "(1,234.50)",
        Decimal("-1234.50"),
        id="decimal-parentheses-groups",
    ),
    pytest.param(
        "decimal",
        {},
        "0.59999999999999997779553950749686919152736663818359375",
        Decimal("0.59999999999999997779553950749686919152736663818359375"),
        id="hubspot-long-decimal",
    ),
    pytest.param(
        "decimal",
        {},
        "0.90000000000000002220446049250313080847263336181640625",
        Decimal("0.90000000000000002220446049250313080847263336181640625"),
        id="hubspot-long-decimal-2",
    ),
    pytest.param(
        "decimal",
        {"scale": 2},
        "0.59999999999999997779553950749686919152736663818359375",
        Decimal("0.60"),
        id="hubspot-long-decimal-scaled",
    ),
    pytest.param(
        "decimal", {"scale": 2}, "0.125", Decimal("0.13"), id="decimal-round-half-up"
    ),
    pytest.param(
        "decimal", {"scale": 2}, "2.675", Decimal("2.68"), id="decimal-round-half-up-2"
    ),
    pytest.param(
        "decimal",
        {"scale": 2},
        "-0.125",
        Decimal("-0.13"),
        id="decimal-round-half-up-negative",
    ),
    pytest.param("decimal", {"scale": 2}, 5, Decimal("5.00"), id="decimal-int-scaled"),
    pytest.param("decimal", {}, 0.1, Decimal("0.1"), id="decimal-float-shortest"),
    pytest.param("decimal", {}, "1e3", Decimal("1000"), id="decimal-exponent-plain"),
    pytest.param(
        "decimal", {}, "5000.00", Decimal("5000.00"), id="hubspot-amount-text"
    ),
    pytest.param("decimal", {}, "-.5", Decimal("-0.5"), id="decimal-leading-point"),
    pytest.param(
        "decimal", {"minimum": 0.1}, "0.1", Decimal("0.1"), id="decimal-minimum-exact"
    ),
    pytest.param("decimal", {}, None, None, id="hubspot-null"),
    pytest.param("decimal", {}, "", None, id="hubspot-empty"),
    # boolean
    pytest.param("boolean", {}, "true", True, id="boolean-true"),
    pytest.param("boolean", {}, "FALSE", False, id="boolean-false-upper"),
    pytest.param("boolean", {}, " Yes ", True, id="boolean-yes"),
    pytest.param("boolean", {}, "No", False, id="boolean-no"),
    pytest.param("boolean", {}, "y", True, id="boolean-y"),
    pytest.param("boolean", {}, "N", False, id="boolean-n"),
    pytest.param("boolean", {}, "1", True, id="boolean-1"),
    pytest.param("boolean", {}, "0", False, id="boolean-0"),
    pytest.param("boolean", {}, "on", True, id="boolean-on"),
    pytest.param("boolean", {}, "OFF", False, id="boolean-off"),
    pytest.param("boolean", {}, "t", True, id="boolean-t"),
    pytest.param("boolean", {}, "f", False, id="boolean-f"),
    pytest.param("boolean", {}, True, True, id="boolean-bool"),
    pytest.param("boolean", {}, 0, False, id="boolean-int-0"),
    pytest.param("boolean", {}, 1, True, id="boolean-int-1"),
    # date
    pytest.param("date", {}, "2026-11-04", dt.date(2026, 11, 4), id="date-iso"),
    pytest.param("date", {}, "20261104", dt.date(2026, 11, 4), id="date-iso-basic"),
    pytest.param(
        "date",
        {},
        "2026-03-04T21:09:29.509Z",
        dt.date(2026, 3, 4),
        id="date-from-iso-datetime",
    ),
    pytest.param(
        "date",
        {"formats": ["%m/%d/%Y"]},
        "11/04/2026",
        dt.date(2026, 11, 4),
        id="clockify-us-date",
    ),
    pytest.param(
        "date",
        {"formats": ["%m/%d/%Y"]},
        "3/4/2024",
        dt.date(2024, 3, 4),
        id="date-one-digit-parts",
    ),
    pytest.param(
        "date",
        {"formats": ["%d/%m/%Y"]},
        "04/11/2026",
        dt.date(2026, 11, 4),
        id="date-day-first",
    ),
    pytest.param(
        "date",
        {"formats": ["%d.%m.%y"]},
        "04.11.26",
        dt.date(2026, 11, 4),
        id="date-short-year",
    ),
    pytest.param(
        "date",
        {"formats": ["%b %d, %Y"]},
        "Nov 4, 2026",
        dt.date(2026, 11, 4),
        id="date-month-name",
    ),
    pytest.param(
        "date",
        {"formats": ["%d %B %Y"]},
        "4 NOVEMBER 2026",
        dt.date(2026, 11, 4),
        id="date-full-month",
    ),
    pytest.param(
        "date",
        {"formats": ["%j/%Y"]},
        "308/2026",
        dt.date(2026, 11, 4),
        id="date-strptime-fallback",
    ),
    pytest.param(
        "date",
        {"formats": CLOCKIFY_FORMATS},
        "03/04/2024 10:23 AM",
        dt.date(2024, 3, 4),
        id="date-from-format-time",
    ),
    pytest.param(
        "date", {}, dt.date(2026, 11, 4), dt.date(2026, 11, 4), id="date-date"
    ),
    pytest.param(
        "date",
        {},
        dt.datetime(2026, 11, 4, 23, 30, tzinfo=NEW_YORK),
        dt.date(2026, 11, 4),
        id="date-own-date",
    ),
    pytest.param(
        "date",
        {"timezone": "Europe/London"},
        dt.datetime(2026, 11, 4, 23, 30, tzinfo=NEW_YORK),
        dt.date(2026, 11, 5),
        id="date-in-field-zone",
    ),
    pytest.param(
        "date", {}, "1779177595463", dt.date(2026, 5, 19), id="clickup-due-date-ms"
    ),
    pytest.param(
        "date", {}, 1730419200000, dt.date(2024, 11, 1), id="date-epoch-ms-int"
    ),
    # datetime
    pytest.param(
        "datetime",
        {},
        "2026-03-04T21:09:29.509Z",
        dt.datetime(2026, 3, 4, 21, 9, 29, 509000, tzinfo=UTC),
        id="hubspot-createdate",
    ),
    pytest.param(
        "datetime",
        {},
        "2026-11-04T10:00:00+01:00",
        dt.datetime(2026, 11, 4, 9, 0, tzinfo=UTC),
        id="datetime-offset-to-utc",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        "2026-11-04 10:00",
        dt.datetime(2026, 11, 4, 10, 0, tzinfo=LONDON),
        id="datetime-naive-in-zone",
    ),
    pytest.param(
        "datetime",
        {},
        "2026-11-04",
        dt.datetime(2026, 11, 4, tzinfo=UTC),
        id="datetime-date-only",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        "2026-03-29 00:30",
        dt.datetime(2026, 3, 29, 0, 30, tzinfo=GMT),
        id="london-before-spring-gap",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        "2026-03-29 02:30",
        dt.datetime(2026, 3, 29, 2, 30, tzinfo=BST),
        id="london-after-spring-gap",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        "2026-10-25 01:30",
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=BST),
        id="london-repeated-hour-first",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        "2026-10-25 02:30",
        dt.datetime(2026, 10, 25, 2, 30, tzinfo=GMT),
        id="london-after-autumn-change",
    ),
    pytest.param(
        "datetime",
        {"formats": CLOCKIFY_FORMATS, "timezone": "America/New_York"},
        "03/04/2024 10:23:52 AM",
        dt.datetime(2024, 3, 4, 10, 23, 52, tzinfo=NEW_YORK),
        id="clockify-seconds-am",
    ),
    pytest.param(
        "datetime",
        {"formats": CLOCKIFY_FORMATS, "timezone": "America/New_York"},
        "11/04/2026 1:05 PM",
        dt.datetime(2026, 11, 4, 13, 5, tzinfo=NEW_YORK),
        id="clockify-one-oclock-pm",
    ),
    pytest.param(
        "datetime",
        {"formats": CLOCKIFY_FORMATS},
        "11/04/2026 12:05 am",
        dt.datetime(2026, 11, 4, 0, 5, tzinfo=UTC),
        id="twelve-hour-midnight",
    ),
    pytest.param(
        "datetime",
        {"formats": CLOCKIFY_FORMATS},
        "11/04/2026 12:30 PM",
        dt.datetime(2026, 11, 4, 12, 30, tzinfo=UTC),
        id="twelve-hour-noon",
    ),
    pytest.param(
        "datetime",
        {"formats": ["%Y-%m-%d %H:%M %z"]},
        "2026-11-04 10:00 +0100",
        dt.datetime(2026, 11, 4, 9, 0, tzinfo=UTC),
        id="datetime-format-offset",
    ),
    pytest.param(
        "datetime",
        {"formats": ["%d/%m/%Y %H:%M:%S.%f"]},
        "04/11/2026 10:00:00.25",
        dt.datetime(2026, 11, 4, 10, 0, 0, 250000, tzinfo=UTC),
        id="datetime-format-fraction",
    ),
    pytest.param(
        "datetime",
        {},
        "1730419200000",
        dt.datetime(2024, 11, 1, tzinfo=UTC),
        id="clickup-ms-string",
    ),
    pytest.param(
        "datetime",
        {},
        1730419200000,
        dt.datetime(2024, 11, 1, tzinfo=UTC),
        id="datetime-ms-int",
    ),
    pytest.param(
        "datetime",
        {},
        "1779177595463",
        dt.datetime(2026, 5, 19, 7, 59, 55, 463000, tzinfo=UTC),
        id="clickup-due-date",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
        dt.datetime(2026, 7, 1, 13, 0, tzinfo=LONDON),
        id="datetime-aware-converted",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        dt.date(2026, 7, 1),
        dt.datetime(2026, 7, 1, tzinfo=LONDON),
        id="datetime-from-date",
    ),
    # duration
    pytest.param(
        "duration", {}, "01:30:00", dt.timedelta(hours=1, minutes=30), id="clockify-hms"
    ),
    pytest.param(
        "duration", {}, "00:00:02", dt.timedelta(seconds=2), id="toggl-two-seconds"
    ),
    pytest.param(
        "duration", {}, "1:30", dt.timedelta(hours=1, minutes=30), id="duration-h-mm"
    ),
    pytest.param(
        "duration", {}, "25:00:00", dt.timedelta(hours=25), id="duration-over-a-day"
    ),
    pytest.param(
        "duration", {}, "0:00:01.5", dt.timedelta(seconds=1.5), id="duration-fraction"
    ),
    pytest.param(
        "duration",
        {},
        "1.50",
        dt.timedelta(hours=1, minutes=30),
        id="clockify-decimal-hours",
    ),
    pytest.param("duration", {}, "0.00", dt.timedelta(0), id="clockify-zero-hours"),
    pytest.param(
        "duration", {}, "PT1H30M", dt.timedelta(hours=1, minutes=30), id="duration-iso"
    ),
    pytest.param(
        "duration", {}, "P1DT2H", dt.timedelta(hours=26), id="duration-iso-days"
    ),
    pytest.param(
        "duration", {}, "PT0.5H", dt.timedelta(minutes=30), id="duration-iso-fraction"
    ),
    pytest.param("duration", {}, "P1W", dt.timedelta(days=7), id="duration-iso-weeks"),
    pytest.param("duration", {}, 2, dt.timedelta(hours=2), id="duration-int-hours"),
    pytest.param(
        "duration",
        {},
        Decimal("0.25"),
        dt.timedelta(minutes=15),
        id="duration-decimal-hours",
    ),
    pytest.param(
        "duration",
        {},
        dt.timedelta(minutes=5),
        dt.timedelta(minutes=5),
        id="duration-timedelta",
    ),
    # email
    pytest.param(
        "email", {}, "  Bob@Example.COM ", "Bob@example.com", id="email-domain-lower"
    ),
    pytest.param(
        "email", {}, "peter.test@email.test", "peter.test@email.test", id="toggl-email"
    ),
    pytest.param(
        "email",
        {},
        "mailto:Ann@Team.Example.org",
        "Ann@team.example.org",
        id="email-mailto",
    ),
    pytest.param(
        "email",
        {},
        "first.last+tag@sub.example.co.uk",
        "first.last+tag@sub.example.co.uk",
        id="email-plus",
    ),
    # url
    pytest.param(
        "url",
        {},
        " https://example.com/a?b=1 ",
        "https://example.com/a?b=1",
        id="url-trim",
    ),
    pytest.param(
        "url",
        {},
        "HTTP://EXAMPLE.COM:8080",
        "HTTP://EXAMPLE.COM:8080",
        id="url-upper-port",
    ),
    # enum
    pytest.param("enum", ENUM, "Closed Won", "Closed Won", id="enum-exact"),
    pytest.param("enum", ENUM, " closed won ", "Closed Won", id="enum-case-space"),
    pytest.param("enum", ENUM, "WON", "Closed Won", id="enum-synonym"),
    pytest.param("enum", ENUM, "In Progress", "Open", id="enum-synonym-words"),
    # money
    pytest.param(
        "money",
        {"currency": "EUR"},
        "€1,200.50",
        Decimal("1200.50"),
        id="money-euro-symbol",
    ),
    pytest.param(
        "money",
        {"currency": "EUR"},
        "1200.50 EUR",
        Decimal("1200.50"),
        id="money-code-after",
    ),
    pytest.param(
        "money", {"currency": "eur"}, "eur 12", Decimal("12.00"), id="money-code-lower"
    ),
    pytest.param(
        "money", {"currency": "USD"}, "$1,200", Decimal("1200.00"), id="money-dollar"
    ),
    pytest.param(
        "money",
        {"currency": "USD"},
        "-$12.00",
        Decimal("-12.00"),
        id="money-sign-before",
    ),
    pytest.param(
        "money",
        {"currency": "USD"},
        "$-12.00",
        Decimal("-12.00"),
        id="money-sign-after-symbol",
    ),
    pytest.param(
        "money",
        {"currency": "USD"},
        "($12.00)",
        Decimal("-12.00"),
        id="money-parentheses",
    ),
    pytest.param(
        "money",
        {"currency": "USD"},
        "12.345",
        Decimal("12.35"),
        id="money-round-half-up",
    ),
    pytest.param(
        "money",
        {"currency": "CAD"},
        "CA$ 99",
        Decimal("99.00"),
        id="money-prefixed-symbol",
    ),
    pytest.param(
        "money", {"currency": "CAD"}, "$99", Decimal("99.00"), id="money-dollar-for-cad"
    ),
    pytest.param(
        "money",
        {"currency": "USD", "scale": 0},
        "1,200.50",
        Decimal("1201"),
        id="money-scale-0",
    ),
    pytest.param(
        "money", {"currency": "EUR"}, "111.11", Decimal("111.11"), id="toggl-amount"
    ),
    pytest.param("money", {}, 10000, Decimal("10000.00"), id="hubspot-amount-int"),
    pytest.param(
        "money", {}, "5000.00", Decimal("5000.00"), id="hubspot-amount-string"
    ),
    pytest.param("money", {}, "£5", Decimal("5.00"), id="money-no-field-currency"),
    pytest.param(
        "money",
        {"currency": "USD"},
        "$12 USD",
        Decimal("12.00"),
        id="money-symbol-and-code",
    ),
    pytest.param(
        "money",
        {"maximum": 100},
        "$100.00",
        Decimal("100.00"),
        id="money-maximum-inclusive",
    ),
]


@pytest.mark.parametrize(("field_type", "settings", "raw", "expected"), ACCEPTED)
def test_convert_accepted(
    field_type: str, settings: dict[str, Any], raw: Any, expected: Any
) -> None:
    result = convert(field_type, raw, **dict(settings))
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(expected, Decimal):
        # Decimal("1.5") == Decimal("1.50"); the stored digits must match too.
        assert str(result) == str(expected)
    if isinstance(expected, dt.datetime):
        assert result.utcoffset() == expected.utcoffset()
        assert type(result.tzinfo) is dt.timezone


# (field type, settings, raw value, expected problem code)
REJECTED = [
    pytest.param("string", {"required": True}, "", "required", id="required-empty"),
    pytest.param("string", {"required": True}, None, "required", id="required-none"),
    pytest.param(
        "string",
        {"required": True, "normalize": [step("trim")]},
        "   ",
        "required",
        id="required-blank",
    ),
    pytest.param(
        "integer", {"required": True}, " ", "required", id="required-blank-integer"
    ),
    pytest.param(
        "string",
        {"required": True, "normalize": [step("map", {"null": ""})]},
        "NULL",
        "required",
        id="required-mapped-empty",
    ),
    pytest.param("string", {}, ["a", "b"], "wrong_type", id="string-list"),
    pytest.param("string", {}, {"a": 1}, "wrong_type", id="string-dict"),
    pytest.param(
        "string",
        {"pattern": "[A-Z]{3}"},
        "ABCD",
        "pattern_mismatch",
        id="pattern-fullmatch",
    ),
    pytest.param("string", {"min_length": 3}, "ab", "too_short", id="too-short"),
    pytest.param("string", {"max_length": 3}, "abcd", "too_long", id="too-long"),
    pytest.param(
        "email",
        {"max_length": 10},
        "someone@example.com",
        "too_long",
        id="email-too-long",
    ),
    pytest.param("integer", {}, "1.5", "not_integer", id="integer-fraction"),
    pytest.param("integer", {}, "1e-1", "not_integer", id="integer-small-exponent"),
    pytest.param("integer", {}, "12,34", "not_integer", id="integer-bad-groups"),
    pytest.param("integer", {}, "1_000", "not_integer", id="integer-underscore"),
    pytest.param("integer", {}, "abc", "not_integer", id="integer-text"),
    pytest.param("integer", {}, "12%", "not_integer", id="integer-percent"),
    pytest.param("integer", {}, "nan", "not_integer", id="integer-nan"),
    pytest.param("integer", {}, "1e200", "not_integer", id="integer-huge"),
    pytest.param("integer", {}, True, "not_integer", id="integer-bool"),
    pytest.param("integer", {}, 1.5, "not_integer", id="integer-float"),
    pytest.param("integer", {}, Decimal("1.5"), "not_integer", id="integer-decimal"),
    pytest.param("integer", {}, ["1"], "wrong_type", id="integer-list"),
    pytest.param(
        "integer", {"minimum": 0}, "-1", "below_minimum", id="integer-below-minimum"
    ),
    pytest.param(
        "integer", {"maximum": 100}, "101", "above_maximum", id="integer-above-maximum"
    ),
    pytest.param(
        "integer",
        {"minimum": 2.5},
        "2",
        "below_minimum",
        id="integer-below-fractional-minimum",
    ),
    pytest.param("decimal", {}, "12%", "not_decimal", id="decimal-percent"),
    pytest.param("decimal", {}, "1.234,50", "not_decimal", id="decimal-comma"),
    pytest.param("decimal", {}, "$12", "not_decimal", id="decimal-currency"),
    pytest.param("decimal", {}, "NaN", "not_decimal", id="decimal-nan-text"),
    pytest.param("decimal", {}, "Infinity", "not_decimal", id="decimal-infinity"),
    pytest.param("decimal", {}, float("nan"), "not_decimal", id="decimal-nan-float"),
    pytest.param(
        "decimal", {}, Decimal("NaN"), "not_decimal", id="decimal-nan-decimal"
    ),
    pytest.param(
        "decimal", {}, "(-12)", "not_decimal", id="decimal-parentheses-and-sign"
    ),
    pytest.param("decimal", {}, False, "not_decimal", id="decimal-bool"),
    pytest.param(
        "decimal", {"scale": 2}, "1e999", "not_decimal", id="decimal-too-large"
    ),
    pytest.param(
        "decimal", {"minimum": 0.1}, "0.09", "below_minimum", id="decimal-below-minimum"
    ),
    pytest.param("boolean", {}, "maybe", "not_boolean", id="boolean-word"),
    pytest.param("boolean", {}, 2, "not_boolean", id="boolean-int-2"),
    pytest.param("boolean", {}, [True], "wrong_type", id="boolean-list"),
    pytest.param("date", {}, "04/11/2026", "invalid_date", id="date-ambiguous"),
    pytest.param("date", {}, "2026-02-30", "invalid_date", id="date-impossible-iso"),
    pytest.param(
        "date",
        {"formats": ["%m/%d/%Y"]},
        "02/30/2026",
        "invalid_date",
        id="date-impossible-format",
    ),
    pytest.param(
        "date",
        {"formats": ["%m/%d/%Y"]},
        "13/04/2026",
        "invalid_date",
        id="date-no-format-matches",
    ),
    pytest.param("date", {}, "tomorrow", "invalid_date", id="date-word"),
    pytest.param("date", {}, 20261104, "invalid_date", id="date-int"),
    pytest.param("date", {}, ["2026-11-04"], "wrong_type", id="date-list"),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        "2026-03-29 01:30",
        "invalid_datetime",
        id="london-spring-gap",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        dt.datetime(2026, 3, 29, 1, 0),
        "invalid_datetime",
        id="london-spring-gap-naive-object",
    ),
    pytest.param(
        "datetime",
        {"timezone": "Pacific/Apia"},
        "2011-12-30 12:00",
        "invalid_datetime",
        id="samoa-skipped-day",
    ),
    pytest.param(
        "datetime",
        {},
        "9999-12-31T23:59:59-05:00",
        "invalid_datetime",
        id="datetime-past-year-9999",
    ),
    pytest.param(
        "date",
        {"timezone": "Asia/Tokyo"},
        "9999-12-31T23:59:59Z",
        "invalid_date",
        id="date-past-year-9999",
    ),
    pytest.param(
        "datetime", {}, "11/04/2026 10:00", "invalid_datetime", id="datetime-ambiguous"
    ),
    pytest.param(
        "datetime", {}, 1730419200, "invalid_datetime", id="datetime-epoch-seconds"
    ),
    pytest.param(
        "datetime", {}, "1730419200", "invalid_datetime", id="datetime-ten-digits"
    ),
    pytest.param("datetime", {}, 12.5, "invalid_datetime", id="datetime-float"),
    pytest.param("datetime", {}, True, "invalid_datetime", id="datetime-bool"),
    pytest.param(
        "datetime",
        {"formats": CLOCKIFY_FORMATS},
        "11/04/2026 13:05 PM",
        "invalid_datetime",
        id="twelve-hour-13",
    ),
    pytest.param("duration", {}, "P1M", "invalid_duration", id="duration-months"),
    pytest.param("duration", {}, "P1Y2D", "invalid_duration", id="duration-years"),
    pytest.param("duration", {}, "PT", "invalid_duration", id="duration-empty-iso"),
    pytest.param("duration", {}, "1:75", "invalid_duration", id="duration-bad-minutes"),
    pytest.param("duration", {}, "an hour", "invalid_duration", id="duration-words"),
    pytest.param("duration", {}, True, "invalid_duration", id="duration-bool"),
    pytest.param("email", {}, "bob@", "invalid_email", id="email-no-domain"),
    pytest.param("email", {}, "bob example.com", "invalid_email", id="email-no-at"),
    pytest.param("email", {}, "bob@example", "invalid_email", id="email-no-tld"),
    pytest.param(
        "email", {}, "Bob <bob@example.com>", "invalid_email", id="email-display-name"
    ),
    pytest.param("email", {}, "a@@example.com", "invalid_email", id="email-two-at"),
    pytest.param(
        "email", {}, "a..b@example.com", "invalid_email", id="email-double-dot"
    ),
    pytest.param("email", {}, "bob @example.com", "invalid_email", id="email-space"),
    pytest.param("url", {}, "ftp://example.com/file", "invalid_url", id="url-ftp"),
    pytest.param("url", {}, "example.com/path", "invalid_url", id="url-no-scheme"),
    pytest.param("url", {}, "https://", "invalid_url", id="url-no-host"),
    pytest.param("url", {}, "https://exa mple.com", "invalid_url", id="url-space"),
    pytest.param(
        "url", {}, "http://example.com:99999", "invalid_url", id="url-bad-port"
    ),
    pytest.param("enum", ENUM, "Clsoed Won", "invalid_enum", id="enum-typo"),
    pytest.param("enum", ENUM, "pending", "invalid_enum", id="enum-unknown"),
    pytest.param(
        "money",
        {"currency": "USD"},
        "€12",
        "currency_mismatch",
        id="money-euro-for-usd",
    ),
    pytest.param(
        "money",
        {"currency": "USD"},
        "12 GBP",
        "currency_mismatch",
        id="money-code-mismatch",
    ),
    pytest.param(
        "money",
        {"currency": "EUR"},
        "$12",
        "currency_mismatch",
        id="money-dollar-for-eur",
    ),
    pytest.param(
        "money",
        {"currency": "EUR"},
        "1.200,50 EUR",
        "invalid_money",
        id="money-decimal-comma",
    ),
    pytest.param(
        "money",
        {"currency": "USD"},
        "12 dollars",
        "invalid_money",
        id="money-unknown-word",
    ),
    pytest.param(
        "money", {"currency": "USD"}, "$$12", "invalid_money", id="money-double-symbol"
    ),
    pytest.param("money", {}, "$12 EUR", "invalid_money", id="money-two-currencies"),
    pytest.param(
        "money",
        {"currency": "USD"},
        "($12.00",
        "invalid_money",
        id="money-open-parenthesis",
    ),
    pytest.param(
        "money", {"currency": "USD"}, "$1,20.00", "invalid_money", id="money-bad-groups"
    ),
    pytest.param(
        "money", {"currency": "USD"}, "12%", "invalid_money", id="money-percent"
    ),
    pytest.param(
        "money",
        {"currency": "USD", "minimum": 0},
        "($5.00)",
        "below_minimum",
        id="money-below-minimum",
    ),
]


@pytest.mark.parametrize(("field_type", "settings", "raw", "code"), REJECTED)
def test_convert_rejected(
    field_type: str, settings: dict[str, Any], raw: Any, code: str
) -> None:
    converter = compile_field(make_field(field_type, **dict(settings)))
    with pytest.raises(ValueProblem) as caught:
        converter(raw)
    assert caught.value.code == code
    assert caught.value.message == str(caught.value)
    if raw is not None and code != "required":
        assert repr(raw)[:40] in caught.value.message


# (field type, settings, raw value, text the message must contain)
MESSAGES = [
    pytest.param(
        "date", {}, "04/11/2026", "'%m/%d/%Y'", id="ambiguous-date-names-formats"
    ),
    pytest.param(
        "date",
        {"formats": ["%m/%d/%Y"]},
        "2026/11/04",
        "'%m/%d/%Y'",
        id="date-lists-formats",
    ),
    pytest.param("decimal", {}, "12%", "0.12", id="percent-explains"),
    pytest.param(
        "decimal", {}, "1.234,50", "decimal separator", id="decimal-comma-explains"
    ),
    pytest.param("decimal", {}, "$12", "money type", id="currency-suggests-money"),
    pytest.param(
        "enum", ENUM, "Clsoed Won", "did you mean 'Closed Won'", id="enum-did-you-mean"
    ),
    pytest.param(
        "enum",
        ENUM,
        "pending",
        "'Closed Won', 'Closed Lost', 'Open'",
        id="enum-lists-values",
    ),
    pytest.param(
        "money", {"currency": "USD"}, "€12", "EUR", id="mismatch-names-currency"
    ),
    pytest.param(
        "datetime",
        {"timezone": "Europe/London"},
        "2026-03-29 01:30",
        "Europe/London",
        id="gap-names-zone",
    ),
    pytest.param("duration", {}, "P1M", "months", id="duration-months-explains"),
    pytest.param(
        "integer", {"minimum": 0}, "-1", "minimum 0", id="minimum-names-bound"
    ),
    pytest.param(
        "decimal", {"maximum": 2.5}, "3", "maximum 2.5", id="maximum-names-bound"
    ),
    pytest.param(
        "string", {"pattern": "[A-Z]{3}"}, "ABCD", "'[A-Z]{3}'", id="pattern-named"
    ),
    pytest.param("string", {}, [1, 2], "list", id="wrong-type-names-kind"),
]


@pytest.mark.parametrize(("field_type", "settings", "raw", "fragment"), MESSAGES)
def test_problem_message_explains(
    field_type: str, settings: dict[str, Any], raw: Any, fragment: str
) -> None:
    with pytest.raises(ValueProblem) as caught:
        convert(field_type, raw, **dict(settings))
    assert fragment in caught.value.message


def test_required_message_names_field() -> None:
    field = FieldPlan(name="client_code", type="string", owner="crm", required=True)
    with pytest.raises(ValueProblem) as caught:
        compile_field(field)("")
    assert "client_code" in caught.value.message


def test_value_problem_pickles() -> None:
    problem = ValueProblem("not_integer", "'1.5' is not a whole number")
    restored = pickle.loads(pickle.dumps(problem))
    assert isinstance(restored, ValueProblem)
    assert restored.code == "not_integer"
    assert restored.message == "'1.5' is not a whole number"


def test_value_problem_long_value_cut() -> None:
    raw = "x" * 500
    with pytest.raises(ValueProblem) as caught:
        convert("integer", raw)
    assert len(caught.value.message) < 300
    assert "'xxxx" in caught.value.message


def test_converter_reusable_after_problem() -> None:
    converter = compile_field(make_field("integer", minimum=0))
    with pytest.raises(ValueProblem):
        converter("-3")
    assert converter("3") == 3


def test_default_converted_once_to_type() -> None:
    converter = compile_field(
        make_field("money", currency="USD", normalize=[step("default", "0")])
    )
    assert converter("") == Decimal("0.00")
    assert converter(None) == Decimal("0.00")
    assert converter("$3") == Decimal("3.00")


def test_last_default_wins() -> None:
    converter = compile_field(
        make_field("string", normalize=[step("default", "a"), step("default", "b")])
    )
    assert converter(None) == "b"


# (field type, settings, text the FieldPlanError must contain)
INVALID_DEFINITIONS = [
    pytest.param("string", {"pattern": "[A-Z"}, "pattern", id="bad-pattern"),
    pytest.param(
        "string",
        {"normalize": [step("replace", {"pattern": "(", "with": ""})]},
        "regular expression",
        id="bad-replace-regex",
    ),
    pytest.param(
        "string",
        {"normalize": [step("replace", {"pattern": "(a)", "with": r"\2"})]},
        "replacement",
        id="bad-group-reference",
    ),
    pytest.param(
        "string",
        {"normalize": [step("replace", "x")]},
        "pattern",
        id="replace-not-mapping",
    ),
    pytest.param(
        "string",
        {"normalize": [step("replace", {"pattern": "a", "by": "b"})]},
        "'by'",
        id="replace-unknown-key",
    ),
    pytest.param(
        "string", {"normalize": [step("zero_pad", 0)]}, "width", id="zero-pad-zero"
    ),
    pytest.param(
        "string", {"normalize": [step("zero_pad", "5")]}, "width", id="zero-pad-text"
    ),
    pytest.param(
        "string", {"normalize": [step("map", [])]}, "mapping", id="map-not-mapping"
    ),
    pytest.param(
        "string",
        {"normalize": [step("map", {"A": 1, "a": 2})]},
        "different values",
        id="map-conflicting-keys",
    ),
    pytest.param("enum", {}, "values", id="enum-without-values"),
    pytest.param(
        "enum",
        {"values": ["A"], "synonyms": {"b": "B"}},
        "'B'",
        id="synonym-to-unknown",
    ),
    pytest.param(
        "enum",
        {"values": ["A", "B"], "synonyms": {"a": "B"}},
        "already",
        id="synonym-shadows-value",
    ),
    pytest.param(
        "datetime", {"timezone": "Mars/Olympus"}, "Mars/Olympus", id="unknown-zone"
    ),
    pytest.param("date", {"formats": ["%Q"]}, "%Q", id="unknown-directive"),
    pytest.param("string", {"minimum": 1}, "minimum", id="minimum-on-string"),
    pytest.param("integer", {"pattern": "[0-9]+"}, "pattern", id="pattern-on-integer"),
    pytest.param("duration", {"maximum": 8}, "maximum", id="maximum-on-duration"),
    pytest.param(
        "integer", {"minimum": 5, "maximum": 1}, "greater", id="minimum-above-maximum"
    ),
    pytest.param(
        "integer",
        {"normalize": [step("default", "abc")]},
        "default",
        id="invalid-default",
    ),
    pytest.param(
        "integer",
        {"minimum": 0, "normalize": [step("default", -1)]},
        "minimum",
        id="default-breaks-minimum",
    ),
    pytest.param("money", {"currency": "EURO"}, "ISO 4217", id="money-bad-currency"),
    pytest.param("decimal", {"scale": -1}, "scale", id="negative-scale"),
]


@pytest.mark.parametrize(("field_type", "settings", "fragment"), INVALID_DEFINITIONS)
def test_compile_field_rejects_definition(
    field_type: str, settings: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(FieldPlanError) as caught:
        compile_field(make_field(field_type, **dict(settings)))
    assert fragment in str(caught.value)
    assert "'f'" in str(caught.value)


def test_title_is_not_str_title() -> None:
    assert (
        convert("string", "they're here", normalize=[step("title")]) == "They're Here"
    )
    assert "they're here".title() == "They'Re Here"


# Canonical values of every type, with their stored JSON form.
JSON_FORMS = [
    pytest.param("string", "Acme \U0001f680", "Acme \U0001f680", id="string"),
    pytest.param("email", "Bob@example.com", "Bob@example.com", id="email"),
    pytest.param("url", "https://example.com/", "https://example.com/", id="url"),
    pytest.param("enum", "Closed Won", "Closed Won", id="enum"),
    pytest.param("integer", 1234, 1234, id="integer"),
    pytest.param("integer", 10**30, 10**30, id="integer-big"),
    pytest.param("decimal", Decimal("1234.50"), "1234.50", id="decimal"),
    pytest.param("decimal", Decimal("1E-7"), "0.0000001", id="decimal-small"),
    pytest.param(
        "decimal",
        Decimal("0.59999999999999997779553950749686919152736663818359375"),
        "0.59999999999999997779553950749686919152736663818359375",
        id="decimal-long",
    ),
    pytest.param("money", Decimal("-12.00"), "-12.00", id="money"),
    pytest.param("boolean", False, False, id="boolean"),
    pytest.param("date", dt.date(2026, 11, 4), "2026-11-04", id="date"),
    pytest.param(
        "datetime",
        dt.datetime(2026, 11, 4, 10, 0, tzinfo=GMT),
        "2026-11-04T10:00:00+00:00",
        id="datetime-london-winter",
    ),
    pytest.param(
        "datetime",
        dt.datetime(2026, 7, 4, 10, 0, tzinfo=BST),
        "2026-07-04T10:00:00+01:00",
        id="datetime-london-summer",
    ),
    pytest.param(
        "datetime",
        dt.datetime(2026, 3, 4, 21, 9, 29, 509000, tzinfo=UTC),
        "2026-03-04T21:09:29.509000+00:00",
        id="datetime-utc-ms",
    ),
    pytest.param(
        "duration", dt.timedelta(hours=1, minutes=30), "PT1H30M", id="duration"
    ),
    pytest.param("duration", dt.timedelta(0), "PT0S", id="duration-zero"),
    pytest.param(
        "duration", dt.timedelta(days=1, hours=2), "PT26H", id="duration-days-as-hours"
    ),
    pytest.param(
        "duration", dt.timedelta(seconds=2.5), "PT2.5S", id="duration-fraction"
    ),
    pytest.param(
        "duration",
        dt.timedelta(hours=1, seconds=1),
        "PT1H1S",
        id="duration-skips-zero-minutes",
    ),
    pytest.param(
        "duration", -dt.timedelta(minutes=90), "-PT1H30M", id="duration-negative"
    ),
    pytest.param("string", None, None, id="missing"),
]


@pytest.mark.parametrize(("field_type", "canonical", "stored"), JSON_FORMS)
def test_json_value_round_trip(field_type: str, canonical: Any, stored: Any) -> None:
    written = to_json_value(canonical)
    assert written == stored
    read_back = from_json_value(field_type, json.loads(json.dumps(written)))
    assert read_back == canonical
    assert type(read_back) is type(canonical)
    assert to_json_value(read_back) == stored


@pytest.mark.parametrize(
    ("field_type", "raw", "settings"),
    [
        pytest.param("string", "  x ", {"normalize": [step("trim")]}, id="string"),
        pytest.param("integer", "1,234", {}, id="integer"),
        pytest.param("decimal", "(1,234.5)", {"scale": 2}, id="decimal"),
        pytest.param("boolean", "yes", {}, id="boolean"),
        pytest.param("date", "11/04/2026", {"formats": ["%m/%d/%Y"]}, id="date"),
        pytest.param(
            "datetime", "2026-10-25 01:30", {"timezone": "Europe/London"}, id="datetime"
        ),
        pytest.param("duration", "1.50", {}, id="duration"),
        pytest.param("email", "A@B.example", {}, id="email"),
        pytest.param("url", "https://example.com", {}, id="url"),
        pytest.param("enum", "won", ENUM, id="enum"),
        pytest.param("money", "$1,200.50", {"currency": "USD"}, id="money"),
    ],
)
def test_converted_value_survives_json(
    field_type: str, raw: Any, settings: dict[str, Any]
) -> None:
    canonical = convert(field_type, raw, **dict(settings))
    stored = json.loads(json.dumps(to_json_value(canonical)))
    assert from_json_value(field_type, stored) == canonical
    assert to_json_value(from_json_value(field_type, stored)) == to_json_value(
        canonical
    )


@pytest.mark.parametrize(
    ("field_type", "stored"),
    [
        pytest.param("integer", "12", id="integer-as-text"),
        pytest.param("integer", True, id="integer-bool"),
        pytest.param("decimal", 1.5, id="decimal-float"),
        pytest.param("decimal", "abc", id="decimal-text"),
        pytest.param("boolean", "true", id="boolean-text"),
        pytest.param("date", "04/11/2026", id="date-slashed"),
        pytest.param("datetime", "2026-11-04T10:00:00", id="datetime-naive"),
        pytest.param("duration", "01:30:00", id="duration-clock"),
        pytest.param("string", 5, id="string-int"),
        pytest.param("colour", "red", id="unknown-type"),
    ],
)
def test_from_json_value_rejects(field_type: str, stored: Any) -> None:
    with pytest.raises(ValueError) as caught:
        from_json_value(field_type, stored)
    assert repr(stored) in str(caught.value) or repr(field_type) in str(caught.value)


def test_to_json_value_rejects_unknown() -> None:
    with pytest.raises(TypeError) as caught:
        to_json_value(object())
    assert "canonical" in str(caught.value)


def test_json_datetime_keeps_instant_across_zones() -> None:
    original = convert("datetime", "2026-10-25 01:30", timezone="Europe/London")
    restored = from_json_value("datetime", to_json_value(original))
    assert restored == original
    assert restored.utcoffset() == dt.timedelta(hours=1)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"real data file {path} is absent; it lives beside the repository in"
            " ../shared/realdata"
        )
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_clockify_export_converts() -> None:
    path = _require(
        REALDATA
        / "solidtime/resources/testfiles/clockify_time_entries_import_test_1.csv"
    )
    start = compile_field(
        make_field("datetime", formats=CLOCKIFY_FORMATS, timezone="America/New_York")
    )
    hours = compile_field(make_field("duration"))
    billable = compile_field(make_field("boolean"))
    email = compile_field(make_field("email"))
    rows = _read_csv(path)
    assert len(rows) == 2
    starts = [start(f"{row['Start Date']} {row['Start Time']}") for row in rows]
    ends = [start(f"{row['End Date']} {row['End Time']}") for row in rows]
    assert starts[1] == dt.datetime(2024, 3, 4, 10, 23, tzinfo=NEW_YORK)
    assert ends[1] == dt.datetime(2024, 3, 4, 11, 23, 1, tzinfo=NEW_YORK)
    for row, begin, end in zip(rows, starts, ends, strict=True):
        assert hours(row["Duration (h)"]) == end - begin
        assert hours(row["Duration (decimal)"]) == dt.timedelta(0)
        assert email(row["Email"]) == "peter.test@email.test"
    assert [billable(row["Billable"]) for row in rows] == [False, True]


def test_toggl_export_converts() -> None:
    path = _require(
        REALDATA / "solidtime/resources/testfiles/toggl_time_entries_import_test_1.csv"
    )
    day = compile_field(make_field("date"))
    hours = compile_field(make_field("duration"))
    amount = compile_field(make_field("money", currency="EUR"))
    rows = _read_csv(path)
    assert "User" in rows[0]
    assert [day(row["Start date"]) for row in rows] == [dt.date(2024, 3, 4)] * 2
    assert [hours(row["Duration"]) for row in rows] == [
        dt.timedelta(0),
        dt.timedelta(hours=1, seconds=1),
    ]
    assert [amount(row["Amount (EUR)"]) for row in rows] == [None, Decimal("111.11")]


def test_toggl_special_characters_kept() -> None:
    folder = REALDATA / "solidtime/resources/testfiles"
    path = _require(folder / "toggl_time_entries_import_test_2.csv")
    description = _read_csv(path)[0]["Description"]
    assert "\U0001f525" in description
    plain = compile_field(make_field("string"))
    cleaned = compile_field(make_field("string", normalize=[step("strip_invisible")]))
    assert plain(description) == description
    assert cleaned(description) == description


def _walk(node: Any, key: str | None = None):
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _walk(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child, key)
    else:
        yield key, node


def test_clickup_tasks_convert() -> None:
    path = _require(
        REALDATA / "integration-templates/integrations/clickup/tests/tasks.test.json"
    )
    pairs = list(_walk(json.loads(path.read_text(encoding="utf-8"))))
    name = compile_field(
        make_field("string", normalize=[step("strip_invisible"), step("trim")])
    )
    due = compile_field(make_field("datetime"))
    names = [value for key, value in pairs if key == "name" and isinstance(value, str)]
    dues = [value for key, value in pairs if key == "due_date"]
    assert any("\u200e" in value for value in names)
    cleaned = [name(value) for value in names]
    assert not any("\u200e" in value for value in cleaned if value)
    assert "Task 1" in cleaned
    assert any("\U0001f9e0" in value for value in cleaned if value)
    converted = [due(value) for value in dues]
    assert None in converted
    moments = [moment for moment in converted if moment is not None]
    assert moments
    assert all(moment.tzinfo is UTC and moment.year == 2026 for moment in moments)


def test_hubspot_deals_convert() -> None:
    hubspot = REALDATA / "integration-templates/integrations/hubspot"
    path = _require(hubspot / "tests/deals.test.json")
    mock = _require(hubspot / "mocks/nango/get/proxy/crm/v3/objects/deals/deals.json")
    pairs = list(_walk(json.loads(path.read_text(encoding="utf-8"))))
    mock_pairs = list(_walk(json.loads(mock.read_text(encoding="utf-8"))))
    probability = compile_field(make_field("decimal"))
    amount = compile_field(make_field("money", currency="USD"))
    created = compile_field(make_field("datetime"))
    long_texts = [
        value
        for key, value in mock_pairs
        if key == "hs_deal_stage_probability"
        and isinstance(value, str)
        and len(value) > 20
    ]
    assert long_texts
    for text in long_texts:
        assert to_json_value(probability(text)) == text
    amounts = [amount(v) for k, v in pairs if k == "amount"]
    assert None in amounts
    assert Decimal("5000.00") in amounts
    assert all(value is None or value.as_tuple().exponent == -2 for value in amounts)
    moments = [created(v) for k, v in pairs if k == "createdate"]
    assert moments
    assert all(moment.tzinfo is UTC for moment in moments)
