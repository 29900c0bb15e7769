"""Converters of the text-like types (string, email, url, enum) and of boolean.

Each ``make_*`` function builds, once per field, a converter that takes a present
value (not missing, normalizers already applied) and returns the canonical value
or raises ``ValueProblem``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from runtime.values.problems import (
    FieldPlanError,
    ValueProblem,
    is_container,
    show,
    wrong_type,
)

Converter = Callable[[Any], Any]


def scalar_to_text(value: Any) -> str:
    """Render a number, boolean or date from a JSON or ICS source as field text.

    Integral floats lose their ``.0`` because they are almost always identifiers
    that passed through a spreadsheet or a JSON decoder.
    """
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if is_container(value):
        raise wrong_type(value, "text")
    raise ValueProblem(
        "wrong_type",
        f"{show(value)} of type {type(value).__name__} cannot be read as text",
    )


def _as_text(value: Any) -> str:
    if value.__class__ is str:
        return value
    return scalar_to_text(value)


def make_string() -> Converter:
    return _as_text


# An atom of the local part: RFC 5322 "atext", widened to any non-ASCII letter
# as RFC 6531 allows for internationalized addresses.
_EMAIL_ATOM = r"[^\s@\"(),.:;<>\[\]\\]+"
_DOMAIN_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_TOP_LEVEL = r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})"
_EMAIL = re.compile(
    rf"(?P<local>{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*)@(?P<domain>(?:{_DOMAIN_LABEL}\.)+{_TOP_LEVEL})",
    re.IGNORECASE,
)
_EMAIL_MAX_CHARS = 254
_LOCAL_PART_MAX_CHARS = 64


def parse_email(value: Any) -> str:
    """Return the trimmed address without ``mailto:``, its domain in lower case.

    The local part keeps its case, because RFC 5321 lets the receiving server treat
    it as case-sensitive.
    """
    text = _as_text(value).strip()
    if text[:7].lower() == "mailto:":
        # Calendar ORGANIZER and ATTENDEE values are mailto: URIs.
        text = text[7:]
    match = _EMAIL.fullmatch(text)
    if (
        match is None
        or len(text) > _EMAIL_MAX_CHARS
        or len(match.group("local")) > _LOCAL_PART_MAX_CHARS
    ):
        raise ValueProblem(
            "invalid_email",
            f"{show(value)} is not a valid email address; expected one address such as"
            " 'name@example.com' with no spaces or display name",
        )
    return f"{match.group('local')}@{match.group('domain').lower()}"


def make_email() -> Converter:
    return parse_email


_URL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


def parse_url(value: Any) -> str:
    """Return the URL trimmed, after checking its http(s) scheme, host and port."""
    text = _as_text(value).strip()
    expected = "expected an absolute http:// or https:// URL such as 'https://example.com/path'"
    if _URL_FORBIDDEN.search(text):
        raise ValueProblem(
            "invalid_url",
            f"{show(value)} contains whitespace or control characters; {expected}"
            " with spaces written as %20",
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - reading it validates the port, raising ValueError
    except ValueError as error:
        raise ValueProblem(
            "invalid_url", f"{show(value)} is not a valid URL ({error}); {expected}"
        ) from error
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueProblem(
            "invalid_url", f"{show(value)} has no http or https scheme; {expected}"
        )
    if not parts.hostname:
        raise ValueProblem("invalid_url", f"{show(value)} has no host; {expected}")
    return text


def make_url() -> Converter:
    return parse_url


def make_enum(
    field_name: str, values: list[str] | None, synonyms: dict[str, str] | None
) -> Converter:
    """Build the converter of an enum field.

    Values and synonyms match ignoring case and surrounding spaces.
    """
    if not values:
        raise FieldPlanError(
            f"field {field_name!r}: an enum field needs a non-empty 'values' list"
        )
    lookup: dict[str, str] = {}
    for canonical in values:
        lookup[canonical.strip().casefold()] = canonical
    for synonym, canonical in (synonyms or {}).items():
        if canonical not in values:
            raise FieldPlanError(
                f"field {field_name!r}: synonym {synonym!r} maps to {canonical!r},"
                f" which is not one of the values {values!r}"
            )
        folded = synonym.strip().casefold()
        if lookup.get(folded, canonical) != canonical:
            raise FieldPlanError(
                f"field {field_name!r}: synonym {synonym!r} is already the value or"
                f" synonym of {lookup[folded]!r}; remove one of them"
            )
        lookup[folded] = canonical
    allowed = ", ".join(repr(value) for value in values)
    candidates = list(lookup)
    find = lookup.get

    def parse_enum(value: Any) -> str:
        text = _as_text(value)
        canonical = find(text.strip().casefold())
        if canonical is not None:
            return canonical
        close = difflib.get_close_matches(
            text.strip().casefold(), candidates, n=1, cutoff=0.6
        )
        suggestion = f"did you mean {lookup[close[0]]!r}? " if close else ""
        raise ValueProblem(
            "invalid_enum",
            f"{show(value)} is not an allowed value; {suggestion}expected one of"
            f" {allowed} (or add it to the field's synonyms)",
        )

    return parse_enum


_BOOLEAN_WORDS = {
    "true": True,
    "t": True,
    "yes": True,
    "y": True,
    "on": True,
    "1": True,
    "false": False,
    "f": False,
    "no": False,
    "n": False,
    "off": False,
    "0": False,
}


def parse_boolean(value: Any) -> bool:
    """Return a bool from a bool, 0 or 1, or text such as yes/no in any case."""
    if value.__class__ is bool:
        return value
    if isinstance(value, str):
        flag = _BOOLEAN_WORDS.get(value.strip().lower())
        if flag is not None:
            return flag
    elif isinstance(value, (int, float, Decimal)) and value in (0, 1):
        return bool(value)
    elif is_container(value):
        raise wrong_type(value, "a boolean")
    raise ValueProblem(
        "not_boolean",
        f"{show(value)} is not a boolean; expected one of true/false, yes/no, y/n,"
        " on/off, t/f or 1/0 (any case), or add a map normalizer for this spelling",
    )


def make_boolean() -> Converter:
    return parse_boolean
