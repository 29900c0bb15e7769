"""One flow's records, from source to canonical form.

``FlowPipeline`` compiles a flow once (getters, templates, converters, the
filter) and then turns each source record into a canonical entity record or into
error records. Nothing is dropped without a trace: a record the filter skips is
counted, a record with a bad value becomes one error per bad field, a duplicate
key becomes an error naming the record that replaced it.

The steps, in order: filter, aggregate (when the flow has one), map, convert
(normalize, type, constraints), derive, deduplicate by key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from compiler.plan import EntityPlan, FieldPlan, FlowPlan, Plan
from runtime.mapping import (
    MappingProblem,
    compile_expression,
    compile_path,
    compile_source,
    compile_template,
)
from runtime.values import ValueProblem, compile_field, to_json_value

RAW_LIMIT = 2000


def key_string(values: Iterable[Any]) -> str:
    """Return the canonical text of a (possibly compound) key."""
    return "|".join("" if v is None else str(to_json_value(v)) for v in values)


def error_id(flow: str, record_key: str | None, field_name: str | None, code: str,
             raw: Any) -> str:
    """Return an id that is the same each time the same problem recurs."""
    text = "\x1f".join([flow, record_key or "", field_name or "", code,
                        _short_raw(raw) or ""])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _short_raw(raw: Any) -> str | None:
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "..."


@dataclass
class ErrorRecord:
    """A record, or a part of the input, that did not reach the destinations."""

    flow: str
    code: str
    message: str
    record_key: str | None = None
    field: str | None = None
    raw: Any = None
    position: str | None = None
    record: Mapping[str, Any] | None = None

    def as_row(self) -> dict[str, Any]:
        raw = _short_raw(self.raw)
        return {
            "error_id": error_id(self.flow, self.record_key, self.field, self.code,
                                 raw),
            "flow": self.flow,
            "record_key": self.record_key,
            "field": self.field,
            "code": self.code,
            "message": self.message,
            "raw": raw,
            "position": self.position,
            "record": _json_safe(self.record) if self.record is not None else None,
        }


def _json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, Mapping):
            safe[str(name)] = _json_safe(value)
        elif isinstance(value, (list, tuple)):
            safe[str(name)] = [_json_safe(v) if isinstance(v, Mapping)
                               else to_json_value(v) for v in value]
        else:
            safe[str(name)] = to_json_value(value)
    return safe


@dataclass
class MappedBatch:
    """The outcome of mapping a flow's source records."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[ErrorRecord] = field(default_factory=list)
    read: int = 0
    filtered: int = 0


Converter = Callable[[Any], Any]


class FlowPipeline:
    """A flow compiled for execution: call ``map_records`` with source records."""

    def __init__(self, plan: Plan, flow: FlowPlan, context: Mapping[str, Any],
                 lookups: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        self.flow = flow
        self.entity: EntityPlan = plan.entity(flow.map.entity)
        fields = {f.name: f for f in self.entity.fields}
        self.converters: dict[str, Converter] = {
            f.name: compile_field(f) for f in self.entity.fields}
        self.filter = (compile_expression(flow.filter, context)
                       if flow.filter else None)
        self.key_fields = list(self.entity.key)
        self.steps: list[tuple[str, Callable[[Mapping[str, Any]], Any], Converter]] = []
        for mapping in flow.map.fields:
            if mapping.source.kind == "lookup":
                getter = self._compile_lookup(plan, mapping.source.lookup, context,
                                              lookups)
            else:
                getter = compile_source(mapping.source, context)
            self.steps.append((mapping.field, getter, self.converters[mapping.field]))
        self.derived = [(f.name, compile_template(f.derived, context),
                         self.converters[f.name])
                        for f in self.entity.fields if f.derived is not None]
        self.fields: dict[str, FieldPlan] = fields

    def _compile_lookup(self, plan: Plan, lookup: Any, context: Mapping[str, Any],
                        lookups: Mapping[str, Iterable[Mapping[str, Any]]]
                        ) -> Callable[[Mapping[str, Any]], Any]:
        """Index the looked-up entity once; return a getter matching by its fields."""
        target = plan.entity(lookup.entity)
        target_converters = {f.name: compile_field(f) for f in target.fields}
        match_fields = sorted(lookup.match)
        getters = [compile_source(lookup.match[name], context) for name in match_fields]
        index: dict[tuple[Any, ...], Any] = {}
        for record in lookups.get(lookup.entity, ()):
            index.setdefault(tuple(record.get(name) for name in match_fields),
                             record.get(lookup.take))
        take = lookup.take
        entity_id = lookup.entity

        def get(record: Mapping[str, Any]) -> Any:
            values = []
            for name, getter in zip(match_fields, getters):
                try:
                    values.append(target_converters[name](getter(record)))
                except ValueProblem:
                    values.append(None)
            found = index.get(tuple(values))
            if found is None:
                shown = ", ".join(f"{n}={v!r}" for n, v in zip(match_fields, values))
                raise MappingProblem("lookup_not_found",
                                     f"no {entity_id} record matches {shown}, so"
                                     f" {take!r} is unknown; add the {entity_id} or"
                                     " fix the source value")
            return found

        return get

    def map_records(self, items: Iterable[Any], batch: MappedBatch,
                    on_progress: Callable[[int], None] | None = None) -> None:
        """Map source records into ``batch`` (canonical records and errors)."""
        flow_id = self.flow.id
        keep = self.filter
        steps = self.steps
        derived = self.derived
        key_fields = self.key_fields
        records = batch.records
        errors = batch.errors
        for data, position in items:
            batch.read += 1
            if on_progress is not None and batch.read % 5000 == 0:
                on_progress(batch.read)
            if keep is not None:
                try:
                    if not keep(data):
                        batch.filtered += 1
                        continue
                except MappingProblem as problem:
                    errors.append(ErrorRecord(flow_id, problem.code, problem.message,
                                              position=position, record=data))
                    continue
            out: dict[str, Any] = {}
            problems: list[tuple[str, str, str, Any]] | None = None
            for name, get, convert in steps:
                raw = None
                try:
                    raw = get(data)
                    out[name] = convert(raw)
                except (ValueProblem, MappingProblem) as problem:
                    if problems is None:
                        problems = []
                    problems.append((name, problem.code, problem.message, raw))
            if derived and problems is None:
                for name, render, convert in derived:
                    raw = None
                    try:
                        raw = render(out)
                        out[name] = convert(raw)
                    except (ValueProblem, MappingProblem) as problem:
                        if problems is None:
                            problems = []
                        problems.append((name, problem.code, problem.message, raw))
            key = key_string([out.get(k) for k in key_fields])
            if problems is not None:
                for name, code, message, raw in problems:
                    errors.append(ErrorRecord(flow_id, code, message, key or None,
                                              name, raw, position, data))
                continue
            previous = records.get(key)
            if previous is not None:
                errors.append(ErrorRecord(
                    flow_id, "duplicate_key",
                    f"another source record has the key {key!r}; the later one was"
                    " kept. Remove the duplicate from the source, or add a field to"
                    " the entity key", key, None, None, previous.pop("__position__",
                                                                     None)))
            out["__position__"] = position
            records[key] = out
        for record in records.values():
            record.pop("__position__", None)


def aggregate(records: Iterable[Mapping[str, Any]], flow: FlowPlan
              ) -> list[dict[str, Any]]:
    """Group records by the flow's group_by fields and compute its measures."""
    spec = flow.aggregate
    assert spec is not None
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    getters = {name: compile_path([name]) for name in spec.group_by}
    for record in records:
        group_key = tuple(getters[name](record) for name in spec.group_by)
        group = groups.get(group_key)
        if group is None:
            group = dict(zip(spec.group_by, group_key))
            for measure in spec.measures:
                group[measure.name] = 0 if measure.function == "count" else None
            groups[group_key] = group
        for measure in spec.measures:
            value = record.get(measure.field)
            current = group[measure.name]
            if measure.function == "count":
                group[measure.name] = current + (value is not None)
            elif value is None:
                continue
            elif measure.function == "sum":
                group[measure.name] = value if current is None else current + value
            elif measure.function == "min":
                group[measure.name] = value if current is None else min(current, value)
            elif measure.function == "max":
                group[measure.name] = value if current is None else max(current, value)
            elif current is None:  # first
                group[measure.name] = value
    return [groups[key] for key in sorted(groups, key=_sortable)]


def _sortable(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in key)


__all__ = ["Decimal", "ErrorRecord", "FlowPipeline", "MappedBatch", "aggregate",
           "error_id", "key_string"]
