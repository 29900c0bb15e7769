"""Check a loaded plan for what plan.schema.json cannot: the names it links.

The schema checks the shape of each value. A hand-edited plan can still name a
system, entity, field or flow that it does not define, give a destination a
key without a column, or carry a template or time zone that does not parse.
The runtime would find those only part-way through a run, as an internal
error. ``link_problems`` finds them when the plan is loaded, each with the
JSON pointer of the value at fault.

The rules are those the compiler applies to a spec (``compiler.analyze``),
restated for the plan's own form. A plan the compiler wrote passes them.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

import schemas
from compiler.catalog import (
    CONSTRAINT_TYPES,
    FORMAT_HINT,
    KINDS,
    constraint_types_text,
    header_key,
    unknown_directive,
)
from compiler.cron import CRON_HINT, cron_problem
from compiler.plan.models import (
    DestinationPlan,
    EntityPlan,
    FieldPlan,
    FieldSource,
    FlowPlan,
    Plan,
)
from compiler.templates import check_template

# The owner of derived fields, which no system feeds.
DERIVED_OWNER = "syncplan"
# Tabs that syncplan writes itself in every spreadsheet (matched ignoring case).
RESERVED_TABS = frozenset({"errors", "runs"})
# Modes that match records to rows or objects by the destination key.
KEYED_MODES = frozenset({"upsert", "update", "mirror"})
_LISTED = 12


@dataclass(frozen=True)
class PlanProblem:
    """One value of a plan that cannot run, at its JSON pointer."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


def link_problems(plan: Plan) -> list[PlanProblem]:
    """Return the problems of a plan that matches the schema (empty when none)."""
    return [
        *_system_problems(plan),
        *_entity_problems(plan),
        *_flow_problems(plan),
    ]


def _pointer(*parts: str | int) -> str:
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in parts)
    return "/" + "/".join(escaped)


def _choices(names: Iterable[str]) -> str:
    listed = sorted(names)
    if not listed:
        return "none"
    shown = ", ".join(repr(name) for name in listed[:_LISTED])
    if len(listed) > _LISTED:
        shown += f" and {len(listed) - _LISTED} more"
    return shown


def _zone_problem(name: Any) -> str | None:
    try:
        zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return (
            f"{name!r} is not an IANA time zone; use a name such as "
            "'Europe/London' or 'UTC'"
        )
    return None


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression: {exc}"
    return None


# --- systems ----------------------------------------------------------------


def _system_problems(plan: Plan) -> Iterator[PlanProblem]:
    for system_id, system in plan.systems.items():
        if system.id != system_id:
            yield PlanProblem(
                _pointer("systems", system_id, "id"),
                f"id {system.id!r} differs from the key {system_id!r} of the system",
            )
        if system.kind not in KINDS:
            yield PlanProblem(
                _pointer("systems", system_id, "kind"),
                f"{system.kind!r} is not a kind of system; use one of "
                f"{_choices(KINDS)}",
            )
        zone = system.settings.get("timezone")
        problem = _zone_problem(zone) if zone is not None else None
        if problem:
            yield PlanProblem(_pointer("systems", system_id, "settings", "timezone"),
                              problem)
        spreadsheet = system.settings.get("spreadsheet")
        if system.kind == "sheets" and not (isinstance(spreadsheet, str)
                                            and spreadsheet.strip()):
            yield PlanProblem(
                _pointer("systems", system_id, "settings", "spreadsheet"),
                f"a sheets system needs the spreadsheet (an .xlsx path or a Google "
                f"Sheets id) as text, got {spreadsheet!r}",
            )


# --- entities ---------------------------------------------------------------


def _entity_problems(plan: Plan) -> Iterator[PlanProblem]:
    owners = set(plan.systems) | {DERIVED_OWNER}
    for entity_id, entity in plan.entities.items():
        where = ("entities", entity_id)
        if entity.id != entity_id:
            yield PlanProblem(
                _pointer(*where, "id"),
                f"id {entity.id!r} differs from the key {entity_id!r} of the entity",
            )
        names = [field.name for field in entity.fields]
        for index, name in enumerate(names):
            if name in names[:index]:
                yield PlanProblem(_pointer(*where, "fields", index, "name"),
                                  f"field {name!r} of entity {entity_id!r} is repeated")
        if not entity.key:
            yield PlanProblem(_pointer(*where, "key"),
                              f"entity {entity_id!r} needs at least one key field")
        for index, name in enumerate(entity.key):
            if name not in names:
                yield PlanProblem(
                    _pointer(*where, "key", index),
                    f"key field {name!r} is not a field of entity {entity_id!r}; "
                    f"its fields are {_choices(names)}",
                )
        for index, field in enumerate(entity.fields):
            pointer = _pointer(*where, "fields", index)
            yield from _field_problems(field, pointer, owners, entity)


@cache
def _field_validator() -> Draft202012Validator:
    """Return a validator of one field in the spec's form (entity.schema.json)."""
    schema = schemas.load_schema("entity.schema.json")
    field = {**schema["$defs"]["field"], "$defs": schema["$defs"]}
    return Draft202012Validator(field)


def _field_problems(field: FieldPlan, pointer: str, owners: set[str],
                    entity: EntityPlan) -> Iterator[PlanProblem]:
    # The spec's field schema bounds the settings (scale, lengths, currency);
    # the steps are checked below, because the plan writes them differently.
    spec = field.model_dump(exclude_none=True, exclude={"name", "normalize"})
    for error in _field_validator().iter_errors(spec):
        yield PlanProblem(_pointer_under(pointer, list(error.absolute_path)),
                          f"field {field.name!r}: {error.message}")
    for index, step in enumerate(field.normalize):
        expected = _step_argument_problem(step.op, step.arg)
        if expected is not None:
            yield PlanProblem(
                f"{pointer}/normalize/{index}/arg",
                f"step {step.op!r} of field {field.name!r} takes {expected}, got "
                f"{step.arg!r}",
            )
    if field.owner not in owners:
        yield PlanProblem(
            f"{pointer}/owner",
            f"owner {field.owner!r} of field {field.name!r} is not a system; use "
            f"one of {_choices(owners)}",
        )
    for name, allowed in CONSTRAINT_TYPES.items():
        if getattr(field, name) is not None and field.type not in allowed:
            yield PlanProblem(
                f"{pointer}/{name}",
                f"{name} of field {field.name!r} applies to "
                f"{constraint_types_text(allowed)} fields, not to {field.type}; "
                "remove it or change the type",
            )
    if (field.minimum is not None and field.maximum is not None
            and field.minimum > field.maximum):
        yield PlanProblem(f"{pointer}/minimum",
                          f"minimum {field.minimum} of field {field.name!r} is above"
                          f" its maximum {field.maximum}")
    yield from _field_text_problems(field, pointer, entity)


def _step_argument_problem(op: str, arg: Any) -> str | None:
    """Return what a normalizer step takes when ``arg`` does not fit it, else None."""
    if op == "zero_pad":
        fits = isinstance(arg, int) and not isinstance(arg, bool) and 1 <= arg <= 64
        return None if fits else "a width from 1 to 64"
    if op == "replace":
        fits = (isinstance(arg, dict) and set(arg) == {"pattern", "with"}
                and all(isinstance(value, str) for value in arg.values()))
        return None if fits else "{'pattern': REGEX, 'with': TEXT}"
    if op == "map":
        return None if isinstance(arg, dict) and arg else (
            "a non-empty object of raw value to value")
    if op == "default":
        return None
    return None if arg is None else "no argument"


def _pointer_under(pointer: str, path: list[str | int]) -> str:
    return pointer + "".join(_pointer(part) for part in path)


def _field_text_problems(field: FieldPlan, pointer: str,
                         entity: EntityPlan) -> Iterator[PlanProblem]:
    """Yield the problems of the patterns, zones, enum values and template."""
    if field.pattern is not None:
        problem = _regex_problem(field.pattern)
        if problem:
            yield PlanProblem(f"{pointer}/pattern", problem)
    if field.timezone is not None:
        problem = _zone_problem(field.timezone)
        if problem:
            yield PlanProblem(f"{pointer}/timezone", problem)
    for index, fmt in enumerate(field.formats or []):
        unknown = unknown_directive(fmt)
        if unknown is not None:
            yield PlanProblem(
                f"{pointer}/formats/{index}",
                f"format {fmt!r} has the unknown directive %{unknown}; {FORMAT_HINT}",
            )
    for index, step in enumerate(field.normalize):
        pattern = step.arg.get("pattern") if isinstance(step.arg, dict) else None
        if step.op == "replace" and isinstance(pattern, str):
            problem = _regex_problem(pattern)
            if problem:
                yield PlanProblem(f"{pointer}/normalize/{index}/arg/pattern", problem)
    if field.type == "enum" and not field.values:
        yield PlanProblem(f"{pointer}/values",
                          f"enum field {field.name!r} needs a non-empty 'values' list")
    values = field.values or []
    for synonym, target in (field.synonyms or {}).items():
        if target not in values:
            yield PlanProblem(
                _pointer_under(pointer, ["synonyms", synonym]),
                f"synonym {synonym!r} maps to {target!r}, which is not one of the "
                f"values {_choices(values)}",
            )
    if field.derived is not None:
        if field.owner != DERIVED_OWNER:
            yield PlanProblem(f"{pointer}/owner",
                              f"field {field.name!r} is derived, so its owner must be"
                              f" {DERIVED_OWNER!r}, not {field.owner!r}")
        names = [other.name for other in entity.fields]
        for problem in check_template(field.derived, names,
                                      record_source=f"entity {entity.id!r}"):
            yield PlanProblem(f"{pointer}/derived", problem.message.rstrip("."))


# --- flows ------------------------------------------------------------------


def _flow_problems(plan: Plan) -> Iterator[PlanProblem]:
    ids = [flow.id for flow in plan.flows]
    for index, flow in enumerate(plan.flows):
        where = ("flows", index)
        if flow.id in ids[:index]:
            yield PlanProblem(_pointer(*where, "id"),
                              f"flow id {flow.id!r} is repeated")
        for position, needed in enumerate(flow.depends_on):
            if needed not in ids:
                yield PlanProblem(
                    _pointer(*where, "depends_on", position),
                    f"flow {flow.id!r} depends on the unknown flow {needed!r}; the "
                    f"flows are {_choices(ids)}",
                )
            elif needed not in ids[:index]:
                yield PlanProblem(
                    _pointer(*where, "depends_on", position),
                    f"flow {flow.id!r} depends on flow {needed!r}, which runs after"
                    " it in the plan",
                )
        trigger = flow.trigger
        if trigger.kind == "schedule":
            problem = cron_problem(trigger.schedule or "")
            if problem:
                yield PlanProblem(_pointer(*where, "trigger", "schedule"),
                                  f"schedule {trigger.schedule!r} of flow {flow.id!r} "
                                  f"is invalid: {problem}; {CRON_HINT}")
        if trigger.kind == "webhook" and trigger.system not in plan.systems:
            yield PlanProblem(
                _pointer(*where, "trigger", "system"),
                f"flow {flow.id!r} is started by the webhook of the unknown system "
                f"{trigger.system!r}",
            )
        yield from _source_problems(plan, flow, _pointer(*where, "source"))
        if flow.filter is not None:
            for problem in check_template(flow.filter, None, expression=True):
                yield PlanProblem(_pointer(*where, "filter"),
                                  problem.message.rstrip("."))
        yield from _aggregate_problems(plan, flow, _pointer(*where, "aggregate"))
        entity = plan.entities.get(flow.map.entity)
        if entity is None:
            yield PlanProblem(
                _pointer(*where, "map", "entity"),
                f"flow {flow.id!r} maps into the unknown entity {flow.map.entity!r};"
                f" the entities are {_choices(plan.entities)}",
            )
            continue
        yield from _map_problems(plan, flow, entity, _pointer(*where, "map"))
        for position, destination in enumerate(flow.destinations):
            pointer = _pointer(*where, "destinations", position)
            yield from _destination_problems(plan, flow, destination, entity, pointer)


def _source_problems(plan: Plan, flow: FlowPlan, pointer: str) -> Iterator[PlanProblem]:
    source = flow.source
    if source.system is None and source.entity is None:
        yield PlanProblem(pointer, f"the source of flow {flow.id!r} names neither a "
                          "system nor an entity; set one of them")
        return
    if source.system is not None and source.entity is not None:
        yield PlanProblem(pointer, f"the source of flow {flow.id!r} names both system "
                          f"{source.system!r} and entity {source.entity!r}; keep one")
        return
    if source.entity is not None and source.entity not in plan.entities:
        yield PlanProblem(
            f"{pointer}/entity",
            f"flow {flow.id!r} reads the unknown entity {source.entity!r}; the "
            f"entities are {_choices(plan.entities)}",
        )
    if source.system is not None:
        yield from _source_system_problems(plan, flow, pointer)
    window = source.window
    if window is not None:
        dates = {}
        for name in ("start", "end"):
            text = getattr(window, name)
            if text is None:
                continue
            try:
                dates[name] = dt.date.fromisoformat(text)
            except ValueError:
                yield PlanProblem(f"{pointer}/window/{name}",
                                  f"{text!r} is not a date; write it as YYYY-MM-DD")
        if len(dates) == 2 and dates["start"] >= dates["end"]:
            yield PlanProblem(f"{pointer}/window/end",
                              f"the window ends on {window.end!r}, not after its "
                              f"start {window.start!r}")


def _source_system_problems(plan: Plan, flow: FlowPlan,
                            pointer: str) -> Iterator[PlanProblem]:
    system = plan.systems.get(flow.source.system or "")
    if system is None:
        yield PlanProblem(
            f"{pointer}/system",
            f"flow {flow.id!r} reads the unknown system {flow.source.system!r}; the "
            f"systems are {_choices(plan.systems)}",
        )
        return
    kind = KINDS.get(system.kind)
    if kind is None:
        return  # reported with the system
    if not kind.readable:
        yield PlanProblem(
            f"{pointer}/system",
            f"flow {flow.id!r} reads system {system.id!r}, but a system of kind "
            f"{system.kind!r} cannot be a source",
        )
        return
    streams = set(kind.streams)
    if system.kind == "http":
        declared = system.settings.get("streams")
        streams = set(declared) if isinstance(declared, dict) else set()
    if flow.source.stream not in streams:
        yield PlanProblem(
            f"{pointer}/stream",
            f"system {system.id!r} has no stream {flow.source.stream!r}; its streams "
            f"are {_choices(streams)}",
        )


def _entity_field_names(plan: Plan, entity_id: str | None) -> list[str] | None:
    entity = plan.entities.get(entity_id or "")
    return None if entity is None else [field.name for field in entity.fields]


def _aggregate_problems(plan: Plan, flow: FlowPlan,
                        pointer: str) -> Iterator[PlanProblem]:
    aggregate = flow.aggregate
    if aggregate is None:
        return
    # Only an entity source has fields known before the data is read.
    fields = _entity_field_names(plan, flow.source.entity)
    names = list(aggregate.group_by)
    for index, name in enumerate(aggregate.group_by):
        if fields is not None and name not in fields:
            yield PlanProblem(
                f"{pointer}/group_by/{index}",
                f"group_by names {name!r}, which entity {flow.source.entity!r} does "
                f"not have; its fields are {_choices(fields)}",
            )
    for index, measure in enumerate(aggregate.measures):
        if measure.name in names:
            yield PlanProblem(f"{pointer}/measures/{index}/name",
                              f"measure name {measure.name!r} is used twice in the "
                              "aggregate")
        names.append(measure.name)
        if fields is not None and measure.field not in fields:
            yield PlanProblem(
                f"{pointer}/measures/{index}/field",
                f"measure {measure.name!r} reads {measure.field!r}, which entity "
                f"{flow.source.entity!r} does not have; its fields are "
                f"{_choices(fields)}",
            )


def _map_problems(plan: Plan, flow: FlowPlan, entity: EntityPlan,
                  pointer: str) -> Iterator[PlanProblem]:
    by_name = {field.name: field for field in entity.fields}
    mapped: list[str] = []
    for index, mapping in enumerate(flow.map.fields):
        where = f"{pointer}/fields/{index}"
        target = by_name.get(mapping.field)
        if target is None:
            yield PlanProblem(
                f"{where}/field",
                f"flow {flow.id!r} maps the unknown field {mapping.field!r} of entity "
                f"{entity.id!r}; its fields are {_choices(by_name)}",
            )
        elif target.derived is not None:
            yield PlanProblem(f"{where}/field",
                              f"field {mapping.field!r} is derived, so no flow may "
                              "map it")
        if mapping.field in mapped:
            yield PlanProblem(f"{where}/field",
                              f"field {mapping.field!r} is mapped twice")
        mapped.append(mapping.field)
        yield from _field_source_problems(plan, mapping.source, f"{where}/source",
                                          _grouped_fields(flow))
    filled = set(mapped) | {f.name for f in entity.fields if f.derived is not None}
    for name in entity.key:
        if name not in filled:
            yield PlanProblem(f"{pointer}/fields",
                              f"flow {flow.id!r} does not map the key field {name!r}"
                              f" of entity {entity.id!r}")


def _grouped_fields(flow: FlowPlan) -> list[str] | None:
    """Return the fields of the records an aggregate makes, or None without one."""
    if flow.aggregate is None:
        return None
    return [*flow.aggregate.group_by,
            *(measure.name for measure in flow.aggregate.measures)]


def _field_source_problems(plan: Plan, source: FieldSource, pointer: str,
                           record_fields: list[str] | None
                           ) -> Iterator[PlanProblem]:
    """Yield the problems of one mapped value's source.

    ``record_fields`` are the fields of the mapped records when the plan alone
    defines them (the groups of an aggregate), else None.
    """
    value = getattr(source, source.kind)
    # A constant may be null; a path, template or lookup must be given.
    missing = value is None and source.kind != "value"
    if missing or (source.kind == "path" and not value):
        yield PlanProblem(f"{pointer}/{source.kind}",
                          f"a source of kind {source.kind!r} needs its "
                          f"{source.kind!r} value, got {value!r}")
        return
    if source.kind == "template":
        for problem in check_template(source.template or "", record_fields,
                                      record_source="the aggregate"):
            yield PlanProblem(f"{pointer}/template", problem.message.rstrip("."))
    head = source.path[0] if source.kind == "path" and source.path else None
    if record_fields is not None and head is not None and head not in record_fields:
        yield PlanProblem(
            f"{pointer}/path/0",
            f"the aggregate makes no field {head!r}; its fields are "
            f"{_choices(record_fields)}",
        )
    if source.kind != "lookup" or source.lookup is None:
        return
    lookup = source.lookup
    fields = _entity_field_names(plan, lookup.entity)
    if fields is None:
        yield PlanProblem(
            f"{pointer}/lookup/entity",
            f"the lookup reads the unknown entity {lookup.entity!r}; the entities "
            f"are {_choices(plan.entities)}",
        )
        return
    for name, matched in lookup.match.items():
        where = _pointer_under(f"{pointer}/lookup", ["match", name])
        if name not in fields:
            yield PlanProblem(
                where,
                f"the lookup matches on {name!r}, which entity {lookup.entity!r} does"
                f" not have; its fields are {_choices(fields)}",
            )
        yield from _field_source_problems(plan, matched, where, record_fields)
    if lookup.take not in fields:
        yield PlanProblem(
            f"{pointer}/lookup/take",
            f"the lookup takes {lookup.take!r}, which entity {lookup.entity!r} does "
            f"not have; its fields are {_choices(fields)}",
        )


def _destination_problems(plan: Plan, flow: FlowPlan, destination: DestinationPlan,
                          entity: EntityPlan,
                          pointer: str) -> Iterator[PlanProblem]:
    system = plan.systems.get(destination.system)
    if system is None:
        yield PlanProblem(
            f"{pointer}/system",
            f"flow {flow.id!r} writes the unknown system {destination.system!r}; the "
            f"systems are {_choices(plan.systems)}",
        )
        return
    kind = KINDS.get(system.kind)
    if kind is not None and not kind.writable:
        yield PlanProblem(
            f"{pointer}/system",
            f"flow {flow.id!r} writes system {system.id!r}, but a system of kind "
            f"{system.kind!r} cannot be written",
        )
        return
    label = f"{destination.system}/{destination.object}"
    fields = [field.name for field in entity.fields]
    columns = [column.field for column in destination.columns]
    for index, name in enumerate(columns):
        if name not in fields:
            yield PlanProblem(
                f"{pointer}/columns/{index}/field",
                f"flow {flow.id!r} writes the unknown field {name!r} of entity "
                f"{entity.id!r}; its fields are {_choices(fields)}",
            )
        elif name in columns[:index]:
            yield PlanProblem(f"{pointer}/columns/{index}/field",
                              f"destination {label} writes field {name!r} twice")
    for list_name in ("key", "idempotency_key"):
        names = getattr(destination, list_name)
        for index, name in enumerate(names):
            if name not in fields:
                yield PlanProblem(
                    f"{pointer}/{list_name}/{index}",
                    f"{list_name} field {name!r} of destination {label} is not a "
                    f"field of entity {entity.id!r}; its fields are {_choices(fields)}",
                )
            elif name in names[:index]:
                yield PlanProblem(f"{pointer}/{list_name}/{index}",
                                  f"{list_name} field {name!r} of destination {label}"
                                  " is repeated")
    if destination.mode in KEYED_MODES and not destination.key:
        yield PlanProblem(f"{pointer}/key",
                          f"destination {label} in mode {destination.mode!r} needs "
                          "key fields to match records to rows")
    if destination.mode == "create" and not destination.idempotency_key:
        yield PlanProblem(f"{pointer}/idempotency_key",
                          f"destination {label} in mode 'create' needs an idempotency"
                          " key, so that a repeated run never creates twice")
    if system.kind == "sheets":
        yield from _tab_problems(destination, label, fields, pointer)


def _tab_problems(destination: DestinationPlan, label: str, fields: list[str],
                  pointer: str) -> Iterator[PlanProblem]:
    """Yield the problems of a spreadsheet tab's name, columns and key."""
    if not destination.object.strip():
        yield PlanProblem(f"{pointer}/object",
                          f"destination {label!r} needs a tab name, got "
                          f"{destination.object!r}")
    elif destination.object.strip().lower() in RESERVED_TABS:
        yield PlanProblem(f"{pointer}/object",
                          f"tab name {destination.object!r} is reserved for "
                          "syncplan's own tab; choose another tab name")
    if not destination.columns:
        yield PlanProblem(f"{pointer}/columns",
                          f"destination {label} needs at least one column")
    yield from _header_problems(destination, label, pointer)
    columns = [column.field for column in destination.columns]
    for index, name in enumerate(destination.key):
        if name in fields and name not in columns:
            yield PlanProblem(
                f"{pointer}/key/{index}",
                f"key field {name!r} of destination {label} has no column; its "
                f"columns are {_choices(columns)}",
            )


def _header_problems(destination: DestinationPlan, label: str,
                     pointer: str) -> Iterator[PlanProblem]:
    """Yield blank headers and headers or aliases that two columns share.

    Headers are compared as the sheet layer matches them (``header_key``).
    """
    seen: dict[str, str] = {}
    for index, column in enumerate(destination.columns):
        where = f"{pointer}/columns/{index}"
        names = [(column.header, f"{where}/header")]
        names += [(alias, f"{where}/aliases/{position}")
                  for position, alias in enumerate(column.aliases)]
        keys = set()
        for text, at in names:
            key = header_key(text)
            if not key:
                yield PlanProblem(at, f"field {column.field!r} of destination {label} "
                                  f"has the blank header {text!r}; write its text")
                continue
            if key in keys:
                continue
            keys.add(key)
            other = seen.setdefault(key, column.field)
            if other != column.field:
                yield PlanProblem(at, f"header {text!r} of field {column.field!r} of "
                                  f"destination {label} matches that of field "
                                  f"{other!r}, ignoring case and spaces; make it "
                                  "distinct")
