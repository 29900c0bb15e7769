"""One run reports the problems of every stage, each item checked as far as it can be.

A schema error drops only the item it is in (a system, an entity, a field or a
flow); the semantic checks run on the rest, and the ownership and ordering checks
on the flows that analysed cleanly. A reference to a dropped item is not reported
as unknown, and a flow that was not analysed is assumed to feed and produce what
its raw definition names.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from support.projects import HTTP_ITEMS_SPEC

from compiler import compile_project

SPECS = Path(__file__).resolve().parent / "data" / "specs"

# Line numbers, for the expected positions below:
#  1 version       6 client        11 flows
#  2 systems       7 key: id       12 clients
#  3 crm           8 fields        13 source
#  4 report        9 id            14 map
#  5 entities     10 name          15 destinations
BASE = """\
version: 1
systems:
  crm: {kind: csv, path: crm.csv, columns: [id, name]}
  report: {kind: sheets, spreadsheet: out/report.xlsx}
entities:
  client:
    key: id
    fields:
      id: {type: string, owner: crm}
      name: {type: string, owner: crm}
flows:
  clients:
    source: {system: crm}
    map: {entity: client, fields: {id: id, name: name}}
    destinations: [{system: report, object: Clients, mode: upsert}]
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def found(tmp_path: Path, text: str, **more: str) -> list[tuple[str, int, int]]:
    """Compile a project of ``text`` (and ``more`` files); return code, line, column."""
    (tmp_path / "syncplan.yaml").write_text(text, encoding="utf-8")
    for name, content in more.items():
        (tmp_path / name.replace("__", ".")).write_text(content, encoding="utf-8")
    result = compile_project(tmp_path)
    if any(d.severity == "error" for d in result.diagnostics):
        assert result.plan is None
    return [(d.code, d.line, d.column) for d in result.diagnostics]


# --- every stage in one run ---------------------------------------------------------

def test_three_stages_in_one_run() -> None:
    result = compile_project(SPECS / "three_flows")
    assert [(d.code, d.file, d.line, d.column) for d in result.diagnostics] == [
        ("E102", "syncplan.yaml", 19, 51),
        ("E201", "syncplan.yaml", 21, 22),
        ("E602", "syncplan.yaml", 29, 43),
    ]
    assert "'colums'" in result.diagnostics[0].message
    assert "'crmm'" in result.diagnostics[1].message
    assert "mirrors records" in result.diagnostics[2].message
    assert result.plan is None


def test_schema_and_ownership_in_one_run() -> None:
    result = compile_project(SPECS / "schema_and_ownership")
    assert [(d.code, d.line, d.column) for d in result.diagnostics] == [
        ("E104", 18, 48),
        ("E303", 28, 34),
    ]
    assert "flows 'first' and 'second'" in result.diagnostics[1].message


def test_schema_error_in_included_file_and_root(tmp_path: Path) -> None:
    text = edit("version: 1\n", "version: 1\ninclude: [more.yaml]\n")
    text = edit("source: {system: crm}", "source: {system: crmm}", text)
    more = ("flows:\n  other:\n    source: {system: crm}\n"
            "    map: {entity: client, fields: {id: id}}\n"
            "    destinations: [{system: report, object: Other, mode: upsrt}]\n")
    result = found(tmp_path, text, more__yaml=more)
    assert result == [("E104", 5, 58), ("E201", 14, 22)]


def test_semantic_errors_beside_schema_error_in_same_flow(tmp_path: Path) -> None:
    # The flow has the schema error, so its unknown system is not checked, but
    # the entity's bad owner is.
    text = edit("mode: upsert}", "mode: upsert, objet: x}")
    text = edit("source: {system: crm}", "source: {system: crmm}", text)
    text = edit("name: {type: string, owner: crm}",
                "name: {type: string, owner: crmm}", text)
    assert found(tmp_path, text) == [("E209", 10, 35), ("E102", 15, 68)]


# --- references to dropped items ----------------------------------------------------

def test_dropped_system_not_unknown(tmp_path: Path) -> None:
    text = edit("kind: csv,", "kind: cvs,")
    assert found(tmp_path, text) == [("E104", 3, 15)]


def test_dropped_system_as_destination(tmp_path: Path) -> None:
    text = edit("spreadsheet: out/report.xlsx}", "spreadsheet: 12}")
    assert found(tmp_path, text) == [("E101", 4, 39)]


def test_dropped_entity_not_unknown(tmp_path: Path) -> None:
    text = edit("    key: id\n", "    key: id\n    colour: red\n")
    assert found(tmp_path, text) == [("E102", 8, 5)]


def test_dropped_field_not_unknown(tmp_path: Path) -> None:
    text = edit("name: {type: string, owner: crm}",
                "name: {type: text, owner: crm}")
    assert found(tmp_path, text) == [("E104", 10, 20)]


def test_dropped_field_read_by_template(tmp_path: Path) -> None:
    text = edit("name: {type: string, owner: crm}",
                "name: {type: text, owner: crm}\n"
                "      label: {type: string, owner: syncplan,"
                " derived: '{{ record.name }}'}")
    assert found(tmp_path, text) == [("E104", 10, 20)]


def test_dropped_key_field_keeps_others_checked(tmp_path: Path) -> None:
    # The key field is broken, so the entity is not lowered; the flow's unknown
    # stream is still reported.
    text = edit("id: {type: string, owner: crm}", "id: {type: strin, owner: crm}")
    text = edit("source: {system: crm}", "source: {system: crm, stream: row}", text)
    assert found(tmp_path, text) == [("E104", 9, 18), ("E204", 13, 35)]


AGENCY = Path(__file__).resolve().parents[1] / "examples" / "agency"


@pytest.mark.parametrize(("broken", "code"), [
    ("monthly_budget_hours: {type: decimel,", "E104"),
    ("monthly_budget_hours: {type: decimal, owner: client_list, scale: \"one\",",
     "E101"),
])
def test_dropped_field_in_destination_columns(tmp_path: Path, broken: str,
                                              code: str) -> None:
    # The Clients tab's columns name the field; it exists, only its definition
    # is wrong, so the schema error is the only diagnostic.
    project = tmp_path / "agency"
    shutil.copytree(AGENCY, project,
                    ignore=shutil.ignore_patterns("out", ".syncplan"))
    entities = project / "entities.yaml"
    text = entities.read_text(encoding="utf-8")
    good = ("monthly_budget_hours: {type: decimal, owner: client_list, scale: 1,"
            if code == "E101" else "monthly_budget_hours: {type: decimal,")
    entities.write_text(edit(good, broken, text), encoding="utf-8")

    result = compile_project(project)

    assert [(d.code, d.file, d.pointer.rsplit("/", 1)[-1])
            for d in result.diagnostics] == [
        (code, "entities.yaml", "type" if code == "E104" else "scale")]


def test_dropped_field_in_columns_not_written(tmp_path: Path) -> None:
    # An explicit 'fields' list without the broken field: its column is a real
    # error, whatever the field's definition.
    text = edit("name: {type: string, owner: crm}", "name: {type: text, owner: crm}")
    text = edit("mode: upsert}]", "mode: upsert, fields: [id],"
                " columns: {name: Name}}]", text)
    assert [code for code, _, _ in found(tmp_path, text)] == ["E104", "E203"]


def test_unknown_name_still_reported_beside_dropped(tmp_path: Path) -> None:
    text = edit("kind: csv,", "kind: cvs,")
    text = edit("{system: report,", "{system: reprt,", text)
    assert found(tmp_path, text) == [("E104", 3, 15), ("E201", 15, 29)]


def test_section_of_wrong_type(tmp_path: Path) -> None:
    text = edit("entities:\n  client:\n    key: id\n    fields:\n"
                "      id: {type: string, owner: crm}\n"
                "      name: {type: string, owner: crm}\n",
                "entities: [client]\n")
    assert found(tmp_path, text) == [("E101", 5, 11)]


def test_mapping_under_unknown_top_key(tmp_path: Path) -> None:
    text = edit("systems:\n", "systemz:\n")
    assert found(tmp_path, text) == [("E102", 2, 1)]


def test_scalar_under_unknown_top_key(tmp_path: Path) -> None:
    # A misspelt scalar key cannot hold definitions, so references are checked.
    text = edit("version: 1\n", "version: 1\ndescripton: clients\n")
    text = edit("{system: report,", "{system: reprt,", text)
    assert found(tmp_path, text) == [("E102", 2, 1), ("E201", 16, 29)]


def test_unreadable_include_hides_unknown_names(tmp_path: Path) -> None:
    text = edit("version: 1\n", "version: 1\ninclude: [systems.yaml]\n")
    text = edit("source: {system: crm}", "source: {system: api}", text)
    more = "systems:\n  api: {kind: http, base_url: 'https://a.example'\n"
    assert [code for code, _, _ in found(tmp_path, text, systems__yaml=more)] == [
        "E003"]


def test_missing_include_hides_unknown_names(tmp_path: Path) -> None:
    text = edit("version: 1\n", "version: 1\ninclude: [systems.yaml]\n")
    text = edit("source: {system: crm}", "source: {system: api}", text)
    assert found(tmp_path, text) == [("E011", 2, 11)]


def test_duplicate_key_drops_its_item(tmp_path: Path) -> None:
    text = edit("kind: csv, path: crm.csv,", "kind: csv, path: crm.csv, kind: csv,")
    text = edit("{system: report,", "{system: reprt,", text)
    assert found(tmp_path, text) == [("E005", 3, 35), ("E201", 15, 29)]


# --- flows that were not analysed ----------------------------------------------------

HTTP = HTTP_ITEMS_SPEC


def http_flow(name: str, source: str, destination: str, extra: str = "") -> str:
    """Return one flow that copies both fields of 'item' between REST systems."""
    body = "{id: '{{ record.id }}', name: '{{ record.name }}'}"
    return (f"  {name}:\n"
            f"    source: {{system: {source}}}\n"
            "    map: {entity: item, fields: {id: id, name: name}}\n"
            f"    destinations:\n"
            f"      - {{system: {destination}, object: Items, mode: upsert{extra},"
            f" http: {{create: {{path: /items, body: {body}}},"
            f" update: {{path: /items, body: {body}}}, id: id}}}}\n")


def test_broken_feeding_flow_hides_e301(tmp_path: Path) -> None:
    text = HTTP + http_flow("a_to_b", "a", "b", extra=", colour: red") + http_flow(
        "b_to_c", "b", "c")
    assert [code for code, _, _ in found(tmp_path, text)] == ["E102"]


def test_rejected_feeding_flow_hides_e301(tmp_path: Path) -> None:
    # a_to_b fails the analysis (its source stream does not exist), not the
    # schema; it may still feed b once fixed.
    flow = http_flow("a_to_b", "a", "b").replace("{system: a}",
                                                 "{system: a, stream: itemz}")
    text = HTTP + flow + http_flow("b_to_c", "b", "c")
    assert [code for code, _, _ in found(tmp_path, text)] == ["E204"]


def test_unrelated_broken_flow_keeps_e301(tmp_path: Path) -> None:
    # The broken flow writes into a, not b, so nothing may feed b.
    text = HTTP + http_flow("c_to_a", "c", "a", extra=", colour: red") + http_flow(
        "b_to_c", "b", "c")
    codes = [code for code, _, _ in found(tmp_path, text)]
    assert codes.count("E301") == 2
    assert "E102" in codes


def test_broken_producer_hides_e205(tmp_path: Path) -> None:
    text = BASE + ("  report_clients:\n    source: {entity: client}\n"
                   "    map: {entity: client, fields: {id: id, name: name}}\n"
                   "    destinations: [{system: report, object: Copy, mode: upsert}]\n")
    text = edit("mode: upsert}]\n  report_clients", "mode: upsrt}]\n  report_clients",
                text)
    assert [code for code, _, _ in found(tmp_path, text)] == ["E104"]


# --- robustness -----------------------------------------------------------------------

def test_no_item_skipped_for_an_unexpected_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every broken spec of test_bad_specs analyses without the safety guard."""
    from test_bad_specs import CASES, write_project

    caplog.set_level(logging.WARNING, logger="compiler")
    for index, case in enumerate(CASES):
        (tmp_path / str(index)).mkdir()
        project = write_project(tmp_path / str(index), case.files)
        result = compile_project(project)
        assert result.diagnostics, case.id
    assert [r.getMessage() for r in caplog.records] == []
