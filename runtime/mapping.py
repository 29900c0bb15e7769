"""Compile a flow's field mappings into getters, once per plan load.

A path mapping becomes a small closure over the path, a template is compiled once in the sandbox,
and a lookup becomes a dict built once per run. The per-record work is then one
call per field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import TemplateError, nodes

from compiler.plan import FieldSource, make_environment
from runtime.values import to_json_value

Getter = Callable[[Mapping[str, Any]], Any]

_ENV = make_environment()


class MappingProblem(Exception):
    """A mapping could not produce a value (a template failed, say).

    ``raw`` is the input the mapping failed on, shown in the Errors tab: the
    value a lookup searched for, or the record fields a template read.
    """

    def __init__(self, code: str, message: str, raw: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.raw = raw


def record_fields(tree: nodes.Node) -> list[str]:
    """Return the names of the ``record`` fields a parsed template reads, in order.

    Only the first step counts (``record.lead.email`` reads ``lead``), and a
    subscript counts when its key is a constant string (``record['Close Date']``).
    """
    names: list[str] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node.node, nodes.Name) or node.node.name != "record":
            continue
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            name = node.arg.value
        else:
            continue
        if name not in names:
            names.append(name)
    return names


def template_inputs(record: Mapping[str, Any], names: list[str]) -> str | None:
    """Return the record fields a template read as JSON text, or None for none."""
    if not names:
        return None
    shown = {name: _shown_value(record.get(name)) for name in names}
    return json.dumps(shown, ensure_ascii=False, default=str)


def _shown_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(name): _shown_value(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown_value(item) for item in value]
    return to_json_value(value)


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
    names = record_fields(_ENV.parse(text))
    base = dict(context)

    def render(record: Mapping[str, Any]) -> Any:
        try:
            return template.render({**base, "record": record})
        except (TemplateError, TypeError, ValueError, ArithmeticError,
                LookupError) as exc:
            raise MappingProblem("template_failed",
                                 f"template {text!r} failed: {exc}",
                                 template_inputs(record, names)) from None

    return render


def compile_expression(text: str, context: Mapping[str, Any]) -> Callable[[Any], bool]:
    """Return a predicate for a filter expression."""
    expression = _ENV.compile_expression(text, undefined_to_none=False)
    try:
        names = record_fields(_ENV.parse("{{ " + text + " }}"))
    except TemplateError:  # a "}}" inside the expression; the raw value stays empty
        names = []
    base = dict(context)

    def test(record: Mapping[str, Any]) -> bool:
        try:
            return bool(expression(**base, record=record))
        except (TemplateError, TypeError, ValueError, ArithmeticError,
                LookupError) as exc:
            raise MappingProblem("filter_failed",
                                 f"filter {text!r} failed: {exc}",
                                 template_inputs(record, names)) from None

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
