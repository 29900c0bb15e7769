"""``compile_column``: a field's converter applied to a whole chunk of values at once.

``compile_column(field)`` returns a function from a list of raw values (one field,
many records) to the list of canonical values. That list equals, value for value
and type for type, what ``compile_field(field)`` returns for each element. The
function returns None instead when the chunk contains any value that it cannot
prove it converts identically, and that includes every value the per-value
converter rejects. The caller then converts that chunk per value, which also
produces the error messages.

The speed comes from passes over the whole chunk that run in C (``map`` over
builtins, one regular expression over the joined text, ``min`` and ``max`` for
the bounds) in place of a Python call per value. Each fast step either computes
exactly what the per-value step computes, or accepts a subset of the values that
step accepts and returns None for the rest.

Supported types: string, email, integer, decimal, money (plain amounts such as
"12.50"), date (ISO 8601 "YYYY-MM-DD" text and ``date`` values), boolean and
enum, with all normalizers and constraints. Boolean and enum results come from a
bounded memo of the per-value converter, because those fields have few distinct
raw spellings. For datetime, duration and url the returned function returns None
for every chunk.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from itertools import repeat
from operator import is_not
from typing import Any

from compiler.plan import FieldPlan
from runtime.values.constraints import Check, compile_checks
from runtime.values.fields import FieldConverter, compile_field
from runtime.values.normalizers import (
    TextStep,
    collapse_spaces,
    compile_normalizers,
    strip_invisible,
)

# Sharing the per-value converter's context keeps the "too many digits" rejection
# of quantizing identical.
from runtime.values.numbers import _QUANTIZE_CONTEXT
from runtime.values.problems import ValueProblem
from runtime.values.text import scalar_to_text

logger = logging.getLogger(__name__)

ColumnConverter = Callable[[list[Any]], list[Any] | None]
"""A converter of a chunk of raw values, returning None to request the slow path."""

TextsStep = Callable[[list[str]], list[str] | None]
"""A step over a list of texts, returning None when the chunk needs the slow path."""

PresentParser = Callable[[list[str]], list[Any] | None]
"""Parser of a non-empty list of present texts: normalized, and stripped for every
type except string."""

NativeConverter = Callable[[list[Any], set[type]], list[Any] | None]
"""Converter of a non-empty list of non-text values, given the set of their types."""

_SEPARATOR = "\x00"
_NONE_TYPE = type(None)
_STR_ONLY = frozenset({str})
# Types that ``scalar_to_text`` renders without raising ValueProblem.
_RENDERED_TYPES = frozenset({str, int, float, bool, Decimal})
# Keys of the memo. A value of one of these types never equals a value of
# another (True == 1, but int is not among them), so a dict lookup never returns
# the result of a different raw value.
_MEMO_KEY_TYPES = frozenset({str, bool, _NONE_TYPE})
_MEMO_MAX_ENTRIES = 4096
# Types whose hash never raises (a signaling-NaN Decimal's does) and whose values
# never equal None, so None can be looked up among them in a dict.
_HASHABLE_TYPES = frozenset({str, int, float, bool, dt.date})

# Steps that commute with joining: a str-to-str function whose result on
# "a\x00b" is its result on "a", then "\x00", then its result on "b". That holds
# when the step neither matches nor produces NUL and looks at no context beyond
# a NUL. collapse_spaces replaces runs of ``\s``, which excludes NUL.
# strip_invisible checks the character on each side of U+200D for an emoji, and
# NUL is not one.
_JOINABLE_STEPS: tuple[TextStep, ...] = (collapse_spaces, strip_invisible)

# An ASCII subset of the address syntax that text.parse_email accepts: every
# string this matches, that pattern matches too, with the same local part and
# domain. The possessive quantifiers prevent backtracking, and they can only make
# the pattern match fewer strings, never more. No part matches NUL, so a full
# match of the joined chunk proves that each element matches.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++"
_LABEL = r"[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+"
_PLAIN_EMAIL = rf"{_ATOM}(?:\.{_ATOM})*+@(?:{_LABEL}\.)++[A-Za-z]{{2,63}}+"
_PLAIN_EMAILS = re.compile(rf"{_PLAIN_EMAIL}(?:\x00{_PLAIN_EMAIL})*+")
# An address of at most 63 characters satisfies the length limits of parse_email
# (local part 64, domain label 63, whole address 254) without measuring its parts.
# Longer addresses take the slow path.
_PLAIN_EMAIL_MAX_CHARS = 63


# Markers: the field rejects missing values, a memo has no entry for a raw value,
# and the per-value converter rejected a raw value.
_REJECTED: Any = object()
_UNSEEN: Any = object()
_INVALID: Any = object()


def compile_column(field: FieldPlan) -> ColumnConverter:
    """Compile a field definition into a converter of whole chunks of raw values.

    The converter returns a new list equal to converting each element with
    ``compile_field(field)``, or None when any element needs that per-value
    converter. It does not raise ``ValueProblem``: a value it cannot handle makes
    it return None. This function raises ``FieldPlanError`` for a definition that
    ``compile_field`` rejects.
    """
    convert = compile_field(field)
    build = _BUILDERS.get(field.type)
    if build is None:
        logger.debug("field %r: no column fast path for type %s", field.name, field.type)
        return _use_per_value
    return build(field, convert)


def _use_per_value(chunk: list[Any]) -> list[Any] | None:
    return None


def _missing_result(convert: FieldConverter) -> Any:
    """Return what the field converts a missing value to, or ``_REJECTED``."""
    try:
        return convert(None)
    except ValueProblem:
        return _REJECTED


class _ChunkConverter:
    """Column converter of the types read from text.

    The chunk passes, in order: the split of None values, rendering numbers as
    text (text-like types only), the normalizers, stripping (every type except
    string), the split of blank texts, and ``parse`` on the present texts.
    Non-text values go to ``native`` instead.
    """

    __slots__ = ("_missing", "_native", "_parse", "_render", "_steps", "_strip")

    def __init__(
        self,
        *,
        steps: TextsStep | None,
        strip: bool,
        parse: PresentParser,
        native: NativeConverter | None,
        render: bool,
        missing: Any,
    ) -> None:
        self._steps = steps
        self._strip = strip
        self._parse = parse
        self._native = native
        self._render = render
        self._missing = missing

    def __call__(self, chunk: list[Any]) -> list[Any] | None:
        if not chunk:
            return []
        kinds = set(map(type, chunk))
        if _NONE_TYPE in kinds:
            return self._convert_with_none(chunk, kinds)
        return self._convert_present(chunk, kinds)

    def _convert_with_none(self, chunk: list[Any], kinds: set[type]) -> list[Any] | None:
        missing = self._missing
        if missing is _REJECTED:
            return None
        kinds.discard(_NONE_TYPE)
        if not kinds:
            return [missing] * len(chunk)
        if kinds <= _HASHABLE_TYPES:
            return _fill_and_restore(chunk, None, missing, self._convert_present, kinds)
        present = [value for value in chunk if value is not None]
        converted = self._convert_present(present, kinds)
        if converted is None:
            return None
        take = iter(converted).__next__
        return [missing if value is None else take() for value in chunk]

    def _convert_present(self, values: list[Any], kinds: set[type]) -> list[Any] | None:
        if kinds == _STR_ONLY:
            return self._convert_texts(values)
        if self._render and kinds <= _RENDERED_TYPES:
            try:
                texts = list(map(scalar_to_text, values))
            except (ValueError, ValueProblem):
                # ValueError: an int beyond the interpreter's digit limit for str().
                return None
            return self._convert_texts(texts)
        if self._native is not None:
            return self._native(values, kinds)
        return None

    def _convert_texts(self, texts: list[str]) -> list[Any] | None:
        if self._steps is not None:
            texts = self._steps(texts)
            if texts is None:
                return None
        if self._strip:
            # Blank after stripping is exactly "empty or isspace()", the missing
            # test of these types, and every parser of them strips first anyway.
            texts = list(map(str.strip, texts))
        if "" not in texts:
            return self._parse(texts)
        return self._convert_with_blanks(texts)

    def _convert_with_blanks(self, texts: list[str]) -> list[Any] | None:
        missing = self._missing
        if missing is _REJECTED:
            return None
        if not any(texts):
            return [missing] * len(texts)
        return _fill_and_restore(texts, "", missing, self._parse)


def _fill_and_restore(
    values: list[Any],
    absent: Any,
    missing: Any,
    convert: Callable[..., list[Any] | None],
    *args: Any,
) -> list[Any] | None:
    """Convert ``values`` with ``missing`` as the result wherever ``absent`` is.

    ``values`` must contain at least one other value. Each ``absent`` is first
    replaced by a copy of the first other value, so the chunk keeps its set of
    distinct values and every check over the whole chunk decides as it would on
    the present values alone. The results of the copies are then replaced by
    ``missing``. Both passes are ``dict.get`` calls run by ``map``, in C.
    """
    stand_in = next(filter(partial(is_not, absent), values))
    filled = list(map({absent: stand_in}.get, values, values))
    converted = convert(filled, *args)
    if converted is None:
        return None
    return list(map({absent: missing}.get, values, converted))


class _MemoColumn:
    """Column converter that stores the per-value converter's result per raw value.

    Exact by construction: every result is what the per-value converter returned
    for an equal raw value of the same type, and a rejected value is stored as
    rejected. The memo is cleared when it would exceed ``_MEMO_MAX_ENTRIES``.
    """

    __slots__ = ("_convert", "_results")

    def __init__(self, convert: FieldConverter) -> None:
        self._convert = convert
        self._results: dict[Any, Any] = {}

    def __call__(self, chunk: list[Any]) -> list[Any] | None:
        if not chunk:
            return []
        if not set(map(type, chunk)) <= _MEMO_KEY_TYPES:
            return None
        lookup = self._results.get
        converted = list(map(lookup, chunk, repeat(_UNSEEN)))
        if _UNSEEN in converted:
            if not self._learn(chunk):
                return None
            converted = list(map(lookup, chunk, repeat(_UNSEEN)))
            if _UNSEEN in converted:
                # Another thread cleared the memo in between.
                return None
        if _INVALID in converted:
            return None
        return converted

    def _learn(self, chunk: list[Any]) -> bool:
        results = self._results
        unseen = set(chunk).difference(results)
        if len(results) + len(unseen) > _MEMO_MAX_ENTRIES:
            results.clear()
            unseen = set(chunk)
            if len(unseen) > _MEMO_MAX_ENTRIES:
                return False
        convert = self._convert
        for raw in unseen:
            try:
                results[raw] = convert(raw)
            except ValueProblem:
                results[raw] = _INVALID
        return True


def _compile_texts_steps(field: FieldPlan) -> TextsStep | None:
    """Compile the field's normalizers into one step over a list of texts."""
    # NOTE: compile_field already compiled these, so a warning about an ignored
    # normalizer argument is logged a second time here.
    steps, _default = compile_normalizers(field.name, field.normalize)
    ops = [normalizer.op for normalizer in field.normalize if normalizer.op != "default"]
    chunk_steps = [_texts_step(op, step) for op, step in zip(ops, steps, strict=True)]
    if not chunk_steps:
        return None

    def apply_steps(texts: list[str]) -> list[str] | None:
        for chunk_step in chunk_steps:
            result = chunk_step(texts)
            if result is None:
                return None
            texts = result
        return texts

    return apply_steps


def _texts_step(op: str, step: TextStep) -> TextsStep:
    if step in _JOINABLE_STEPS:
        return _joined_step(step)
    if op == "map":
        return _map_step(step)

    def apply_each(texts: list[str]) -> list[str]:
        return list(map(step, texts))

    return apply_each


def _joined_step(step: TextStep) -> TextsStep:
    def apply_joined(texts: list[str]) -> list[str]:
        joined = _SEPARATOR.join(texts)
        if joined.count(_SEPARATOR) != len(texts) - 1:
            # A text contains NUL itself, so splitting would misalign the chunk.
            return list(map(step, texts))
        return step(joined).split(_SEPARATOR)

    return apply_joined


def _map_step(step: TextStep) -> TextsStep:
    # A map entry may turn text into a number or null, and the per-value converter
    # then skips the later steps, so such chunks take the slow path.
    def apply_map(texts: list[str]) -> list[str] | None:
        mapped = list(map(step, texts))
        if set(map(type, mapped)) <= _STR_ONLY:
            return mapped
        return None

    return apply_map


def _compile_text_checks(field: FieldPlan) -> Callable[[list[str]], bool] | None:
    """Compile pattern, min_length and max_length into one test of a list of values."""
    tests: list[Callable[[list[str]], bool]] = []
    if field.pattern is not None:
        fullmatch = re.compile(field.pattern).fullmatch

        def all_match(values: list[str]) -> bool:
            return None not in map(fullmatch, values)

        tests.append(all_match)
    min_length = field.min_length
    if min_length is not None:

        def none_shorter(values: list[str]) -> bool:
            return min(map(len, values)) >= min_length

        tests.append(none_shorter)
    max_length = field.max_length
    if max_length is not None:

        def none_longer(values: list[str]) -> bool:
            return max(map(len, values)) <= max_length

        tests.append(none_longer)
    if not tests:
        return None

    def all_pass(values: list[str]) -> bool:
        return all(test(values) for test in tests)

    return all_pass


def _checked_texts(
    convert: Callable[[list[str]], list[str] | None],
    passes: Callable[[list[str]], bool] | None,
) -> PresentParser:
    def parse_checked(texts: list[str]) -> list[str] | None:
        values = convert(texts)
        if values is None or (passes is not None and not passes(values)):
            return None
        return values

    return parse_checked


def _copy_texts(texts: list[str]) -> list[str]:
    # A copy, because without normalizers the list is the caller's chunk.
    return list(texts)


def _parse_emails(texts: list[str]) -> list[str] | None:
    if max(map(len, texts)) > _PLAIN_EMAIL_MAX_CHARS:
        return None
    joined = _SEPARATOR.join(texts)
    if _PLAIN_EMAILS.fullmatch(joined) is None:
        return None
    if joined.islower():
        return texts
    # The local part keeps its case and the domain is lowered, as in parse_email.
    # Each text contains exactly one "@", so partition splits it like the pattern.
    return [
        f"{local}@{domain.lower()}"
        for local, _at, domain in map(str.partition, texts, repeat("@"))
    ]


def _within_bounds(check: Check | None, numbers: list[Any]) -> bool:
    """Tell whether every number passes the field's minimum and maximum.

    Valid because constraints.py gives number types only these two checks, and
    both are monotone: when the smallest and the largest pass, all pass.
    """
    if check is None or not numbers:
        return True
    try:
        check(min(numbers), None)
        check(max(numbers), None)
    except ValueProblem:
        return False
    return True


def _integer_parsers(check: Check | None) -> tuple[PresentParser, NativeConverter]:
    def parse_integers(texts: list[str]) -> list[int] | None:
        # parse_integer tries int() first on any text without "_", so where int()
        # succeeds its result is the per-value result; the rest takes the slow path.
        if "_" in "".join(texts):
            return None
        try:
            numbers = list(map(int, texts))
        except ValueError:
            return None
        return numbers if _within_bounds(check, numbers) else None

    def convert_ints(values: list[Any], kinds: set[type]) -> list[int] | None:
        if kinds != {int}:
            return None
        numbers = list(values)
        return numbers if _within_bounds(check, numbers) else None

    return parse_integers, convert_ints


def _decimal_parsers(
    scale: int | None, check: Check | None
) -> tuple[PresentParser, NativeConverter]:
    """Build the parsers of decimal text and of ints, quantized to ``scale``."""
    quantum = None if scale is None else Decimal(1).scaleb(-scale)

    def finish(numbers: list[Decimal], may_be_negative: bool) -> list[Decimal] | None:
        if quantum is not None:
            try:
                numbers = list(
                    map(
                        Decimal.quantize,
                        numbers,
                        repeat(quantum),
                        repeat(ROUND_HALF_UP),
                        repeat(_QUANTIZE_CONTEXT),
                    )
                )
            except InvalidOperation:
                return None
        if may_be_negative:
            # Zero is canonical without a sign: "-0.00" becomes "0.00".
            numbers = [number if number else number.copy_abs() for number in numbers]
        return numbers if _within_bounds(check, numbers) else None

    def parse_decimals(texts: list[str]) -> list[Decimal] | None:
        joined = "".join(texts)
        if "_" in joined:
            return None
        # Without a scale, an exponent such as "1e3" needs rewriting to 1000.
        if quantum is None and ("e" in joined or "E" in joined):
            return None
        try:
            numbers = list(map(Decimal, texts))
        except InvalidOperation:
            return None
        if not all(map(Decimal.is_finite, numbers)):
            return None
        # Decimal() accepts only an ASCII "-" as the minus sign.
        return finish(numbers, "-" in joined)

    def convert_ints(values: list[Any], kinds: set[type]) -> list[Decimal] | None:
        if kinds != {int}:
            return None
        return finish(list(map(Decimal, values)), False)

    return parse_decimals, convert_ints


def _parse_dates(texts: list[str]) -> list[dt.date] | None:
    # Exactly the first branch of the date converter: ten characters with "-" at
    # index 4, read by date.fromisoformat. Other forms take the slow path.
    if set(map(len, texts)) != {10}:
        return None
    if "".join(texts)[4::10] != "-" * len(texts):
        return None
    try:
        return list(map(dt.date.fromisoformat, texts))
    except ValueError:
        return None


def _convert_dates(values: list[Any], kinds: set[type]) -> list[dt.date] | None:
    # datetime is a subclass of date but a different type, so it is not accepted.
    return list(values) if kinds == {dt.date} else None


def _build_string(field: FieldPlan, convert: FieldConverter) -> ColumnConverter:
    return _ChunkConverter(
        steps=_compile_texts_steps(field),
        strip=False,
        parse=_checked_texts(_copy_texts, _compile_text_checks(field)),
        native=None,
        render=True,
        missing=_missing_result(convert),
    )


def _build_email(field: FieldPlan, convert: FieldConverter) -> ColumnConverter:
    return _ChunkConverter(
        steps=_compile_texts_steps(field),
        strip=True,
        parse=_checked_texts(_parse_emails, _compile_text_checks(field)),
        native=None,
        render=True,
        missing=_missing_result(convert),
    )


def _build_integer(field: FieldPlan, convert: FieldConverter) -> ColumnConverter:
    parse, native = _integer_parsers(compile_checks(field))
    return _ChunkConverter(
        steps=_compile_texts_steps(field),
        strip=True,
        parse=parse,
        native=native,
        render=False,
        missing=_missing_result(convert),
    )


def _build_decimal(field: FieldPlan, convert: FieldConverter) -> ColumnConverter:
    # Money text that Decimal() reads is parsed like decimal text, and only the
    # default scale differs. Amounts with currency markers take the slow path.
    scale = field.scale
    if field.type == "money" and scale is None:
        scale = 2
    parse, native = _decimal_parsers(scale, compile_checks(field))
    return _ChunkConverter(
        steps=_compile_texts_steps(field),
        strip=True,
        parse=parse,
        native=native,
        render=False,
        missing=_missing_result(convert),
    )


def _build_date(field: FieldPlan, convert: FieldConverter) -> ColumnConverter:
    return _ChunkConverter(
        steps=_compile_texts_steps(field),
        strip=True,
        parse=_parse_dates,
        native=_convert_dates,
        render=False,
        missing=_missing_result(convert),
    )


def _build_memo(field: FieldPlan, convert: FieldConverter) -> ColumnConverter:
    return _MemoColumn(convert)


_BUILDERS: dict[str, Callable[[FieldPlan, FieldConverter], ColumnConverter]] = {
    "string": _build_string,
    "email": _build_email,
    "integer": _build_integer,
    "decimal": _build_decimal,
    "money": _build_decimal,
    "date": _build_date,
    "boolean": _build_memo,
    "enum": _build_memo,
}
