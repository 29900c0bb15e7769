"""The template and filter language of specs: Jinja2 in its sandbox.

The compiler parses every template with this environment to check it, and the
runtime compiles each template once per plan load with the same environment, so a
template that passes ``syncplan validate`` means the same thing when it runs.
Undefined names raise (``StrictUndefined``) instead of rendering as empty text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Names a template may use. ``record`` is the source record (or, in ``derived``
# fields, the entity record being built); ``flow`` and ``run`` describe the run.
TEMPLATE_VARIABLES = frozenset({"record", "flow", "run", "now"})


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def week_start(value: Any) -> dt.date:
    """Return the Monday of the ISO week containing ``value``."""
    day = _as_date(value)
    return day - dt.timedelta(days=day.weekday())


def iso_week(value: Any) -> str:
    """Return the ISO week of ``value`` as ``YYYY-Www``."""
    year, week, _ = _as_date(value).isocalendar()
    return f"{year}-W{week:02d}"


def first(value: Any, default: Any = None) -> Any:
    """Return the first item of a list, or ``default`` for an empty or missing one."""
    if isinstance(value, (list, tuple)) and value:
        return value[0]
    return default


FILTERS = {"week_start": week_start, "iso_week": iso_week, "first_or": first}


def make_environment() -> ImmutableSandboxedEnvironment:
    """Create the sandboxed environment every spec template is parsed and run in."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters.update(FILTERS)
    return env
