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

import difflib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from compiler.plan import EntityPlan, FieldPlan, FlowPlan, Plan
from runtime.mapping import (
    MappingProblem,
    compile_expression,
    compile_path,
    compile_source,
    compile_template,
    template_inputs,
)
from runtime.values import ValueProblem, compile_column, compile_field, to_json_value

RAW_LIMIT = 2000
CHUNK_SIZE = 1024
_FAILED = object()


def key_string(values: Iterable[Any]) -> str:
    """Return the canonical text of a (possibly compound) key."""
    return "|".join("" if v is None else str(to_json_value(v)) for v in values)


def error_id(flow: str, record_key: str | None, field_name: str | None, code: str,
             raw: Any, position: str | None = None,
             destination: str | None = None) -> str:
    """Return an id that is the same each time the same problem recurs.

    A problem with no record key (a filter that fails, a broken row) is told apart
    by where it is, so two such rows are two errors, not one. A problem that a
    destination reported includes that destination, so the same value rejected
    by two tabs is two errors.
    """
    where = "" if record_key else (position or "")
    parts = [flow, record_key or "", field_name or "", code, _short_raw(raw) or "",
             where]
    if destination:
        parts.append(destination)
    text = "\x1f".join(parts)
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
    destination: str | None = None
    """The label (``system/object``) of the destination that reported it."""

    def as_row(self) -> dict[str, Any]:
        raw = _short_raw(self.raw)
        return {
            "error_id": error_id(self.flow, self.record_key, self.field, self.code,
                                 raw, self.position, self.destination),
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
    """The outcome of mapping a flow's source records.

    ``failed`` and ``unkeyed`` describe the records that did not make it, so
    that the runner deletes no row and drops no stored record of theirs.
    ``failed`` maps the key of each record that failed mapping to the fields
    that did convert (None for the others). ``unkeyed`` lists the error records
    of input whose key is unknown: a broken source row, a failed filter, a
    failed key field.
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[ErrorRecord] = field(default_factory=list)
    read: int = 0
    filtered: int = 0
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    unkeyed: list[ErrorRecord] = field(default_factory=list)


Converter = Callable[[Any], Any]
ColumnConverter = Callable[[list[Any]], "list[Any] | None"]


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
        self.steps: list[tuple[str, Callable[[Mapping[str, Any]], Any], Converter,
                               ColumnConverter | None, str | None]] = []
        for mapping in flow.map.fields:
            source = mapping.source
            if source.kind == "lookup":
                getter = self._compile_lookup(plan, source.lookup, context, lookups)
            else:
                getter = compile_source(source, context)
            path_key = None
            if source.kind == "path" and len(source.path or []) == 1 \
                    and isinstance(source.path[0], str):
                path_key = source.path[0]
            self.steps.append((mapping.field, getter, self.converters[mapping.field],
                               compile_column(fields[mapping.field]), path_key))
        self.names = [step[0] for step in self.steps]
        # Source fields of one-step paths that no record has had yet. A name left
        # here after a run is probably misspelt: every value it gave was empty.
        self.unseen_keys = {step[4] for step in self.steps if step[4] is not None}
        self.known_keys: set[str] = set()
        order = {f.name: index for index, f in enumerate(self.entity.fields)}
        self._field_order = lambda problem: order.get(problem[0], 0)
        self.key_of = _key_function(self.key_fields)
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
            if found is not None:
                return found
            # The raw value is what was searched for: the value itself for one
            # match field, and the fields as JSON text for several.
            raw = (values[0] if len(values) == 1
                   else template_inputs(dict(zip(match_fields, values)), match_fields))
            if not index:
                raise MappingProblem("lookup_not_found",
                                     f"there are no {entity_id} records to look"
                                     f" {take!r} up in yet; run the flow that"
                                     f" produces {entity_id} first", raw)
            shown = ", ".join(f"{n}={v!r}" for n, v in zip(match_fields, values))
            raise MappingProblem("lookup_not_found",
                                 f"no {entity_id} record matches {shown}, so"
                                 f" {take!r} is unknown; add the {entity_id} or"
                                 " fix the source value", raw)

        return get

    def iter_mapped(self, items: Iterable[tuple[Mapping[str, Any], str]],
                    batch: MappedBatch,
                    on_progress: Callable[[int], None] | None = None
                    ) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Yield ``(key, canonical record, position)`` for each good source record.

        Bad records go to ``batch.errors`` and skipped ones are counted in
        ``batch.filtered``. Records are processed in chunks of ``CHUNK_SIZE``, one
        field at a time across the chunk, because a column of values converts much
        faster than the same values one call at a time; only a chunk is in memory
        at once, so memory stays flat however many records stream through.
        """
        chunk: list[tuple[Mapping[str, Any], str]] = []
        for item in items:
            chunk.append(item)
            if len(chunk) == CHUNK_SIZE:
                yield from self._map_chunk(chunk, batch)
                chunk = []
                if on_progress is not None:
                    on_progress(batch.read)
        if chunk:
            yield from self._map_chunk(chunk, batch)

    def _note_seen_keys(self, records: list[Mapping[str, Any]]) -> None:
        for record in records:
            if not self.unseen_keys:
                return
            if len(self.known_keys) < 1000:
                self.known_keys.update(str(name) for name in record)
            self.unseen_keys -= record.keys()

    def missing_field_warnings(self) -> list[str]:
        """Return a warning per mapped source field that no record carried."""
        if not self.known_keys:
            return []
        warnings = []
        for name in sorted(self.unseen_keys):
            close = difflib.get_close_matches(name, sorted(self.known_keys), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            warnings.append(f"no source record has the field {name!r}, so every"
                            f" value mapped from it was empty{hint}")
        return warnings

    def _filtered(self, chunk: list[tuple[Mapping[str, Any], str]],
                  batch: MappedBatch) -> list[tuple[Mapping[str, Any], str]]:
        keep = self.filter
        batch.read += len(chunk)
        if keep is None:
            return chunk
        kept = []
        for data, position in chunk:
            try:
                if keep(data):
                    kept.append((data, position))
                else:
                    batch.filtered += 1
            except MappingProblem as problem:
                error = ErrorRecord(self.flow.id, problem.code, problem.message,
                                    raw=problem.raw, position=position, record=data)
                batch.errors.append(error)
                batch.unkeyed.append(error)
        return kept

    def _map_chunk(self, chunk: list[tuple[Mapping[str, Any], str]],
                   batch: MappedBatch) -> Iterator[tuple[str, dict[str, Any], str]]:
        kept = self._filtered(chunk, batch)
        if not kept:
            return
        records = [data for data, _position in kept]
        if self.unseen_keys:
            self._note_seen_keys(records)
        problems: dict[int, list[tuple[str, str, str, Any]]] = {}
        columns = []
        for name, get, convert, column, path_key in self.steps:
            if path_key is not None:
                raws = [record.get(path_key) for record in records]
            else:
                raws = []
                for index, record in enumerate(records):
                    try:
                        raws.append(get(record))
                    except MappingProblem as problem:
                        raws.append(_FAILED)
                        problems.setdefault(index, []).append(
                            (name, problem.code, problem.message, problem.raw))
            values = column(raws) if column is not None else None
            if values is None:
                values = []
                for index, raw in enumerate(raws):
                    if raw is _FAILED:
                        values.append(None)
                        continue
                    try:
                        values.append(convert(raw))
                    except ValueProblem as problem:
                        values.append(None)
                        problems.setdefault(index, []).append(
                            (name, problem.code, problem.message, raw))
            columns.append(values)
        names = self.names
        derived = self.derived
        key_of = self.key_of
        flow_id = self.flow.id
        for index, row in enumerate(zip(*columns)):
            out = dict(zip(names, row))
            found = problems.get(index)
            if derived and found is None:
                for name, render, convert in derived:
                    raw = None
                    try:
                        raw = render(out)
                        out[name] = convert(raw)
                    except (ValueProblem, MappingProblem) as problem:
                        if isinstance(problem, MappingProblem):
                            raw = problem.raw  # the template failed: its inputs
                        found = found or []
                        found.append((name, problem.code, problem.message, raw))
            key = key_of(out)
            data, position = kept[index]
            if found is not None:
                errors = [ErrorRecord(flow_id, code, message, key or None, name, raw,
                                      position, data)
                          for name, code, message, raw in sorted(
                              found, key=self._field_order)]
                batch.errors.extend(errors)
                self._note_failure(batch, key, out, found, errors[0])
                continue
            yield key, out, position

    def _note_failure(self, batch: MappedBatch, key: str, out: dict[str, Any],
                      found: list[tuple[str, str, str, Any]],
                      first_error: ErrorRecord) -> None:
        """Record a failed record's key, or that its key is unknown."""
        failed_fields = {problem[0] for problem in found}
        known = bool(key) and all(
            name not in failed_fields and out.get(name) is not None
            for name in self.key_fields)
        if known:
            batch.failed.setdefault(key, out)
        else:
            batch.unkeyed.append(first_error)

    def map_records(self, items: Iterable[tuple[Mapping[str, Any], str]],
                    batch: MappedBatch,
                    on_progress: Callable[[int], None] | None = None) -> None:
        """Map source records into ``batch.records``, deduplicated by key.

        When two source records have the same key the later one is kept, because
        exports list a record again after it changed; the earlier one becomes a
        ``duplicate_key`` error record so the repeat is visible.
        """
        records = batch.records
        positions: dict[str, str] = {}
        for key, record, position in self.iter_mapped(items, batch, on_progress):
            if key in records:
                batch.errors.append(ErrorRecord(
                    self.flow.id, "duplicate_key",
                    f"another source record ({position}) has the key {key!r}; the"
                    " later one was kept. Remove the duplicate from the source, or"
                    " add a field to the entity key", key, None, None,
                    positions.get(key)))
            records[key] = record
            positions[key] = position


def _key_function(key_fields: list[str]) -> Callable[[Mapping[str, Any]], str]:
    """Return a function computing a record's key text; text keys skip conversion."""
    if len(key_fields) == 1:
        name = key_fields[0]

        def single(record: Mapping[str, Any]) -> str:
            value = record.get(name)
            if value.__class__ is str:
                return value
            return key_string([value])

        return single
    return lambda record: key_string([record.get(k) for k in key_fields])


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


__all__ = ["ErrorRecord", "FlowPipeline", "MappedBatch", "aggregate", "error_id",
           "key_string"]
