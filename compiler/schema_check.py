"""Validate parsed spec files against ``schemas/`` and turn the errors into diagnostics.

jsonschema reports where an error is in the instance (its path) but not where that
is in the file, and for ``oneOf`` it reports that no branch matched instead of
what is wrong. This module adds both: each error is placed at the line and column
of its node (or of the offending key), and a ``oneOf`` failure is replaced by the
errors of the branch that has the instance's type.

Validating a large project with the pure-Python validator takes most of a
compile, so each file is first checked with ``jsonschema-rs`` (the same 2020-12
schemas, in Rust, about a hundred times faster). Only a file it finds invalid is
validated again with ``jsonschema`` and ``referencing``, whose errors carry what
the diagnostics need.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import schemas
from compiler.diagnostics import Diagnostic, choices_hint
from compiler.loader import LoadedFile, join_pointer

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


@cache
def _validator(name: str) -> Draft202012Validator:
    registry: Registry = Registry()
    for schema_name in schemas.ALL_SCHEMAS:
        resource = Resource.from_contents(schemas.load_schema(schema_name),
                                          default_specification=DRAFT202012)
        registry = registry.with_resource(schema_name, resource)
    return Draft202012Validator(
        schemas.load_schema(name),
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


_FAST_BASE = "https://syncplan.invalid/schemas/"


@cache
def _fast_validator(name: str) -> Any:
    registry = jsonschema_rs.Registry([(_FAST_BASE + schema_name,
                                        schemas.load_schema(schema_name))
                                       for schema_name in schemas.ALL_SCHEMAS])
    return jsonschema_rs.validator_for(schemas.load_schema(name), registry=registry,
                                       base_uri=_FAST_BASE + name,
                                       validate_formats=True)


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


@dataclass
class SchemaCheck:
    """The schema errors of one file, and the pointers of the nodes they are in."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    # Includes the node of an error that yields no diagnostic, so that the
    # checks after the schema never read it.
    broken: list[str] = field(default_factory=list)


def validate_spec_file(loaded: LoadedFile) -> SchemaCheck:
    """Validate one parsed spec file against ``spec.schema.json``."""
    if not isinstance(loaded.data, dict):
        line, column = loaded.positions.get("", (1, 1))
        found = json_type(loaded.data)
        diagnostic = Diagnostic("error", "E101",
                                f"a spec file must hold a mapping at the top, not"
                                f" {found}", loaded.path, line, column, "",
                                "start the file with keys such as 'version: 1',"
                                " 'systems:', 'entities:' or 'flows:'")
        return SchemaCheck([diagnostic], [""])
    if _fast_validator("spec.schema.json").is_valid(loaded.data):
        return SchemaCheck()
    found_errors: list[Diagnostic] = []
    broken: list[str] = []
    for error in _validator("spec.schema.json").iter_errors(loaded.data):
        diagnostics = list(_to_diagnostics(error, loaded))
        found_errors.extend(diagnostics)
        broken.extend([d.pointer for d in diagnostics] or [_pointer(error)])
    unique = {(d.line, d.column, d.code, d.message): d for d in found_errors}
    return SchemaCheck(sorted(unique.values(), key=Diagnostic.sort_key), broken)


def _pointer(error: ValidationError) -> str:
    pointer = ""
    for part in error.absolute_path:
        pointer = join_pointer(pointer, part)
    return pointer


def _place(loaded: LoadedFile, pointer: str, *, key: bool = False) -> tuple[int, int]:
    if key and pointer in loaded.key_positions:
        return loaded.key_positions[pointer]
    if pointer in loaded.positions:
        return loaded.positions[pointer]
    while pointer:
        pointer = pointer.rsplit("/", 1)[0]
        if pointer in loaded.positions:
            return loaded.positions[pointer]
    return loaded.positions.get("", (1, 1))


def _describe(pointer: str) -> str:
    return f"at {pointer!r}" if pointer else "at the top of the file"


def _to_diagnostics(error: ValidationError, loaded: LoadedFile) -> Iterator[Diagnostic]:
    pointer = _pointer(error)
    keyword = error.validator

    def make(code: str, message: str, hint: str | None, where: str = pointer,
             on_key: bool = False) -> Diagnostic:
        line, column = _place(loaded, where, key=on_key)
        return Diagnostic("error", code, message, loaded.path, line, column, where, hint)

    if "propertyNames" in error.schema_path:
        # jsonschema reports a bad name as an error of the name itself, with the
        # path of the object that contains it.
        name = str(error.instance)
        yield make("E105", f"invalid name {name!r} {_describe(pointer)}",
                   "use letters, digits and underscores, starting with a letter",
                   join_pointer(pointer, name), on_key=True)
        return
    if keyword in ("oneOf", "anyOf"):
        branch_errors = _best_branch(error)
        if branch_errors is None:
            expected = " or ".join(sorted(_branch_types(error.schema[keyword])))
            yield make("E101", f"{_describe(pointer)}: expected {expected}, found"
                       f" {json_type(error.instance)} {_short(error.instance)}",
                       "change the value to one of the expected types")
            return
        for sub in branch_errors:
            yield from _to_diagnostics(sub, loaded)
        return
    if keyword == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        if not allowed:
            return
        for name in error.instance:
            if name in allowed:
                continue
            where = join_pointer(pointer, name)
            yield make("E102", f"unknown key {name!r} {_describe(pointer)}",
                       choices_hint(name, allowed, "key"), where, on_key=True)
        return
    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        # Placed on the key that names the incomplete object ('clients:'), which
        # in block style is the line above the object's first key.
        yield make("E103", f"missing required key {missing!r} {_describe(pointer)}",
                   f"add '{missing}:' to this mapping" if pointer
                   else f"add '{missing}:' at the top of the file", on_key=True)
        return
    if keyword == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        yield make("E101", f"{_describe(pointer)}: expected {expected}, found"
                   f" {json_type(error.instance)} {_short(error.instance)}",
                   f"write {_article(expected)} here")
        return
    if keyword in ("enum", "const"):
        options = error.validator_value if keyword == "enum" else [error.validator_value]
        text_options = [str(option) for option in options]
        yield make("E104", f"{_short(error.instance)} is not allowed"
                   f" {_describe(pointer)}",
                   _enum_hint(error.instance, options, text_options))
        return
    yield make("E105", f"{_describe(pointer)}: {error.message}", _generic_hint(error))


def _enum_hint(value: Any, options: list[Any], text_options: list[str]) -> str:
    """Return a did-you-mean hint, or the type meant when ``'1'`` is written for 1."""
    for option, text in zip(options, text_options):
        if str(value) == text and json_type(value) != json_type(option):
            return (f"write {json.dumps(option)} as {_article(json_type(option))},"
                    f" not {_article(json_type(value))}; remove the quotes")
    return choices_hint(str(value), text_options, "value")


def _best_branch(error: ValidationError) -> list[ValidationError] | None:
    """Return the errors of the ``oneOf`` branch whose type fits the instance."""
    instance_type = json_type(error.instance)
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        branch = sub.schema_path[0] if sub.schema_path else 0
        by_branch.setdefault(branch, []).append(sub)
    for branch, errors in sorted(by_branch.items()):
        type_errors = [e for e in errors if e.validator == "type" and not e.path]
        if not type_errors:
            return errors
    if not by_branch:
        return None
    for branch, errors in sorted(by_branch.items()):
        schema = error.schema[error.validator][branch]
        declared = schema.get("type")
        if declared == instance_type or (declared == "number"
                                         and instance_type == "integer"):
            return errors
    return None


def _branch_types(branches: list[dict[str, Any]]) -> set[str]:
    types = set()
    for branch in branches:
        if "type" in branch:
            declared = branch["type"]
            types.update(declared if isinstance(declared, list) else [declared])
        elif "enum" in branch:
            types.add("one of " + ", ".join(repr(v) for v in branch["enum"]))
    return types or {"another value"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[:1] in "aeiou" else f"a {type_name}"


def _generic_hint(error: ValidationError) -> str:
    keyword = error.validator
    if keyword == "pattern":
        return f"the value must match the pattern {error.validator_value!r}"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"use a number within the allowed range ({keyword} {error.validator_value})"
    if keyword in ("minItems", "minProperties", "minLength"):
        return "add at least one entry" if keyword != "minLength" else "write a value"
    if keyword == "format":
        return f"write a valid {error.validator_value}"
    return "fix the value as the message says"
