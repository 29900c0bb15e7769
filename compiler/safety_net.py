"""Run the checks of a loaded plan on a freshly compiled one, as diagnostics.

``compiler.analyze`` checks the spec, and ``compiler.plan.check`` checks a plan
file before the runtime executes it. A problem that the second finds in a plan
the first passed would fail at run time, so each one becomes an E901 error at
the spec node the plan value came from. Such an error means the spec checks
missed a case, which a new spec check should then report with its own code.
"""

from __future__ import annotations

from compiler.diagnostics import Diagnostic
from compiler.loader import join_pointer
from compiler.plan import FlowPlan, Plan
from compiler.plan.check import link_problems
from compiler.project import Project

Token = str | int


def plan_diagnostics(project: Project, plan: Plan) -> list[Diagnostic]:
    """Return an E901 error for each problem ``link_problems`` finds in ``plan``."""
    diagnostics = []
    for problem in link_problems(plan):
        pointer = spec_pointer(problem.pointer, plan)
        diagnostics.append(project.diagnostic(
            "E901", f"the compiled plan fails a check at {problem.pointer}:"
            f" {problem.message}", pointer,
            "fix the spec value named here; the spec checks missed this case,"
            " so please report it as a bug in syncplan"))
    return diagnostics


def _split(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~")
            for part in pointer.split("/")[1:]]


def _join(parts: list[Token]) -> str:
    pointer = ""
    for part in parts:
        pointer = join_pointer(pointer, part)
    return pointer


def spec_pointer(pointer: str, plan: Plan) -> str:
    """Return the spec pointer of the node a plan pointer's value came from.

    The plan lists fields, flows, mappings and columns where the spec keys them
    by name, and nests a few values differently. The result may name a node
    deeper than the spec has; ``Project.locate`` then reports its nearest
    existing parent.
    """
    parts = _split(pointer)
    if len(parts) < 2:
        return _join(list(parts))
    section, name, rest = parts[0], parts[1], parts[2:]
    if section == "systems":
        if rest[:1] == ["settings"]:
            rest = rest[1:]
        return _join([section, name, *rest])
    if section == "entities":
        return _join([section, name, *_entity_rest(plan, name, rest)])
    if section == "flows" and name.isdigit() and int(name) < len(plan.flows):
        flow = plan.flows[int(name)]
        return _join([section, flow.id, *_flow_rest(flow, rest)])
    return _join([section])


def _index(parts: list[str], position: int, length: int) -> int | None:
    if len(parts) > position and parts[position].isdigit():
        index = int(parts[position])
        return index if index < length else None
    return None


def _entity_rest(plan: Plan, entity_id: str, rest: list[str]) -> list[Token]:
    entity = plan.entities.get(entity_id)
    if entity is None or rest[:1] != ["fields"]:
        return list(rest)
    index = _index(rest, 1, len(entity.fields))
    if index is None:
        return ["fields"]
    field = entity.fields[index]
    tail: list[Token] = list(rest[2:])
    if tail[:1] == ["normalize"]:
        step = _index(rest, 3, len(field.normalize))
        if step is None:
            return ["fields", field.name, "normalize"]
        # The spec writes a step as {op: arg}, where the plan has op and arg.
        after = [field.normalize[step].op if part == "arg" else part
                 for part in rest[4:]]
        tail = ["normalize", step, *after]
    return ["fields", field.name, *tail]


def _flow_rest(flow: FlowPlan, rest: list[str]) -> list[Token]:
    head = rest[:1]
    if head == ["trigger"] and rest[1:2] == ["system"]:
        return ["trigger", "webhook", "system"]
    if head == ["map"] and rest[1:2] == ["fields"]:
        index = _index(rest, 2, len(flow.map.fields))
        if index is None:
            return ["map", "fields"]
        mapping = flow.map.fields[index]
        tail = rest[3:]
        # A source's kind is implied by its spec form; only a lookup nests.
        if tail[:2] == ["source", "lookup"]:
            return ["map", "fields", mapping.field, *tail[1:]]
        return ["map", "fields", mapping.field]
    if head == ["destinations"] and rest[2:3] == ["columns"]:
        index = _index(rest, 1, len(flow.destinations))
        if index is None:
            return ["destinations"]
        destination = flow.destinations[index]
        column = _index(rest, 3, len(destination.columns))
        if column is None:
            return ["destinations", index, "columns"]
        tail = [part for part in rest[4:] if part != "field"]
        field_name = destination.columns[column].field
        return ["destinations", index, "columns", field_name, *tail]
    if head == ["aggregate"] and rest[1:2] == ["measures"]:
        index = _index(rest, 2, len(flow.aggregate.measures) if flow.aggregate else 0)
        if index is None or flow.aggregate is None:
            return ["aggregate", "measures"]
        return ["aggregate", "measures", flow.aggregate.measures[index].name]
    return list(rest)
