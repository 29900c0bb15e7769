"""Compile a flow's field mappings into getters, once per plan load.

A path mapping becomes a small closure over the path, a template is compiled once in the sandbox,
and a lookup becomes a dict built once per run. The per-record work is then one
call per field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import TemplateError

from compiler.plan import FieldSource, make_environment

Getter = Callable[[Mapping[str, Any]], Any]

_ENV = make_environment()


class MappingProblem(Exception):
    """A mapping could not produce a value (a template failed, say)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def compile_path(path: list[str | int]) -> Getter:
    """Return a getter for a path; a missing step gives None, never an error."""
    if len(path) == 1 and isinstance(path[0], str):
        key = path[0]

        def get_one(record: Mapping[str, Any]) -> Any:
            return record.get(key)

        return get_one

    steps = tuple(path)

    def get_deep(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for step in steps:
            if isinstance(step, int) and isinstance(value, list):
                value = value[step] if -len(value) <= step < len(value) else None
            elif isinstance(value, Mapping):
                value = value.get(step if isinstance(step, str) else str(step))
            else:
                return None
            if value is None:
                return None
        return value

    return get_deep


def compile_template(text: str, context: Mapping[str, Any]) -> Getter:
    """Return a getter that renders ``text`` with the record as ``record``."""
    template = _ENV.from_string(text)
    base = dict(context)

    def render(record: Mapping[str, Any]) -> Any:
        try:
            return template.render({**base, "record": record})
        except TemplateError as exc:
            raise MappingProblem("template_failed",
                                 f"template {text!r} failed: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise MappingProblem("template_failed",
                                 f"template {text!r} failed: {exc}") from None

    return render


def compile_expression(text: str, context: Mapping[str, Any]) -> Callable[[Any], bool]:
    """Return a predicate for a filter expression."""
    expression = _ENV.compile_expression(text, undefined_to_none=False)
    base = dict(context)

    def test(record: Mapping[str, Any]) -> bool:
        try:
            return bool(expression(**base, record=record))
        except TemplateError as exc:
            raise MappingProblem("filter_failed",
                                 f"filter {text!r} failed: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise MappingProblem("filter_failed",
                                 f"filter {text!r} failed: {exc}") from None

    return test


def compile_source(source: FieldSource, context: Mapping[str, Any]) -> Getter:
    """Return the getter of a path, template or constant mapping."""
    if source.kind == "path":
        return compile_path(list(source.path or []))
    if source.kind == "template":
        return compile_template(source.template or "", context)
    if source.kind == "value":
        constant = source.value
        return lambda record: constant
    raise ValueError(f"lookups are compiled by the pipeline, not {source.kind!r}")
