"""Check Jinja2 templates and filter expressions of a spec before they ever run.

A template must parse in the sandboxed environment the runtime uses, may name only
the variables the runtime provides, and, when the source's fields are known, may
read only fields that exist (``record.summray`` is caught here, not at 3 a.m.).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes

from compiler.diagnostics import did_you_mean
from compiler.plan.expressions import TEMPLATE_VARIABLES, make_environment

_ENV = make_environment()


@dataclass(frozen=True)
class TemplateProblem:
    code: str
    message: str
    hint: str


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def check_template(text: str, record_fields: Collection[str] | None, *,
                   expression: bool = False) -> list[TemplateProblem]:
    """Return the problems of one template (or, with ``expression``, a filter)."""
    source = "{{ (" + text + ") }}" if expression else text
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        what = "expression" if expression else "template"
        return [TemplateProblem("E402", f"{what} {text!r} does not parse: {exc.message}",
                                "check brackets, quotes and operators; the language is"
                                " Jinja2")]
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree) - TEMPLATE_VARIABLES):
        hint = did_you_mean(name, TEMPLATE_VARIABLES) or (
            f"the variables are {', '.join(sorted(TEMPLATE_VARIABLES))}; source fields"
            f" are read as record.NAME")
        problems.append(TemplateProblem(
            "E403", f"template {text!r} names the unknown variable {name!r}", hint))
    if record_fields is not None:
        for field in sorted(_record_fields_read(tree) - set(record_fields)):
            hint = did_you_mean(field, record_fields) or (
                "the source has the fields " + ", ".join(sorted(record_fields)[:20]))
            problems.append(TemplateProblem(
                "E403", f"template {text!r} reads record.{field}, which the source does"
                " not have", hint))
    return problems


def _record_fields_read(tree: nodes.Template) -> set[str]:
    """Return the names read directly from ``record`` (``record.x``, ``record['x']``)."""
    names: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == "record"):
            continue
        if isinstance(node, nodes.Getattr):
            names.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            names.add(node.arg.value)
    return names
