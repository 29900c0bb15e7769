"""Check Jinja2 templates and filter expressions of a spec before they ever run.

A template must parse in the sandboxed environment the runtime uses, may name only
the variables the runtime provides, and, when the source's fields are known, may
read only fields that exist (``record.summray`` is caught here, not at 3 a.m.).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.parser import Parser

from compiler.diagnostics import did_you_mean
from compiler.plan.expressions import FILTERS, TEMPLATE_VARIABLES, make_environment

_ENV = make_environment()


@dataclass(frozen=True)
class TemplateProblem:
    code: str
    message: str
    hint: str


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def check_template(text: str, record_fields: Collection[str] | None, *,
                   expression: bool = False,
                   record_source: str = "the source") -> list[TemplateProblem]:
    """Return the problems of one template (or, with ``expression``, a filter).

    ``record_source`` names what ``record`` is in messages, such as "the source"
    or "entity 'client'".
    """
    subject = "expression" if expression else "template"
    analysed = _analyse_fast(text, expression)
    if isinstance(analysed, list):
        return list(analysed)
    undeclared, record_reads = analysed
    problems: list[TemplateProblem] = []
    for name in sorted(undeclared - TEMPLATE_VARIABLES):
        hint = did_you_mean(name, TEMPLATE_VARIABLES) or (
            f"the variables are {', '.join(sorted(TEMPLATE_VARIABLES))}; source fields"
            f" are read as record.NAME")
        problems.append(TemplateProblem(
            "E403", f"{subject} {text!r} names the unknown variable {name!r}", hint))
    if record_fields is not None:
        for field in sorted(record_reads - set(record_fields)):
            hint = did_you_mean(field, record_fields) or (
                f"{record_source} has the fields "
                + ", ".join(sorted(record_fields)[:20]))
            problems.append(TemplateProblem(
                "E403", f"{subject} {text!r} reads record.{field}, which"
                f" {record_source} does not have", hint))
    return problems


_SIMPLE_TEMPLATE = re.compile(
    r"(?:[^{]|\{(?![{%#]))*"
    r"(?:\{\{\s*record\.[A-Za-z_]\w*(?:\s*\|\s*[A-Za-z_]\w*)*\s*\}\}"
    r"(?:[^{]|\{(?![{%#]))*)*")
_SIMPLE_READ = re.compile(r"\{\{\s*record\.([A-Za-z_]\w*)((?:\s*\|\s*[A-Za-z_]\w*)*)")
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _analyse_fast(text: str, expression: bool
                  ) -> list[TemplateProblem] | tuple[frozenset[str], frozenset[str]]:
    """Analyse a template, skipping the Jinja2 parser where the answer is certain.

    Large projects repeat the same shapes: interpolations such as
    ``{{ record.name | trim }}`` between plain text, and filters that differ only
    in their string constants. The first are read with a regular expression;
    the second share one parse, because constants change neither the names a
    template reads nor whether it parses. Any problem is reported from a parse of
    the exact text, so messages quote what the user wrote.
    """
    if not expression and _SIMPLE_TEMPLATE.fullmatch(text):
        reads = set()
        for match in _SIMPLE_READ.finditer(text):
            reads.add(match.group(1))
            filters = [name.strip() for name in match.group(2).split("|")[1:]]
            if any(name not in _ENV.filters for name in filters):
                return _analyse(text, expression)
        return frozenset({"record"}), frozenset(reads)
    if expression:
        shape = _STRING_LITERAL.sub("''", text)
        analysed = _analyse(shape, expression)
        if not isinstance(analysed, list):
            return analysed
    return _analyse(text, expression)


@lru_cache(maxsize=8192)
def _analyse(text: str, expression: bool
             ) -> list[TemplateProblem] | tuple[frozenset[str], frozenset[str]]:
    """Parse a template once per distinct text.

    Returns its syntax problems, or the names it reads without defining them and
    the fields it reads from ``record``.
    """
    subject = "expression" if expression else "template"
    try:
        tree = _parse_expression(text) if expression else _ENV.parse(text)
    except TemplateSyntaxError as exc:
        return [TemplateProblem("E402",
                                f"{subject} {text!r} does not parse: {exc.message}",
                                "check brackets, quotes and operators; the language is"
                                " Jinja2")]
    problems = _unknown_filters_and_tests(text, tree, subject)
    if problems:
        # Jinja2 cannot analyse a template that names an unknown filter or test.
        return problems
    if all(isinstance(node, nodes.Output) for node in tree.body):
        # Only output expressions: no statement can define a name, so every name
        # read is undeclared. This walk is much cheaper than the code generator
        # that meta.find_undeclared_variables runs.
        undeclared = {node.name for node in tree.find_all(nodes.Name)}
    else:
        try:
            undeclared = meta.find_undeclared_variables(tree)
        except TemplateSyntaxError as exc:  # TemplateAssertionError from codegen
            return [TemplateProblem("E402", f"{subject} {text!r} does not compile:"
                                    f" {exc.message}", "fix the template; the"
                                    " language is Jinja2")]
    return frozenset(undeclared), frozenset(_record_fields_read(tree))


def _parse_expression(text: str) -> nodes.Template:
    """Parse a filter expression the way ``Environment.compile_expression`` does.

    The runtime compiles filters with ``compile_expression``, so the compiler
    must accept exactly what it accepts: no wrapping in ``{{ }}``, which would
    let ``a) or (b`` through and reject nothing for an empty expression.
    """
    parser = Parser(_ENV, text, state="variable")
    expression = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("unexpected text after the expression",
                                  parser.stream.current.lineno)
    tree = nodes.Template([nodes.Output([expression])], lineno=1)
    tree.set_environment(_ENV)
    return tree


def _unknown_filters_and_tests(text: str, tree: nodes.Template,
                               subject: str) -> list[TemplateProblem]:
    problems = []
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        is_filter = isinstance(node, nodes.Filter)
        known = _ENV.filters if is_filter else _ENV.tests
        if node.name in known:
            continue
        kind = "filter" if is_filter else "test"
        hint = did_you_mean(node.name, known)
        if hint is None and is_filter:
            hint = ("use a Jinja2 built-in filter or one of syncplan's: "
                    + ", ".join(sorted(FILTERS)))
        elif hint is None:
            hint = "use a Jinja2 built-in test, such as 'none', 'defined' or 'number'"
        problems.append(TemplateProblem(
            "E402", f"{subject} {text!r} uses the unknown {kind} {node.name!r}", hint))
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
