"""Validate five-field cron expressions, as a ``schedule`` trigger writes them.

The fields are minute, hour, day of month, month and day of week, separated by
whitespace. Each field is a comma-separated list of items, and an item is ``*``,
a number, a range ``a-b`` or either of those with a step ``/n``. Months also
take the names JAN to DEC, and days of week SUN to SAT, in any case. Day of
week 7 is Sunday, as 0 is. Macros such as ``@daily`` and the seconds or year
fields of other cron dialects are rejected, so that every scheduler the plan is
handed to reads the expression the same way.

Only the form is checked here. A valid expression can still never fire (such
as ``0 0 31 2 *``), which standard cron also accepts.
"""

from __future__ import annotations

from typing import NamedTuple


class CronField(NamedTuple):
    name: str
    low: int
    high: int
    names: dict[str, int]


_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_FIELDS = (
    CronField("minute", 0, 59, {}),
    CronField("hour", 0, 23, {}),
    CronField("day of month", 1, 31, {}),
    CronField("month", 1, 12, {name: number for number, name
                               in enumerate(_MONTH_NAMES, start=1)}),
    CronField("day of week", 0, 7, {name: number for number, name
                                    in enumerate(_DAY_NAMES)}),
)
CRON_HINT = ("write five fields: minute (0-59), hour (0-23), day of month (1-31),"
             " month (1-12 or JAN-DEC) and day of week (0-7 or SUN-SAT), such as"
             " '0 6 * * MON-FRI'")


def cron_problem(expression: str) -> str | None:
    """Return what is wrong with a cron expression, or None when it is valid."""
    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        return f"it has {len(parts)} fields, not {len(CRON_FIELDS)}"
    for part, field in zip(parts, CRON_FIELDS, strict=True):
        for item in part.split(","):
            problem = _item_problem(item, field)
            if problem:
                return problem
    return None


def _item_problem(item: str, field: CronField) -> str | None:
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return f"the {field.name} step {step!r} is not a whole number above 0"
    if base == "*":
        return None
    bounds = base.split("-")
    if len(bounds) > 2:
        return f"the {field.name} item {item!r} is not a number, range or '*'"
    numbers = []
    for bound in bounds:
        number = _value(bound, field)
        if number is None:
            return f"the {field.name} item {item!r} is not a number, range or '*'"
        if not field.low <= number <= field.high:
            return (f"the {field.name} {bound!r} in {item!r} is outside"
                    f" {field.low}-{field.high}")
        numbers.append(number)
    if len(numbers) == 2 and numbers[0] > numbers[1]:
        return f"the {field.name} range {item!r} runs backwards"
    return None


def _value(text: str, field: CronField) -> int | None:
    if text.isascii() and text.isdigit():
        return int(text)
    return field.names.get(text.lower())
