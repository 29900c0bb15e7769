"""Converters of integer, decimal and money fields.

Text is read with ``.`` as the decimal point. The thousands separator is ``,``
(or a space, a non-breaking space or a thin space) and must group digits by
three. So "12,34" is rejected instead of being read as 1234, because it is more
likely a decimal comma. "(12.00)" is the accounting form of -12.00.

Decimals are exact: a long decimal string is kept digit for digit unless the field
declares ``scale``, and quantizing rounds half up (0.125 -> 0.13), the rounding
people expect of invoices and reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from runtime.values.problems import (
    FieldPlanError,
    ValueProblem,
    is_container,
    show,
    wrong_type,
)

Converter = Callable[[Any], Any]

_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GROUPED_NUMBER = re.compile(
    r"[+-]?[0-9]{1,3}([, \u00a0\u2009\u202f])[0-9]{3}(?:\1[0-9]{3})*(?:\.[0-9]+)?"
)
_GROUP_SEPARATORS = str.maketrans("", "", ", \u00a0\u2009\u202f")
_DECIMAL_COMMA = re.compile(
    r"[+-]?[0-9]{1,3}(?:\.[0-9]{3})*,[0-9]+|[+-]?[0-9]+,[0-9]{1,2}"
)

# Precision for quantizing; wide enough that no business amount is cut, while
# amounts beyond it are rejected instead of silently rounded.
_QUANTIZE_CONTEXT = Context(prec=60)
_MAX_INTEGER_DIGITS = 100
_ONE = Decimal(1)


def parse_number_text(text: str) -> Decimal | None:
    """Return the Decimal written in ``text``, or None when it is not a number.

    Accepts an optional sign, thousands separators grouping by three, an exponent
    on ungrouped numbers, and parentheses for a negative amount.
    """
    if _PLAIN_NUMBER.fullmatch(text):
        return Decimal(text)
    if _GROUPED_NUMBER.fullmatch(text):
        return Decimal(text.translate(_GROUP_SEPARATORS))
    if len(text) > 2 and text[0] == "(" and text[-1] == ")":
        inner = text[1:-1].strip()
        if inner[:1] in ("+", "-"):
            return None
        number = parse_number_text(inner)
        return None if number is None else -number
    return None


def _plain_decimal(text: str) -> Decimal | None:
    """Return the Decimal of a plain number such as "-12.50" or "1e3", else None.

    ``Decimal()`` alone is the fast path. It also reads NaN and Infinity, which the
    finiteness test turns away, and underscores between digits, which are
    excluded before the call.
    """
    if "_" in text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _number_hint(text: str) -> str:
    if "%" in text:
        return (
            "percentages are not read as numbers; store 12% as 0.12, or remove the"
            " sign with a replace normalizer if the field holds percent points"
        )
    if _DECIMAL_COMMA.fullmatch(text):
        return (
            "the decimal separator must be '.'; convert a decimal comma with replace"
            " normalizers (remove '.', then replace ',' with '.')"
        )
    if any(not (char.isdigit() or char in "+-.,() eE") for char in text):
        return "remove currency signs and units, or use the money type for amounts"
    return ""


def _integral(number: Decimal, value: Any) -> int:
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueProblem(
            "not_integer",
            f"{show(value)} is not a whole number; expected an integer such as 1234,"
            " -5 or 1,234",
        )
    if number.adjusted() >= _MAX_INTEGER_DIGITS:
        raise ValueProblem(
            "not_integer",
            f"{show(value)} has more than {_MAX_INTEGER_DIGITS} digits; expected an"
            " integer of sensible size",
        )
    return int(number)


def parse_integer(value: Any) -> int:
    """Return an int from an int, an integral float or Decimal, or integer text."""
    cls = value.__class__
    if cls is int:
        return value
    if cls is str:
        text = value.strip()
        if "_" not in text:
            try:
                return int(text)
            except ValueError:
                pass
        number = parse_number_text(text)
        if number is None:
            hint = (
                _number_hint(text)
                or "expected an integer such as 1234, -5, +5 or 1,234"
            )
            raise ValueProblem(
                "not_integer", f"{show(value)} is not an integer; {hint}"
            )
        return _integral(number, value)
    if cls is bool:
        raise ValueProblem("not_integer", f"{show(value)} is a boolean, not an integer")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueProblem(
            "not_integer", f"{show(value)} is not a whole number; expected an integer"
        )
    if isinstance(value, Decimal):
        return _integral(value, value)
    if is_container(value):
        raise wrong_type(value, "an integer")
    raise ValueProblem(
        "not_integer", f"{show(value)} of type {cls.__name__} is not an integer"
    )


def make_integer() -> Converter:
    return parse_integer


def _to_decimal(value: Any, code: str, label: str) -> Decimal:
    """Read an int, float, Decimal or number text as an unrounded Decimal."""
    cls = value.__class__
    if cls is str:
        text = value.strip()
        number = _plain_decimal(text)
        if number is not None:
            return number
        number = parse_number_text(text)
        if number is None:
            hint = (
                _number_hint(text)
                or f"expected {label} such as 1234.50, -0.5 or 1,234.50"
            )
            raise ValueProblem(code, f"{show(value)} is not a number; {hint}")
        return number
    if cls is Decimal:
        number = value
    elif cls is bool:
        raise ValueProblem(code, f"{show(value)} is a boolean, not a number")
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        # The shortest repr is the literal a JSON document contained; Decimal(float)
        # would instead expand the binary value (0.1 -> 0.1000000000000000055...).
        number = Decimal(repr(value))
    elif isinstance(value, Decimal):
        number = value
    elif is_container(value):
        raise wrong_type(value, label)
    else:
        raise ValueProblem(
            code, f"{show(value)} of type {cls.__name__} is not a number"
        )
    if not number.is_finite():
        raise ValueProblem(
            code, f"{show(value)} is not a finite number; expected {label}"
        )
    return number


def _make_finisher(scale: int | None, code: str) -> Callable[[Decimal, Any], Decimal]:
    """Build the step that quantizes to ``scale`` and writes zero without a sign."""
    if scale is None:

        def finish_exact(number: Decimal, value: Any) -> Decimal:
            if number.is_zero():
                return number.copy_abs()
            # adjusted() is cheap and rules out most numbers before the tuple is built.
            if number.adjusted() > 0 and number.as_tuple().exponent > 0:
                # 1E+3 becomes 1000, so stored text never needs exponent parsing.
                return _quantize(number, _ONE, value, code)
            return number

        return finish_exact

    quantum = _ONE.scaleb(-scale)

    def finish_scaled(number: Decimal, value: Any) -> Decimal:
        result = _quantize(number, quantum, value, code)
        if result.is_zero():
            return result.copy_abs()
        return result

    return finish_scaled


def _quantize(number: Decimal, quantum: Decimal, value: Any, code: str) -> Decimal:
    try:
        return number.quantize(quantum, ROUND_HALF_UP, _QUANTIZE_CONTEXT)
    except InvalidOperation as error:
        raise ValueProblem(
            code,
            f"{show(value)} is too large; expected at most {_QUANTIZE_CONTEXT.prec}"
            " significant digits",
        ) from error


def _check_scale(field_name: str, scale: int | None) -> None:
    if scale is not None and not 0 <= scale <= 30:
        raise FieldPlanError(
            f"field {field_name!r}: scale must be between 0 and 30, got {scale!r}"
        )


def make_decimal(field_name: str, scale: int | None) -> Converter:
    """Build the converter of a decimal field, exact or quantized to ``scale``."""
    _check_scale(field_name, scale)
    finish = _make_finisher(scale, "not_decimal")

    def parse_decimal(value: Any) -> Decimal:
        return finish(_to_decimal(value, "not_decimal", "a decimal number"), value)

    return parse_decimal


# Symbols and prefixed symbols, each with the ISO 4217 codes it can stand for.
# A "$" amount is accepted for any dollar or peso currency the field declares.
_DOLLAR_CODES = frozenset(
    {"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN", "TWD", "ARS", "CLP", "COP"}
)
_CURRENCY_SYMBOLS: dict[str, frozenset[str]] = {
    "$": _DOLLAR_CODES,
    "US$": frozenset({"USD"}),
    "C$": frozenset({"CAD"}),
    "CA$": frozenset({"CAD"}),
    "A$": frozenset({"AUD"}),
    "AU$": frozenset({"AUD"}),
    "NZ$": frozenset({"NZD"}),
    "HK$": frozenset({"HKD"}),
    "S$": frozenset({"SGD"}),
    "R$": frozenset({"BRL"}),
    "€": frozenset({"EUR"}),
    "£": frozenset({"GBP"}),
    "¥": frozenset({"JPY", "CNY"}),
    "₹": frozenset({"INR"}),
    "₩": frozenset({"KRW"}),
    "₽": frozenset({"RUB"}),
    "₺": frozenset({"TRY"}),
    "₪": frozenset({"ILS"}),
    "₫": frozenset({"VND"}),
    "₱": frozenset({"PHP"}),
    "₴": frozenset({"UAH"}),
    "₦": frozenset({"NGN"}),
    "฿": frozenset({"THB"}),
    "zł": frozenset({"PLN"}),
    "kr": frozenset({"SEK", "NOK", "DKK", "ISK"}),
    "Fr": frozenset({"CHF"}),
}
_CURRENCY_CODE = re.compile(r"[A-Za-z]{3}")
_MONEY = re.compile(
    r"(?P<open>\()?\s*(?P<sign1>[+-])?\s*(?P<before>[^\d\s()+\-.,]+)?\s*(?P<sign2>[+-])?\s*"
    r"(?P<amount>[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)\s*(?P<after>[^\d\s()+\-.,]+)?\s*(?P<close>\))?"
)
_MONEY_AMOUNT = re.compile(
    r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?"
)
_MONEY_FORMS = (
    "an amount such as 1200.50, 1,200.50, $1,200.50, 1200.50 USD or (12.00) for a"
    " negative amount, with ',' only as the thousands separator"
)


def _currency_codes(marker: str) -> frozenset[str] | None:
    if marker in _CURRENCY_SYMBOLS:
        return _CURRENCY_SYMBOLS[marker]
    if _CURRENCY_CODE.fullmatch(marker):
        return frozenset({marker.upper()})
    return None


def _parse_money_text(value: str, currency: str | None) -> Decimal:
    text = value.strip()
    match = _MONEY.fullmatch(text)
    if match is None:
        message = f"{show(value)} is not an amount; expected {_MONEY_FORMS}"
        if "%" in text or _DECIMAL_COMMA.search(text):
            message += f"; {_number_hint(text)}"
        raise ValueProblem("invalid_money", message)
    signs = [sign for sign in (match["sign1"], match["sign2"]) if sign]
    has_open, has_close = bool(match["open"]), bool(match["close"])
    if has_open != has_close or len(signs) > 1 or (signs and has_open):
        raise ValueProblem(
            "invalid_money",
            f"{show(value)} has unbalanced parentheses or two signs; expected"
            f" {_MONEY_FORMS}",
        )
    if not _MONEY_AMOUNT.fullmatch(match["amount"]):
        raise ValueProblem(
            "invalid_money",
            f"{show(value)} has misplaced thousands separators; expected"
            f" {_MONEY_FORMS}",
        )
    possible: frozenset[str] | None = None
    for marker in (match["before"], match["after"]):
        if marker is None:
            continue
        codes = _currency_codes(marker)
        if codes is None:
            raise ValueProblem(
                "invalid_money",
                f"{show(value)} contains {show(marker)}, which is not a known"
                f" currency symbol or ISO 4217 code; expected {_MONEY_FORMS}",
            )
        possible = codes if possible is None else possible & codes
        if not possible:
            raise ValueProblem(
                "invalid_money",
                f"{show(value)} names two different currencies; keep one marker",
            )
        if currency is not None and currency not in codes:
            found = "/".join(sorted(codes))
            raise ValueProblem(
                "currency_mismatch",
                f"{show(value)} is in {found}, but the field's currency is {currency};"
                " convert the amount before syncing or map it to a field of that"
                " currency",
            )
    amount = Decimal(match["amount"].replace(",", ""))
    if has_open or signs == ["-"]:
        amount = -amount
    return amount


def make_money(field_name: str, scale: int | None, currency: str | None) -> Converter:
    """Build the converter of a money field: an amount in the field's ``currency``.

    The scale defaults to 2 places. A currency symbol or ISO 4217 code may stand
    before or after the amount, and must agree with ``currency`` when that is set.
    """
    _check_scale(field_name, scale)
    if currency is not None:
        if not _CURRENCY_CODE.fullmatch(currency):
            raise FieldPlanError(
                f"field {field_name!r}: currency must be an ISO 4217 code such as"
                f" 'EUR', got {currency!r}"
            )
        currency = currency.upper()
    finish = _make_finisher(2 if scale is None else scale, "invalid_money")

    def parse_money(value: Any) -> Decimal:
        if value.__class__ is str:
            number = _plain_decimal(value.strip())
            if number is None:
                number = _parse_money_text(value, currency)
        else:
            number = _to_decimal(value, "invalid_money", "an amount")
        return finish(number, value)

    return parse_money
