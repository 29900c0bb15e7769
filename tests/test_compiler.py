"""Tests of ``compile_project``: the example, determinism, the plan and its schema."""

from __future__ import annotations

import copy
import gc
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

import schemas
from compiler import compile_project, load_plan, plan_json
from compiler.diagnostics import did_you_mean, edit_distance
from compiler.plan import PLAN_FORMAT
from compiler.plan.schema import plan_schema_text

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "agency"
SPECS = Path(__file__).resolve().parent / "data" / "specs"
EXAMPLE_SPEC_FILES = ["syncplan.yaml", "entities.yaml", "flows/clients.yaml",
                      "flows/utilization.yaml"]


def copy_example(target: Path) -> Path:
    """Copy the example's spec and data files, without run outputs, to ``target``."""
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".syncplan", "out"))
    return target


def compiled_text(path: Path) -> str:
    result = compile_project(path)
    assert result.plan is not None, [d.to_text() for d in result.diagnostics]
    return plan_json(result.plan)


# --- the example ---------------------------------------------------------------

def test_example_compiles_cleanly() -> None:
    result = compile_project(EXAMPLE)
    assert result.diagnostics == []
    assert result.ok
    assert result.plan is not None
    assert result.root == EXAMPLE.resolve()
    assert [flow.id for flow in result.plan.flows] == [
        "clients", "deals", "calendar_hours", "utilization"]


def test_example_by_root_file() -> None:
    by_folder = compiled_text(EXAMPLE)
    by_file = compiled_text(EXAMPLE / "syncplan.yaml")
    assert by_file == by_folder


def test_plan_identical_across_compiles() -> None:
    assert compiled_text(EXAMPLE) == compiled_text(EXAMPLE)


def test_plan_identical_in_another_folder(tmp_path: Path) -> None:
    copied = copy_example(tmp_path / "elsewhere" / "agency-copy")
    original = compiled_text(EXAMPLE)
    assert compiled_text(copied) == original
    assert str(tmp_path) not in original
    assert str(REPO) not in original


def test_plan_format_and_hash() -> None:
    document = json.loads(compiled_text(EXAMPLE))
    assert document["format"] == PLAN_FORMAT == "syncplan.plan/1"
    assert document["project"] == "agency"
    assert document["spec_hash"].startswith("sha256:")
    assert len(document["spec_hash"]) == len("sha256:") + 64


def spec_hash(path: Path) -> str:
    result = compile_project(path)
    assert result.plan is not None, [d.to_text() for d in result.diagnostics]
    return result.plan.spec_hash


def test_spec_hash_changes_with_spec(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "agency")
    before = spec_hash(project)
    flows = project / "flows" / "clients.yaml"
    flows.write_text(flows.read_text(encoding="utf-8").replace(
        "Copy the client list", "Copy every client"), encoding="utf-8")
    assert spec_hash(project) != before


def test_spec_hash_changes_with_included_file(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "agency")
    before = spec_hash(project)
    entities = project / "entities.yaml"
    entities.write_text(entities.read_text(encoding="utf-8") + "# reviewed\n",
                        encoding="utf-8")
    assert spec_hash(project) != before


def test_spec_hash_ignores_data_and_location(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "agency")
    before = spec_hash(project)
    (project / "data" / "clients.json").write_text("[]", encoding="utf-8")
    (project / "notes.txt").write_text("not a spec file", encoding="utf-8")
    assert spec_hash(project) == before
    moved = project.rename(tmp_path / "moved")
    assert spec_hash(moved) == before
    assert spec_hash(EXAMPLE) == before


# --- the plan --------------------------------------------------------------------

def test_plan_validates_against_schema() -> None:
    document = json.loads(compiled_text(EXAMPLE))
    validator = Draft202012Validator(schemas.load_schema(schemas.PLAN_SCHEMA))
    problems = [error.message for error in validator.iter_errors(document)]
    assert problems == []


def test_plan_of_every_fixture_validates() -> None:
    validator = Draft202012Validator(schemas.load_schema(schemas.PLAN_SCHEMA))
    for name in ("extra_scope", "secrets", "chain"):
        document = json.loads(compiled_text(SPECS / name))
        assert list(validator.iter_errors(document)) == [], name


def test_plan_loads_back() -> None:
    result = compile_project(EXAMPLE)
    assert result.plan is not None
    text = plan_json(result.plan)
    loaded = load_plan(text)
    assert loaded == result.plan
    assert plan_json(loaded) == text


def test_plan_json_sorted_and_newline_terminated() -> None:
    text = compiled_text(EXAMPLE)
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                              ensure_ascii=False) + "\n"


def test_plan_schema_file_is_generated() -> None:
    committed = (REPO / "schemas" / "plan.schema.json").read_text(encoding="utf-8")
    assert committed == plan_schema_text()


def test_secrets_stay_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCPLAN_TEST_CLIENT_SECRET", "s3cr3t-value-never-in-plans")
    monkeypatch.setenv("SYNCPLAN_TEST_SHEET", "sheet-id-never-in-plans")
    text = compiled_text(SPECS / "secrets")
    assert "s3cr3t-value-never-in-plans" not in text
    assert "sheet-id-never-in-plans" not in text
    plan = load_plan(text)
    crm = plan.systems["crm"]
    report = plan.systems["report"]
    assert crm.auth is not None
    assert crm.auth["client_secret"] == "${env:SYNCPLAN_TEST_CLIENT_SECRET}"
    assert report.settings["credentials"] == "${file:secrets/service-account.json}"
    sheet = report.settings["spreadsheet"]
    assert sheet == "${env:SYNCPLAN_TEST_SHEET:-out/report.xlsx}"


def test_example_sheet_reference_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORT_SHEET", "a-real-spreadsheet-id")
    text = compiled_text(EXAMPLE)
    assert "a-real-spreadsheet-id" not in text
    assert "${env:REPORT_SHEET:-out/agency-report.xlsx}" in text


def test_compile_restores_collector_state(monkeypatch: pytest.MonkeyPatch) -> None:
    import compiler.api

    seen = []
    real_load = compiler.api.load_project

    def load(path: Path) -> Any:
        seen.append(gc.isenabled())
        return real_load(path)

    monkeypatch.setattr(compiler.api, "load_project", load)
    assert gc.isenabled()
    compile_project(EXAMPLE)
    assert gc.isenabled()
    gc.disable()
    try:
        compile_project(EXAMPLE)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert seen == [False, False]


# --- diagnostics -----------------------------------------------------------------

def test_all_schema_errors_reported() -> None:
    result = compile_project(SPECS / "three_errors")
    found = [(d.code, d.file, d.line, d.column) for d in result.diagnostics]
    assert found == [
        ("E102", "flows.yaml", 6, 57),
        ("E102", "syncplan.yaml", 3, 1),
        ("E104", "syncplan.yaml", 12, 18),
    ]
    assert result.plan is None


SEMANTIC_ERRORS = """\
version: 1
systems:
  crm: {kind: csv, path: crm.csv, timezone: Europe/Londn}
  report: {kind: sheets, spreadsheet: out/report.xlsx}
entities:
  client:
    key: id
    fields: {id: {type: string, owner: crm}}
flows:
  clients:
    trigger: {schedule: "0 25 * * *"}
    source: {system: crm}
    map: {entity: client, fields: {id: id}}
    destinations: [{system: report, object: Clients, mode: upsert}]
  copies:
    source: {system: crmm}
    map: {entity: client, fields: {id: id}}
    destinations: [{system: report, object: Copies, mode: upsert}]
"""


def test_all_semantic_errors_reported(tmp_path: Path) -> None:
    (tmp_path / "syncplan.yaml").write_text(SEMANTIC_ERRORS, encoding="utf-8")
    result = compile_project(tmp_path)
    found = [(d.code, d.line, d.column) for d in result.diagnostics]
    assert found == [("E405", 3, 45), ("E406", 11, 25), ("E201", 16, 22)]


# --- include cycles ----------------------------------------------------------------

INCLUDING = """\
version: 1
include: [INCLUDE]
systems:
  crm: {kind: csv, path: crm.csv, columns: [id]}
  report: {kind: sheets, spreadsheet: out/report.xlsx}
entities:
  client: {key: id, fields: {id: {type: string, owner: crm}}}
flows:
  clients:
    source: {system: crm}
    map: {entity: client, fields: {id: id}}
    destinations: [{system: report, object: Clients, mode: upsert}]
"""


def write_files(folder: Path, **files: str) -> None:
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text, encoding="utf-8")


def test_include_of_itself_warns(tmp_path: Path) -> None:
    write_files(tmp_path, syncplan__yaml=INCLUDING.replace("INCLUDE", "syncplan.yaml"))
    result = compile_project(tmp_path)
    assert [(d.severity, d.code, d.file, d.line, d.column)
            for d in result.diagnostics] == [
        ("warning", "W011", "syncplan.yaml", 2, 11)]
    assert "the file it is written in" in result.diagnostics[0].message
    assert result.plan is not None


def test_glob_matching_itself_warns(tmp_path: Path) -> None:
    write_files(tmp_path, syncplan__yaml=INCLUDING.replace("INCLUDE", "'*.yaml'"),
                more__yaml="systems:\n  other: {kind: csv, path: o.csv}\n")
    result = compile_project(tmp_path)
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [
        ("W011", 2, 11)]
    assert "'*.yaml' matches 'syncplan.yaml'" in result.diagnostics[0].message
    assert result.plan is not None
    assert sorted(system.id for system in result.plan.systems.values()) == [
        "crm", "other", "report"]


def test_include_cycle_warns_where_it_closes(tmp_path: Path) -> None:
    write_files(tmp_path, syncplan__yaml=INCLUDING.replace("INCLUDE", "a.yaml"),
                a__yaml="include: [b.yaml]\n",
                b__yaml="include: [c.yaml]\n",
                c__yaml="include: [a.yaml]\n")
    result = compile_project(tmp_path)
    assert [(d.severity, d.code, d.file, d.line, d.column)
            for d in result.diagnostics] == [("warning", "W011", "c.yaml", 1, 11)]
    assert result.diagnostics[0].message == (
        "include 'a.yaml' matches 'a.yaml', which includes 'c.yaml' itself,"
        " directly or through other files (an include cycle)")


def test_include_back_to_root_warns(tmp_path: Path) -> None:
    write_files(tmp_path, syncplan__yaml=INCLUDING.replace("INCLUDE", "more.yaml"),
                more__yaml="include: [syncplan.yaml]\n")
    result = compile_project(tmp_path)
    assert [(d.code, d.file) for d in result.diagnostics] == [("W011", "more.yaml")]


def test_include_twice_without_cycle_is_silent(tmp_path: Path) -> None:
    write_files(tmp_path,
                syncplan__yaml=INCLUDING.replace("INCLUDE", "a.yaml, b.yaml"),
                a__yaml="include: [b.yaml]\n",
                b__yaml="systems:\n  other: {kind: csv, path: o.csv}\n")
    result = compile_project(tmp_path)
    assert result.diagnostics == []
    assert result.plan is not None


def test_diagnostics_are_sorted_and_unique() -> None:
    result = compile_project(SPECS / "three_errors")
    keys = [d.sort_key() for d in result.diagnostics]
    assert keys == sorted(keys)
    assert len(set(result.diagnostics)) == len(result.diagnostics)


def test_warning_does_not_fail() -> None:
    result = compile_project(SPECS / "extra_scope")
    assert [(d.severity, d.code) for d in result.diagnostics] == [("warning", "W501")]
    assert "auth/drive" in result.diagnostics[0].message
    assert result.ok
    assert result.plan is not None


def test_missing_scope_is_error(tmp_path: Path) -> None:
    text = (SPECS / "extra_scope" / "syncplan.yaml").read_text(encoding="utf-8")
    text = text.replace("      - https://www.googleapis.com/auth/spreadsheets\n", "")
    (tmp_path / "syncplan.yaml").write_text(text, encoding="utf-8")
    result = compile_project(tmp_path)
    assert "E502" in [d.code for d in result.diagnostics]
    assert result.plan is None


@pytest.mark.parametrize(("name", "choices", "expected"), [
    ("cvs", ["csv", "ics", "json"], "did you mean 'csv'?"),
    ("upsrt", ["upsert", "update"], "did you mean 'upsert'?"),
    ("Summary", ["summary", "status"], "did you mean 'summary'?"),
    ("attendee", ["attendee_email", "organizer"], "did you mean 'attendee_email'?"),
    ("declned", ["end", "summary"], None),
    ("x", ["a", "y"], None),
    ("zzzz", [], None),
])
def test_did_you_mean_cases(name: str, choices: list[str],
                            expected: str | None) -> None:
    assert did_you_mean(name, choices) == expected


@pytest.mark.parametrize(("first", "second", "distance"), [
    ("", "", 0), ("", "abc", 3), ("abc", "abc", 0), ("ab", "ba", 1), ("cvs", "csv", 1),
    ("cvs", "ics", 2), ("kitten", "sitting", 3), ("ca", "abc", 3),
])
def test_edit_distance_cases(first: str, second: str, distance: int) -> None:
    assert edit_distance(first, second) == distance
    assert edit_distance(second, first) == distance


# --- flow order ------------------------------------------------------------------

def test_flow_order_producers_first() -> None:
    result = compile_project(SPECS / "chain")
    assert result.plan is not None
    order = [flow.id for flow in result.plan.flows]
    assert order == ["c_load", "b_enrich", "a_report"]
    depends = {flow.id: flow.depends_on for flow in result.plan.flows}
    assert depends == {"c_load": [], "b_enrich": ["c_load"], "a_report": ["b_enrich"]}


LOOP_AND_CONSUMER = """\
version: 1
systems:
  report: {kind: sheets, spreadsheet: r.xlsx}
entities:
  x: {key: id, fields: {id: {type: string, owner: syncplan}}}
  y: {key: id, fields: {id: {type: string, owner: syncplan}}}
  z: {key: id, fields: {id: {type: string, owner: syncplan}}}
flows:
  make_x:
    source: {entity: y}
    map: {entity: x, fields: {id: id}}
    destinations: [{system: report, object: X, mode: upsert}]
  make_y:
    source: {entity: x}
    map: {entity: y, fields: {id: id}}
    destinations: [{system: report, object: Y, mode: upsert}]
  make_z:
    source: {entity: x}
    map: {entity: z, fields: {id: id}}
    destinations: [{system: report, object: Z, mode: upsert}]
"""


def test_flow_loop_names_members_only(tmp_path: Path) -> None:
    (tmp_path / "syncplan.yaml").write_text(LOOP_AND_CONSUMER, encoding="utf-8")
    result = compile_project(tmp_path)
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [
        ("E305", 9, 3)]
    assert result.diagnostics[0].message.endswith(": make_x, make_y")
    assert result.plan is None


def test_example_flow_dependencies() -> None:
    result = compile_project(EXAMPLE)
    assert result.plan is not None
    position = {flow.id: index for index, flow in enumerate(result.plan.flows)}
    for flow in result.plan.flows:
        for upstream in flow.depends_on:
            assert position[upstream] < position[flow.id]
    assert result.plan.flow("calendar_hours").depends_on == ["clients"]
    assert result.plan.flow("utilization").depends_on == ["calendar_hours"]


# --- the schemas -----------------------------------------------------------------

def undescribed_properties(node: Any, where: str) -> list[str]:
    """Return the pointers of schema properties that have no description."""
    missing: list[str] = []
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "description" not in subschema:
                    missing.append(f"{where}/properties/{name}")
        for key, value in node.items():
            missing.extend(undescribed_properties(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            missing.extend(undescribed_properties(value, f"{where}/{index}"))
    return missing


@pytest.mark.parametrize("name", schemas.ALL_SCHEMAS)
def test_schema_properties_described(name: str) -> None:
    schema = json.loads((REPO / "schemas" / name).read_text(encoding="utf-8"))
    assert schema.get("description")
    assert undescribed_properties(schema, name) == []


@pytest.mark.parametrize("name", schemas.ALL_SCHEMAS)
def test_schema_is_valid_2020_12(name: str) -> None:
    schema = schemas.load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == name
    Draft202012Validator.check_schema(schema)


# --- robustness ------------------------------------------------------------------

def node_paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [path] if path else []
    if isinstance(data, dict):
        for key, value in data.items():
            paths.extend(node_paths(value, (*path, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths.extend(node_paths(value, (*path, index)))
    return paths


def mutated(data: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    """Return a copy of ``data`` with the node at ``path`` deleted or replaced."""
    result = copy.deepcopy(data)
    parent = result
    for part in path[:-1]:
        parent = parent[part]
    if replacement is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return result


DELETE = object()


@pytest.mark.parametrize("spec_file", EXAMPLE_SPEC_FILES)
def test_mutated_example_never_raises(spec_file: str, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    """Delete each node of the example, or make it a number or an empty mapping.

    No exception escapes, and the analysis never needs its guard against an
    item it did not expect (which logs a warning).
    """
    caplog.set_level(logging.WARNING, logger="compiler")
    project = copy_example(tmp_path / "agency")
    target = project / spec_file
    original = yaml.safe_load(target.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schemas.load_schema(schemas.PLAN_SCHEMA))
    outcomes = set()
    for path in node_paths(original):
        for replacement in (DELETE, 7, {}):
            target.write_text(json.dumps(mutated(original, path, replacement)),
                              encoding="utf-8")
            result = compile_project(project)
            outcomes.add(result.ok)
            if result.plan is None:
                assert result.diagnostics, path
                continue
            document = json.loads(plan_json(result.plan))
            assert list(validator.iter_errors(document)) == [], path
    assert outcomes == {True, False}
    assert [record.getMessage() for record in caplog.records] == []


# --- a project without flows ---------------------------------------------------------

NO_FLOWS = "version: 1\nsystems:\n  crm: {kind: csv, path: crm.csv}\n"


def test_no_flows_warns_at_file(tmp_path: Path) -> None:
    (tmp_path / "syncplan.yaml").write_text(NO_FLOWS, encoding="utf-8")
    result = compile_project(tmp_path)
    assert [(d.severity, d.code, d.file, d.line, d.column)
            for d in result.diagnostics] == [("warning", "W210", "syncplan.yaml", 1, 1)]
    assert result.diagnostics[0].message == (
        "the project defines no flows, so there is nothing to run")
    assert result.plan is not None
    assert result.plan.flows == []


def test_no_flows_warns_at_empty_section(tmp_path: Path) -> None:
    (tmp_path / "syncplan.yaml").write_text(NO_FLOWS + "flows: {}\n",
                                            encoding="utf-8")
    result = compile_project(tmp_path)
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [
        ("W210", 4, 8)]


def test_no_flows_silent_beside_errors(tmp_path: Path) -> None:
    # The errors fail the project; flows may hide in what could not be read.
    (tmp_path / "syncplan.yaml").write_text(NO_FLOWS.replace("csv,", "cvs,"),
                                            encoding="utf-8")
    result = compile_project(tmp_path)
    assert [d.code for d in result.diagnostics] == ["E104"]
