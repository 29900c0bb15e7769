"""``compile_field``: one field definition compiled into a fast converter.

The converter runs, per value: the normalizers (in declared order, on text), the
missing check, type conversion, then the constraints. A value is missing when it
is None or empty text after the normalizers. For every type except string,
whitespace-only text is missing too, because the converters of the other types
ignore surrounding whitespace anyway. A missing value becomes the ``default``
normalizer's value when one is declared. Otherwise it raises ``required`` for a
required field and is None for an optional one.

For the text-like types (string, email, url, enum) a number or boolean from a
JSON source is first rendered as text, so that its normalizers apply to it
(``zero_pad`` on the JSON number 42 gives "00042"). For the other types,
non-text values skip the normalizers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from compiler.plan import FieldPlan
from runtime.values import numbers, temporal, text
from runtime.values.constraints import TEXT_TYPES, Check, compile_checks
from runtime.values.normalizers import NO_DEFAULT, TextStep, compile_normalizers
from runtime.values.problems import FieldPlanError, ValueProblem

logger = logging.getLogger(__name__)

FieldConverter = Callable[[Any], Any]

# Settings that only one group of types reads; set elsewhere they are ignored.
_SETTING_TYPES = {
    "scale": {"decimal", "money"},
    "values": {"enum"},
    "synonyms": {"enum"},
    "currency": {"money"},
    "formats": {"date", "datetime"},
    "timezone": {"date", "datetime"},
}


def _make_parser(field: FieldPlan) -> FieldConverter:
    kind = field.type
    if kind == "string":
        return text.make_string()
    if kind == "integer":
        return numbers.make_integer()
    if kind == "decimal":
        return numbers.make_decimal(field.name, field.scale)
    if kind == "boolean":
        return text.make_boolean()
    if kind == "date":
        return temporal.make_date(field.name, field.formats, field.timezone)
    if kind == "datetime":
        return temporal.make_datetime(field.name, field.formats, field.timezone)
    if kind == "duration":
        return temporal.make_duration()
    if kind == "email":
        return text.make_email()
    if kind == "url":
        return text.make_url()
    if kind == "enum":
        return text.make_enum(field.name, field.values, field.synonyms)
    if kind == "money":
        return numbers.make_money(field.name, field.scale, field.currency)
    raise FieldPlanError(f"field {field.name!r}: unknown type {kind!r}")


def _warn_unused_settings(field: FieldPlan) -> None:
    for setting, types in _SETTING_TYPES.items():
        if getattr(field, setting) is not None and field.type not in types:
            logger.warning(
                "field %r: setting %r has no effect on a %s field",
                field.name,
                setting,
                field.type,
            )


def _make_missing(field: FieldPlan, default: Any) -> Callable[[], Any]:
    if default is not NO_DEFAULT and default is not None:
        return lambda: default
    if field.required:
        message = (
            f"a value is required for field {field.name!r}, but it is missing or empty"
        )

        def reject_missing() -> Any:
            raise ValueProblem("required", message)

        return reject_missing
    return lambda: None


def _convert_default(
    field: FieldPlan, raw_default: Any, parse: FieldConverter, check: Check | None
) -> Any:
    if raw_default is NO_DEFAULT or raw_default is None:
        return raw_default
    try:
        value = parse(raw_default)
        if check is not None:
            check(value, raw_default)
    except ValueProblem as problem:
        raise FieldPlanError(
            f"field {field.name!r}: the default {raw_default!r} is not a valid"
            f" {field.type}: {problem.message}"
        ) from problem
    return value


def compile_field(field: FieldPlan) -> FieldConverter:
    """Compile a field definition into a converter from raw value to canonical value.

    The converter raises ``ValueProblem`` for a value it cannot accept. This
    function raises ``FieldPlanError`` for a definition it cannot compile (an
    invalid regular expression, time zone, default or misplaced constraint).
    """
    _warn_unused_settings(field)
    steps, raw_default = compile_normalizers(field.name, field.normalize)
    parse = _make_parser(field)
    check = compile_checks(field)
    default = _convert_default(field, raw_default, parse, check)
    missing = _make_missing(field, default)
    render = text.scalar_to_text if field.type in TEXT_TYPES else None
    blank_is_missing = field.type != "string"
    return _assemble(steps, render, blank_is_missing, missing, parse, check)


def _assemble(
    steps: tuple[TextStep, ...],
    render: Callable[[Any], str] | None,
    blank_is_missing: bool,
    missing: Callable[[], Any],
    parse: FieldConverter,
    check: Check | None,
) -> FieldConverter:
    # The closures below are the per-value hot path: no lookups of the field
    # definition, and the common case (text in, no constraints) takes few branches.
    def convert(raw: Any) -> Any:
        value = raw
        if value.__class__ is not str:
            if value is None:
                return missing()
            if render is not None:
                value = render(value)
        if steps and value.__class__ is str:
            for step in steps:
                value = step(value)
                if value.__class__ is not str:
                    break
        if value is None:
            return missing()
        if value.__class__ is str and (
            not value or (blank_is_missing and value.isspace())
        ):
            return missing()
        result = parse(value)
        if check is not None:
            check(result, raw)
        return result

    return convert
