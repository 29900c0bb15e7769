"""Hand-edited plans: each broken link is reported with its JSON pointer.

The table edits one value of the compiled agency plan. Running the edited plan
must stop at load with exit code 1 and a message naming the pointer and the
value, never with an internal error halfway through a run.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compiler import PlanLoadError, compile_project, load_plan, plan_json
from compiler.plan.check import link_problems
from compiler.project import load_project
from compiler.safety_net import plan_diagnostics, spec_pointer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def agency_plan() -> dict[str, Any]:
    compiled = compile_project(EXAMPLES / "agency")
    assert compiled.plan is not None
    return json.loads(plan_json(compiled.plan))


def edited(document: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``document`` with the value at ``pointer`` replaced."""
    copied = copy.deepcopy(document)
    *parents, last = pointer.strip("/").split("/")
    node: Any = copied
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copied


def lookup_pointer(document: dict[str, Any]) -> str:
    fields = document["flows"][2]["map"]["fields"]
    index = next(i for i, f in enumerate(fields) if f["source"]["kind"] == "lookup")
    return f"/flows/2/map/fields/{index}/source/lookup"


# (edited pointer, new value, pointer reported, text of the message)
CLI_CASES = [
    ("/flows/0/destinations/0/key", ["nosuch"], "/flows/0/destinations/0/key/0",
     "key field 'nosuch' of destination report/Clients is not a field of entity"
     " 'client'"),
    ("/flows/0/destinations/0/key", [], "/flows/0/destinations/0/key",
     "in mode 'upsert' needs key fields"),
    ("/flows/0/destinations/0/columns", [], "/flows/0/destinations/0/columns",
     "destination report/Clients needs at least one column"),
    ("/flows/0/destinations/0/system", "nosuch", "/flows/0/destinations/0/system",
     "writes the unknown system 'nosuch'"),
    ("/flows/0/source/system", None, "/flows/0/source",
     "names neither a system nor an entity"),
    ("/flows/0/source/stream", "rows", "/flows/0/source/stream",
     "system 'client_list' has no stream 'rows'"),
    ("/flows/0/map/fields/0/field", "nosuch", "/flows/0/map/fields/0/field",
     "maps the unknown field 'nosuch'"),
    ("/flows/2/source/window/start", "1 Oct", "/flows/2/source/window/start",
     "'1 Oct' is not a date"),
    ("LOOKUP/match", {"nosuch": {"kind": "value", "value": "x"}},
     "LOOKUP/match/nosuch", "the lookup matches on 'nosuch'"),
    ("/flows/3/depends_on", ["nosuch"], "/flows/3/depends_on/0",
     "depends on the unknown flow 'nosuch'"),
    ("/systems/report/id", "other", "/systems/report/id",
     "id 'other' differs from the key 'report'"),
    ("/systems/calendar/settings/timezone", "Mars/Base",
     "/systems/calendar/settings/timezone", "'Mars/Base' is not an IANA time zone"),
    ("/entities/client/key", ["nosuch"], "/entities/client/key/0",
     "key field 'nosuch' is not a field of entity 'client'"),
    ("/entities/client/fields/0/pattern", "([", "/entities/client/fields/0/pattern",
     "'([' is not a valid regular expression"),
    ("/entities/deal/fields/5/formats", ["%Q"], "/entities/deal/fields/5/formats/0",
     "format '%Q' has the unknown directive %Q"),
    ("/flows/1/filter", "record[", "/flows/1/filter",
     "expression 'record[' does not parse"),
    ("/flows/1/id", "clients", "/flows/1/id", "flow id 'clients' is repeated"),
]


@pytest.mark.parametrize(("pointer", "value", "reported", "text"), CLI_CASES,
                         ids=[f"{case[0]}={case[1]!r}" for case in CLI_CASES])
def test_cli_rejects_hand_edit(agency_plan: dict[str, Any], tmp_path: Path,
                               pointer: str, value: Any, reported: str,
                               text: str) -> None:
    lookup = lookup_pointer(agency_plan)
    pointer = pointer.replace("LOOKUP", lookup)
    reported = reported.replace("LOOKUP", lookup)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(edited(agency_plan, pointer, value)))

    completed = subprocess.run(
        [sys.executable, "-m", "sheets_addon.cli", "run", str(plan_file), "--flow",
         "clients"], capture_output=True, text=True, timeout=120)

    assert completed.returncode == 1
    assert "internal error" not in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "is not a runnable plan file" in completed.stderr
    assert f"{reported}: " in completed.stderr
    assert text in completed.stderr
    assert "compile the spec again" in completed.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("example", ["agency", "closed-won"])
def test_compiled_examples_have_no_problems(example: str) -> None:
    compiled = compile_project(EXAMPLES / example)
    assert compiled.plan is not None

    assert link_problems(compiled.plan) == []
    assert load_plan(plan_json(compiled.plan)) == compiled.plan


# (edited pointer, new value, problem as reported)
LOAD_CASES = [
    ("/flows/0/destinations/0/columns/0/field", "nosuch",
     "/flows/0/destinations/0/columns/0/field: flow 'clients' writes the unknown"
     " field 'nosuch' of entity 'client'; its fields are 'account_lead',"
     " 'calendar_tag', 'client_code', 'monthly_budget_hours', 'name'"),
    ("/flows/0/destinations/0/idempotency_key", ["nosuch"],
     "/flows/0/destinations/0/idempotency_key/0: idempotency_key field 'nosuch' of"
     " destination report/Clients is not a field of entity 'client'; its fields are"
     " 'account_lead', 'calendar_tag', 'client_code', 'monthly_budget_hours',"
     " 'name'"),
    ("/flows/0/destinations/0/system", "client_list",
     "/flows/0/destinations/0/system: flow 'clients' writes system 'client_list',"
     " but a system of kind 'json' cannot be written"),
    ("/flows/0/destinations/0/object", "Errors",
     "/flows/0/destinations/0/object: tab name 'Errors' is reserved for syncplan's"
     " own tab; choose another tab name"),
    ("/flows/0/source/system", "report",
     "/flows/0/source/system: flow 'clients' reads system 'report', but a system of"
     " kind 'sheets' cannot be a source"),
    ("/flows/0/source/entity", "client",
     "/flows/0/source: the source of flow 'clients' names both system"
     " 'client_list' and entity 'client'; keep one"),
    ("/flows/2/destinations/0/mode", "create",
     "/flows/2/destinations/0/idempotency_key: destination report/Time entries in"
     " mode 'create' needs an idempotency key, so that a repeated run never creates"
     " twice"),
    ("/flows/3/aggregate/group_by/0", "nosuch",
     "/flows/3/aggregate/group_by/0: group_by names 'nosuch', which entity"
     " 'time_entry' does not have; its fields are 'client_code', 'entry_id',"
     " 'hours', 'person', 'start', 'summary', 'week'"),
    ("/flows/3/aggregate/measures/0/name", "total",
     "/flows/3/map/fields/3/source/path/0: the aggregate makes no field 'hours';"
     " its fields are 'client_code', 'meetings', 'person', 'total', 'week'"),
    ("/entities/client/id", "customer",
     "/entities/client/id: id 'customer' differs from the key 'client' of the"
     " entity"),
    ("/entities/client/fields/0/owner", "crm",
     "/entities/client/fields/0/owner: owner 'crm' of field 'client_code' is not a"
     " system; use one of 'calendar', 'client_list', 'crm_export', 'report',"
     " 'syncplan'"),
    ("/entities/client/fields/0/minimum", 5,
     "/entities/client/fields/0/minimum: minimum of field 'client_code' applies to"
     " decimal, integer and money fields, not to string; remove it or change the"
     " type"),
    ("/entities/client/fields/0/normalize", [{"op": "zero_pad", "arg": "x"}],
     "/entities/client/fields/0/normalize/0/arg: step 'zero_pad' of field"
     " 'client_code' takes a width from 1 to 64, got 'x'"),
    ("/entities/deal/fields/4/synonyms", {"won": "nosuch"},
     "/entities/deal/fields/4/synonyms/won: synonym 'won' maps to 'nosuch', which"
     " is not one of the values 'closed_lost', 'closed_won', 'open'"),
    ("/entities/deal/fields/3/currency", "pounds",
     "/entities/deal/fields/3/currency: field 'amount': 'pounds' does not match"
     " '^[A-Z]{3}$'"),
    ("/entities/time_entry/fields/6/derived", "{{ record.start | nosuch }}",
     "/entities/time_entry/fields/6/derived: template '{{ record.start | nosuch }}'"
     " uses the unknown filter 'nosuch'"),
    ("/systems/report/settings", {},
     "/systems/report/settings/spreadsheet: a sheets system needs the spreadsheet"
     " (an .xlsx path or a Google Sheets id) as text, got None"),
    ("/flows/0/trigger", {"kind": "webhook", "system": "nosuch"},
     "/flows/0/trigger/system: flow 'clients' is started by the webhook of the"
     " unknown system 'nosuch'"),
    ("/flows/2/trigger/schedule", "0 * * *",
     "/flows/2/trigger/schedule: schedule '0 * * *' of flow 'calendar_hours' is"
     " invalid: it has 4 fields, not 5; write five fields: minute (0-59), hour"
     " (0-23), day of month (1-31), month (1-12 or JAN-DEC) and day of week (0-7 or"
     " SUN-SAT), such as '0 6 * * MON-FRI'"),
    ("/flows/0/destinations/0/columns/1/header", " CLIENT  code",
     "/flows/0/destinations/0/columns/1/header: header ' CLIENT  code' of field"
     " 'name' of destination report/Clients matches that of field 'client_code',"
     " ignoring case and spaces; make it distinct"),
    ("LOOKUP/take", "nosuch",
     "LOOKUP/take: the lookup takes 'nosuch', which entity 'client' does not have;"
     " its fields are 'account_lead', 'calendar_tag', 'client_code',"
     " 'monthly_budget_hours', 'name'"),
]


@pytest.mark.parametrize(("pointer", "value", "problem"), LOAD_CASES,
                         ids=[f"{case[0]}={case[1]!r}" for case in LOAD_CASES])
def test_load_reports_hand_edit(agency_plan: dict[str, Any], pointer: str,
                                value: Any, problem: str) -> None:
    lookup = lookup_pointer(agency_plan)
    text = json.dumps(edited(agency_plan, pointer.replace("LOOKUP", lookup), value))

    with pytest.raises(PlanLoadError) as raised:
        load_plan(text)

    message = str(raised.value)
    assert problem.replace("LOOKUP", lookup) in message
    assert message.endswith("; compile the spec again instead of editing the plan")


def test_load_lists_five_problems_and_counts_rest(
        agency_plan: dict[str, Any]) -> None:
    document = copy.deepcopy(agency_plan)
    for flow in document["flows"]:
        flow["depends_on"] = ["a", "b", "c"]

    with pytest.raises(PlanLoadError) as raised:
        load_plan(json.dumps(document))

    message = str(raised.value)
    assert message.count("depends on the unknown flow") == 5
    assert "(and 7 more)" in message


# (plan pointer, spec pointer it maps to)
SPEC_POINTERS = [
    ("/systems/report/settings/spreadsheet", "/systems/report/spreadsheet"),
    ("/entities/client/fields/1/minimum", "/entities/client/fields/name/minimum"),
    ("/entities/client/fields/0/normalize/0/arg",
     "/entities/client/fields/client_code/normalize/0/OP"),
    ("/flows/2/trigger/schedule", "/flows/calendar_hours/trigger/schedule"),
    ("/flows/0/trigger/system", "/flows/clients/trigger/webhook/system"),
    ("/flows/0/destinations/0/columns/1/header",
     "/flows/clients/destinations/0/columns/name/header"),
    ("/flows/0/destinations/0/columns/1/field",
     "/flows/clients/destinations/0/columns/name"),
    ("/flows/0/map/fields/0/source/path/0", "/flows/clients/map/fields/FIELD0"),
]


@pytest.mark.parametrize(("plan_pointer", "expected"), SPEC_POINTERS)
def test_spec_pointer_of_plan_pointer(plan_pointer: str, expected: str) -> None:
    compiled = compile_project(EXAMPLES / "agency")
    assert compiled.plan is not None
    plan = compiled.plan
    step = plan.entities["client"].fields[0].normalize[0].op
    first_mapped = plan.flows[0].map.fields[0].field
    expected = expected.replace("OP", step).replace("FIELD0", first_mapped)
    assert spec_pointer(plan_pointer, plan) == expected


def test_safety_net_reports_plan_problem_at_spec_node() -> None:
    compiled = compile_project(EXAMPLES / "agency")
    assert compiled.plan is not None
    project = load_project(EXAMPLES / "agency")
    plan = compiled.plan
    # The plan models are frozen, so the bad schedule goes in through copies.
    flows = list(plan.flows)
    trigger = flows[2].trigger.model_copy(update={"schedule": "61 * * * *"})
    flows[2] = flows[2].model_copy(update={"trigger": trigger})
    plan = plan.model_copy(update={"flows": flows})

    found = plan_diagnostics(project, plan)

    assert [d.code for d in found] == ["E901"]
    assert found[0].pointer == "/flows/calendar_hours/trigger/schedule"
    assert "outside 0-59" in found[0].message
    assert found[0].hint
    expected = project.locate("/flows/calendar_hours/trigger/schedule")
    assert (found[0].file, found[0].line, found[0].column) == expected
    assert found[0].line > 1
