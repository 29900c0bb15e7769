"""Constraints checked on a field's canonical value, after type conversion.

``minimum`` and ``maximum`` apply to integer, decimal and money fields and are
inclusive. ``pattern``, ``min_length`` and ``max_length`` apply to the text-like
types (string, email, url, enum).

The pattern must match the whole value (``re.fullmatch``). JSON Schema's
``pattern`` searches instead, but here "[A-Z]{3}" rejects "ABCD" with or without
``^...$`` anchors. A constraint set on a type it cannot apply to raises
``FieldPlanError`` instead of being ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from compiler.plan import FieldPlan
from runtime.values.problems import FieldPlanError, ValueProblem, show

Check = Callable[[Any, Any], None]
"""A check of ``(canonical value, raw value)`` that raises ``ValueProblem``."""

NUMBER_TYPES = frozenset({"integer", "decimal", "money"})
TEXT_TYPES = frozenset({"string", "email", "url", "enum"})


def _bound(number: float) -> Decimal:
    # repr gives the literal the spec contained, so minimum 0.1 is exactly 0.1.
    return Decimal(repr(number)).normalize() if number else Decimal(0)


def _shown_bound(bound: Decimal) -> str:
    return format(bound, "f")


def _minimum_check(minimum: float, field_type: str) -> Check:
    bound: Decimal | int = _bound(minimum)
    shown = _shown_bound(bound)
    if field_type == "integer":
        # int against int is several times faster than int against Decimal, and
        # "n >= 2.5" is "n >= 3" for whole numbers.
        bound = math.ceil(bound)

    def check_minimum(value: Any, raw: Any) -> None:
        if value < bound:
            raise ValueProblem(
                "below_minimum", f"{show(raw)} is below the minimum {shown}"
            )

    return check_minimum


def _maximum_check(maximum: float, field_type: str) -> Check:
    bound: Decimal | int = _bound(maximum)
    shown = _shown_bound(bound)
    if field_type == "integer":
        bound = math.floor(bound)

    def check_maximum(value: Any, raw: Any) -> None:
        if value > bound:
            raise ValueProblem(
                "above_maximum", f"{show(raw)} is above the maximum {shown}"
            )

    return check_maximum


def _pattern_check(field_name: str, pattern: str) -> Check:
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise FieldPlanError(
            f"field {field_name!r}: pattern {pattern!r} is not a valid regular"
            f" expression: {error}"
        ) from error
    fullmatch = compiled.fullmatch

    def check_pattern(value: Any, raw: Any) -> None:
        if fullmatch(value) is None:
            raise ValueProblem(
                "pattern_mismatch",
                f"{show(raw)} does not match the pattern {pattern!r}, which must match"
                " the whole value",
            )

    return check_pattern


def _min_length_check(min_length: int) -> Check:
    def check_min_length(value: Any, raw: Any) -> None:
        if len(value) < min_length:
            raise ValueProblem(
                "too_short",
                f"{show(raw)} has {len(value)} characters, fewer than the minimum"
                f" length {min_length}",
            )

    return check_min_length


def _max_length_check(max_length: int) -> Check:
    def check_max_length(value: Any, raw: Any) -> None:
        if len(value) > max_length:
            raise ValueProblem(
                "too_long",
                f"{show(raw)} has {len(value)} characters, more than the maximum"
                f" length {max_length}",
            )

    return check_max_length


def _reject_misplaced(field: FieldPlan) -> None:
    if field.type not in NUMBER_TYPES:
        for name in ("minimum", "maximum"):
            if getattr(field, name) is not None:
                raise FieldPlanError(
                    f"field {field.name!r}: {name} applies to integer, decimal and"
                    f" money fields, not to {field.type}; remove it or change the type"
                )
    if field.type not in TEXT_TYPES:
        for name in ("pattern", "min_length", "max_length"):
            if getattr(field, name) is not None:
                raise FieldPlanError(
                    f"field {field.name!r}: {name} applies to string, email, url and"
                    f" enum fields, not to {field.type}; remove it or change the type"
                )
    if (
        field.minimum is not None
        and field.maximum is not None
        and field.minimum > field.maximum
    ):
        raise FieldPlanError(
            f"field {field.name!r}: minimum {field.minimum} is greater than maximum"
            f" {field.maximum}"
        )


def compile_checks(field: FieldPlan) -> Check | None:
    """Compile the field's constraints into one check, or None when it has none."""
    _reject_misplaced(field)
    checks: list[Check] = []
    if field.minimum is not None:
        checks.append(_minimum_check(field.minimum, field.type))
    if field.maximum is not None:
        checks.append(_maximum_check(field.maximum, field.type))
    if field.pattern is not None:
        checks.append(_pattern_check(field.name, field.pattern))
    if field.min_length is not None:
        checks.append(_min_length_check(field.min_length))
    if field.max_length is not None:
        checks.append(_max_length_check(field.max_length))
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    steps = tuple(checks)

    def check_all(value: Any, raw: Any) -> None:
        for step in steps:
            step(value, raw)

    return check_all
