"""Ownership checks: who may read and write each field, and the order flows run in.

Each field has one owner, its system of record. The rules:

- A flow takes a field from a system only when that system is the owner, or is fed
  the field from the owner by other flows (directly or through a chain).
  Constants and lookups are exempt: a lookup reads the canonical record of an
  entity, whose values were already taken from their owners.
- No flow writes a field into its owner, because that would overwrite the system
  of record with a copy.
- No two flows write the same field of the same destination object.
- Writes of one field between systems form no cycle (``a -> b -> a``), because a
  cycle makes two systems overwrite each other on every run.

Flows that read an entity (as source or through a lookup) run after the flows that
produce it; the order is a topological sort with ties broken by flow id, so it is
deterministic.
"""

from __future__ import annotations

from collections import defaultdict

from compiler.analyze import DERIVED_OWNER, Analysis
from compiler.diagnostics import Diagnostic
from compiler.partial import outline_flows
from compiler.plan import FlowPlan
from compiler.project import Project


def _read_fields(flow: FlowPlan) -> list[str]:
    """Return the mapped fields whose values come from the flow's source system."""
    return [m.field for m in flow.map.fields if m.source.kind in ("path", "template")]


def check_ownership(project: Project, analysis: Analysis) -> list[Diagnostic]:
    """Check the rules above on the flows that the analysis lowered.

    In a project with errors some flows are not lowered. A feed that one of them
    may provide is assumed, so no E301 is reported that fixing them would remove.
    """
    problems: list[Diagnostic] = []
    flows = [analysis.flows[name] for name in sorted(analysis.flows)]
    others = outline_flows(project.merged.get("flows", {}), analysis.flows,
                           project.dropped)
    owners = {(entity.id, f.name): f.owner for entity in analysis.entities.values()
              for f in entity.fields}

    # Which systems receive each field, and from where: field -> {dest: {sources}}.
    feeds: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(
        lambda: defaultdict(set))
    for flow in flows:
        source = flow.source.system
        if source is None:
            continue
        for destination in flow.destinations:
            for column in destination.columns:
                feeds[(flow.map.entity, column.field)][destination.system].add(source)

    def fed_from(system: str, owner: str, field: tuple[str, str]) -> bool:
        """Tell whether ``system`` is fed ``field`` from ``owner``, or may be.

        It may be when a flow that was not analysed writes into ``system`` or a
        system upstream of it; such a flow is not in ``feeds``.
        """
        seen: set[str] = set()
        pending = [system]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            for upstream in feeds[field].get(current, ()):
                if upstream == owner:
                    return True
                pending.append(upstream)
        return any(others.may_write(current, field[0]) for current in seen)

    for flow in flows:
        source = flow.source.system
        entity = flow.map.entity
        for field_name in _read_fields(flow) if source is not None else ():
            owner = owners[(entity, field_name)]
            if owner in (DERIVED_OWNER, source):
                continue
            if fed_from(source, owner, (entity, field_name)):
                continue
            pointer = f"/flows/{flow.id}/map/fields/{field_name}"
            problems.append(project.diagnostic(
                "E301", f"flow {flow.id!r} takes {entity}.{field_name} from system"
                f" {source!r}, but its owner is {owner!r}", pointer,
                f"read it from {owner!r}, take it with a lookup on entity"
                f" {entity!r}, or change the field's owner", key=True))
        for index, destination in enumerate(flow.destinations):
            for column in destination.columns:
                owner = owners[(entity, column.field)]
                if owner != destination.system:
                    continue
                pointer = f"/flows/{flow.id}/destinations/{index}/system"
                problems.append(project.diagnostic(
                    "E302", f"flow {flow.id!r} writes {entity}.{column.field} into"
                    f" {owner!r}, the field's owner", pointer,
                    f"remove {column.field!r} from this destination's 'fields', or"
                    " make another system its owner"))

    problems.extend(_check_single_writer(project, flows))
    problems.extend(_check_cycles(project, flows, owners))
    return problems


def _check_single_writer(project: Project, flows: list[FlowPlan]) -> list[Diagnostic]:
    problems = []
    writers: dict[tuple[str, str, str], str] = {}
    for flow in flows:
        for index, destination in enumerate(flow.destinations):
            target = (destination.system, destination.object.strip().lower())
            for column in destination.columns:
                if column.field in flow.destinations[index].key:
                    continue  # key columns identify rows; sharing them is the point
                slot = (*target, column.header.strip().lower())
                first = writers.setdefault(slot, flow.id)
                if first == flow.id:
                    continue
                pointer = f"/flows/{flow.id}/destinations/{index}/object"
                problems.append(project.diagnostic(
                    "E303", f"flows {first!r} and {flow.id!r} both write the column"
                    f" {column.header!r} of {destination.system}/{destination.object}",
                    pointer, "let one flow own this column: remove it from the other"
                    " flow's 'fields', or write to another tab"))
    return problems


def _check_cycles(project: Project, flows: list[FlowPlan],
                  owners: dict[tuple[str, str], str]) -> list[Diagnostic]:
    """Report one diagnostic per field whose writes between systems loop."""
    edges: dict[str, dict[str, dict[str, str]]] = defaultdict(
        lambda: defaultdict(dict))
    for flow in flows:
        source = flow.source.system
        if source is None:
            continue
        for destination in flow.destinations:
            for column in destination.columns:
                owner = owners[(flow.map.entity, column.field)]
                if source == destination.system == owner:
                    continue  # a write back into the owner is E302, not a cycle
                name = f"{flow.map.entity}.{column.field}"
                edges[name][source][destination.system] = flow.id
    problems = []
    for field_name in sorted(edges):
        cycle = _find_cycle(edges[field_name])
        if cycle is None:
            continue
        path = " -> ".join(cycle)
        closing_flow = edges[field_name][cycle[-2]][cycle[-1]]
        problems.append(project.diagnostic(
            "E304", f"{field_name} is written in a cycle between systems: {path}",
            f"/flows/{closing_flow}/destinations",
            "remove one direction of the sync; each field flows away from its owner"))
    return problems


def _find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for successor in sorted(graph.get(node, {})):
            if state.get(successor) == 1:
                return [*stack[stack.index(successor):], successor]
            if state.get(successor) is None:
                found = visit(successor)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def order_flows(project: Project, analysis: Analysis
                ) -> tuple[list[FlowPlan], list[Diagnostic]]:
    """Return the flows in run order, with their ``depends_on`` filled in."""
    producers: dict[str, set[str]] = defaultdict(set)
    for flow in analysis.flows.values():
        producers[flow.map.entity].add(flow.id)
    others = outline_flows(project.merged.get("flows", {}), analysis.flows,
                           project.dropped)
    depends: dict[str, set[str]] = {}
    problems = []
    for flow in analysis.flows.values():
        # Each entity the flow reads, with the node that reads it first.
        needed: dict[str, str] = {}
        if flow.source.entity is not None:
            needed[flow.source.entity] = f"/flows/{flow.id}/source/entity"
        for mapping in flow.map.fields:
            if mapping.source.lookup is not None:
                needed.setdefault(mapping.source.lookup.entity,
                                  f"/flows/{flow.id}/map/fields/{mapping.field}")
        upstream: set[str] = set()
        for entity, pointer in sorted(needed.items()):
            found = producers.get(entity, set()) - {flow.id}
            if found:
                upstream |= found
            elif others.may_produce(entity):
                continue  # a flow that was not analysed may produce it
            elif flow.id in producers.get(entity, set()):
                problems.append(project.diagnostic(
                    "E305", f"flow {flow.id!r} reads entity {entity!r}, which only it"
                    " produces", pointer,
                    f"read {entity!r} records that another flow produces, or take the"
                    " value from the source record"))
            else:
                problems.append(project.diagnostic(
                    "E205", f"flow {flow.id!r} reads entity {entity!r}, but no flow"
                    " produces it", pointer,
                    f"add a flow that maps records into {entity!r}"))
        depends[flow.id] = upstream

    ordered: list[str] = []
    remaining = dict(depends)
    while remaining:
        ready = sorted(name for name, deps in remaining.items()
                       if deps <= set(ordered))
        if not ready:
            loop = _loop_members(remaining)
            problems.append(project.diagnostic(
                "E305", "flows depend on each other's entities in a loop: "
                + ", ".join(loop), f"/flows/{loop[0]}",
                "break the loop: a flow cannot read an entity that depends on its own"
                " output", key=True))
            ordered.extend(sorted(remaining))
            break
        ordered.extend(ready)
        for name in ready:
            del remaining[name]
    plans = [analysis.flows[name].model_copy(
        update={"depends_on": sorted(depends[name])}) for name in ordered]
    return plans, problems


def _loop_members(remaining: dict[str, set[str]]) -> list[str]:
    """Return the flows of ``remaining`` that are on a dependency loop, sorted.

    Flows that only depend on a loop, and that no other remaining flow depends
    on, are pruned until none is left.
    """
    members = dict(remaining)
    while True:
        depended_on = set().union(*members.values()) & set(members)
        pruned = {name: deps for name, deps in members.items() if name in depended_on}
        if len(pruned) == len(members):
            return sorted(members)
        members = pruned
