"""The two errors of value conversion.

``ValueProblem`` is raised per value at run time and becomes an error row (the
record goes on being reported, the run goes on). ``FieldPlanError`` is raised once,
when a field definition cannot be compiled, and means the plan itself is wrong.
"""

from __future__ import annotations

from typing import Any

_SHOWN_MAX_CHARS = 80


class ValueProblem(Exception):
    """A value that cannot become the field's canonical value.

    ``code`` is a stable identifier such as ``not_integer`` or ``required``;
    ``message`` names the offending value with ``!r`` and states the expected form.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ValueProblem], tuple[str, str]]:
        # Workers on another process (a task queue) unpickle errors; the default
        # reduction would call __init__ with the message alone.
        return (type(self), (self.code, self.message))

    def __repr__(self) -> str:
        return f"ValueProblem({self.code!r}, {self.message!r})"


class FieldPlanError(ValueError):
    """A field definition that cannot be compiled.

    The message names the field and the setting to fix.
    """


def show(value: Any) -> str:
    """Return ``repr(value)`` cut to a readable length for error messages."""
    text = repr(value)
    if len(text) > _SHOWN_MAX_CHARS:
        return text[: _SHOWN_MAX_CHARS - 3] + "..."
    return text


def wrong_type(value: Any, expected: str) -> ValueProblem:
    """Build the problem for a list or mapping given where one scalar is needed."""
    kind = type(value).__name__
    return ValueProblem(
        "wrong_type",
        f"{show(value)} is a {kind}, but {expected} is expected; map a single element"
        " (for example with a list index in the source path) instead of the whole"
        " value",
    )


def is_container(value: Any) -> bool:
    """Tell whether a value is a list, tuple, set or mapping rather than one scalar."""
    return isinstance(value, (list, tuple, set, frozenset, dict))
