"""A small formula evaluator so formula cells read back with a plausible value.

The emulator stores every formula verbatim (FORMULA render option returns it
unchanged).  Reading its value evaluates this subset of the Sheets language:

* number, string (``"..."``) and ``TRUE``/``FALSE`` literals;
* ``+ - * / ^ &``, unary minus, ``%`` suffix, comparisons ``= <> < > <= >=``;
* references ``A1``, ``A1:B3``, ``Sheet2!A1``, ``'My sheet'!A1:A``;
* functions SUM, MIN, MAX, AVERAGE, COUNT, COUNTA, ABS, ROUND, LEN, UPPER,
  LOWER, CONCATENATE, IF, AND, OR, NOT.

Anything else evaluates to Sheets' error values: ``#NAME?`` for an unknown
function (for example IMPORTXML or TODAY, which the emulator cannot compute),
``#ERROR!`` for text that does not parse, ``#DIV/0!``, ``#VALUE!``, and
``#REF!`` for a circular or invalid reference.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from . import a1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FormulaError:
    """A Sheets error value such as ``#DIV/0!``."""

    code: str

    def __str__(self) -> str:
        return self.code


Value = float | str | bool | FormulaError | None
# Return the effective values of a rectangle: (sheet title or None, bounds).
RangeReader = Callable[[str | None, a1.Bounds], list[list[Value]]]


class _Failure(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"]|"")*")
  | (?P<ref>(?:'(?:[^']|'')+'!|[A-Za-z_][A-Za-z0-9_.]*!)?
        (?:\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d*)?|\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3})
        (?![A-Za-z0-9_(]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><>|<=|>=|[-+*/^&=<>(),%:])
    """,
    re.VERBOSE,
)


def evaluate(formula: str, read_range: RangeReader) -> Value:
    """Evaluate ``formula`` (with its leading ``=``) and return its value."""
    try:
        tokens = _tokenize(formula[1:])
        parser = _Parser(tokens, read_range)
        result = parser.parse()
    except _Failure as failure:
        return FormulaError(failure.code)
    except RecursionError:
        return FormulaError("#REF!")
    if isinstance(result, list):
        return _first_of_range(result)
    return result


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise _Failure("#ERROR!")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(0)))
        position = match.end()
    return tokens


def _first_of_range(rows: list[list[Value]]) -> Value:
    if rows and rows[0]:
        return rows[0][0]
    return None


class _Parser:
    """Recursive-descent parser that evaluates while it parses."""

    def __init__(self, tokens: list[tuple[str, str]], read_range: RangeReader) -> None:
        self.tokens = tokens
        self.position = 0
        self.read_range = read_range

    def parse(self) -> Any:
        if not self.tokens:
            raise _Failure("#ERROR!")
        value = self.comparison()
        if self.position != len(self.tokens):
            raise _Failure("#ERROR!")
        return value

    def peek(self) -> str | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position][1]
        return None

    def take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise _Failure("#ERROR!")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def comparison(self) -> Any:
        left = self.concatenation()
        while self.peek() in ("=", "<>", "<", ">", "<=", ">="):
            operator = self.take()[1]
            right = self.concatenation()
            left = _compare(operator, _scalar(left), _scalar(right))
        return left

    def concatenation(self) -> Any:
        left = self.additive()
        while self.peek() == "&":
            self.take()
            right = self.additive()
            left = _to_text(_scalar(left)) + _to_text(_scalar(right))
        return left

    def additive(self) -> Any:
        left = self.multiplicative()
        while self.peek() in ("+", "-"):
            operator = self.take()[1]
            right = self.multiplicative()
            a, b = _to_number(_scalar(left)), _to_number(_scalar(right))
            left = a + b if operator == "+" else a - b
        return left

    def multiplicative(self) -> Any:
        left = self.power()
        while self.peek() in ("*", "/"):
            operator = self.take()[1]
            right = self.power()
            a, b = _to_number(_scalar(left)), _to_number(_scalar(right))
            if operator == "/" and b == 0:
                raise _Failure("#DIV/0!")
            left = a * b if operator == "*" else a / b
        return left

    def power(self) -> Any:
        base = self.unary()
        if self.peek() == "^":
            self.take()
            exponent = self.power()
            try:
                return math.pow(_to_number(_scalar(base)), _to_number(_scalar(exponent)))
            except (OverflowError, ValueError):
                raise _Failure("#NUM!") from None
        return base

    def unary(self) -> Any:
        if self.peek() == "-":
            self.take()
            return -_to_number(_scalar(self.unary()))
        if self.peek() == "+":
            self.take()
            return _to_number(_scalar(self.unary()))
        value = self.primary()
        while self.peek() == "%":
            self.take()
            value = _to_number(_scalar(value)) / 100
        return value

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "number":
            return float(text)
        if kind == "string":
            return text[1:-1].replace('""', '"')
        if kind == "ref":
            return self.reference(text)
        if kind == "name":
            return self.name(text)
        if text == "(":
            value = self.comparison()
            self.expect(")")
            return value
        raise _Failure("#ERROR!")

    def expect(self, text: str) -> None:
        if self.take()[1] != text:
            raise _Failure("#ERROR!")

    def reference(self, text: str) -> list[list[Value]]:
        try:
            reference = a1.parse_range(text)
        except ValueError:
            raise _Failure("#ERROR!") from None
        if reference.bounds is None:
            raise _Failure("#REF!")
        rows = self.read_range(reference.sheet, reference.bounds)
        for row in rows:
            for value in row:
                if isinstance(value, FormulaError):
                    raise _Failure(value.code)
        return rows

    def name(self, text: str) -> Any:
        upper = text.upper()
        if self.peek() != "(":
            if upper in ("TRUE", "FALSE"):
                return upper == "TRUE"
            raise _Failure("#NAME?")
        self.take()
        arguments = []
        if self.peek() != ")":
            arguments.append(self.comparison())
            while self.peek() == ",":
                self.take()
                arguments.append(self.comparison())
        self.expect(")")
        function = _FUNCTIONS.get(upper)
        if function is None:
            raise _Failure("#NAME?")
        return function(arguments)


def _scalar(value: Any) -> Value:
    if isinstance(value, list):
        return _first_of_range(value)
    return value


def _to_number(value: Value) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, FormulaError):
        raise _Failure(value.code)
    try:
        return float(value.replace(",", ""))
    except ValueError:
        raise _Failure("#VALUE!") from None


def _to_text(value: Value) -> str:
    from .numfmt import format_automatic

    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return format_automatic(value)
    return str(value)


def _compare(operator: str, left: Value, right: Value) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()
    elif isinstance(left, str) or isinstance(right, str):
        left, right = _to_text(left), _to_text(right)
    else:
        left, right = _to_number(left), _to_number(right)
    results = {
        "=": left == right,
        "<>": left != right,
        "<": left < right,
        ">": left > right,
        "<=": left <= right,
        ">=": left >= right,
    }
    return results[operator]


def _numbers(arguments: list[Any]) -> list[float]:
    """Collect numbers as Sheets aggregates do: text in ranges is skipped."""
    numbers = []
    for argument in arguments:
        if isinstance(argument, list):
            for row in argument:
                numbers.extend(
                    float(v) for v in row
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                )
        else:
            numbers.append(_to_number(argument))
    return numbers


def _values(arguments: list[Any]) -> list[Value]:
    values = []
    for argument in arguments:
        if isinstance(argument, list):
            values.extend(v for row in argument for v in row)
        else:
            values.append(argument)
    return values


def _average(arguments: list[Any]) -> float:
    numbers = _numbers(arguments)
    if not numbers:
        raise _Failure("#DIV/0!")
    return sum(numbers) / len(numbers)


def _count(arguments: list[Any]) -> float:
    return float(
        sum(1 for v in _values(arguments) if isinstance(v, float) and not isinstance(v, bool))
    )


def _round(arguments: list[Any]) -> float:
    if not 1 <= len(arguments) <= 2:
        raise _Failure("#N/A")
    value = _to_number(_scalar(arguments[0]))
    places = int(_to_number(_scalar(arguments[1]))) if len(arguments) == 2 else 0
    factor = 10**places
    # Sheets rounds halves away from zero, unlike Python's round().
    return math.floor(abs(value) * factor + 0.5) / factor * (1 if value >= 0 else -1)


def _if(arguments: list[Any]) -> Value:
    if not 2 <= len(arguments) <= 3:
        raise _Failure("#N/A")
    if _to_number(_scalar(arguments[0])):
        return _scalar(arguments[1])
    if len(arguments) == 3:
        return _scalar(arguments[2])
    return False


_FUNCTIONS: dict[str, Callable[[list[Any]], Value]] = {
    "SUM": lambda args: sum(_numbers(args)),
    "MIN": lambda args: min(_numbers(args), default=0.0),
    "MAX": lambda args: max(_numbers(args), default=0.0),
    "AVERAGE": _average,
    "COUNT": _count,
    "COUNTA": lambda args: float(sum(1 for v in _values(args) if v not in (None, ""))),
    "ABS": lambda args: abs(_to_number(_scalar(args[0]))) if len(args) == 1 else _raise("#N/A"),
    "ROUND": _round,
    "LEN": lambda args: float(len(_to_text(_scalar(args[0])))) if len(args) == 1 else _raise("#N/A"),
    "UPPER": lambda args: _to_text(_scalar(args[0])).upper() if len(args) == 1 else _raise("#N/A"),
    "LOWER": lambda args: _to_text(_scalar(args[0])).lower() if len(args) == 1 else _raise("#N/A"),
    "CONCATENATE": lambda args: "".join(_to_text(v) for v in _values(args)),
    "IF": _if,
    "AND": lambda args: all(_to_number(v) for v in _values(args) if v is not None),
    "OR": lambda args: any(_to_number(v) for v in _values(args) if v is not None),
    "NOT": lambda args: not _to_number(_scalar(args[0])) if len(args) == 1 else _raise("#N/A"),
}


def _raise(code: str) -> Value:
    raise _Failure(code)
