"""End-to-end runs of the example project and of small projects built in tmp_path."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from compiler import compile_project
from compiler.plan.models import ColumnPlan
from runtime.runner import PlanRunner, _changed_cells
from runtime.sheets.base import Grid
from runtime.sheets.engine import plan_tab_sync
from runtime.state import StateStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agency"


@pytest.fixture()
def agency(tmp_path: Path) -> Path:
    target = tmp_path / "agency"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("out", ".syncplan"))
    return target


def run_project(root: Path, flows: list[str] | None = None):
    result = compile_project(root)
    assert result.plan is not None, [d.to_text() for d in result.diagnostics]
    state = StateStore(root / ".syncplan" / "state.db")
    try:
        return PlanRunner(result.plan, root, state).run(flows)
    finally:
        state.close()


def sheet_rows(path: Path, tab: str) -> list[tuple]:
    workbook = openpyxl.load_workbook(path)
    return [tuple(row) for row in workbook[tab].iter_rows(values_only=True)]


def by_flow(results):
    return {result.flow: result for result in results}


def test_example_first_run_writes_every_tab(agency: Path) -> None:
    results = by_flow(run_project(agency))

    assert all(r.status == "succeeded" for r in results.values())
    report = agency / "out" / "agency-report.xlsx"
    workbook = openpyxl.load_workbook(report)
    assert {"Clients", "Deals", "Time entries", "Utilization", "Errors", "Runs"} <= set(
        workbook.sheetnames)
    assert results["clients"].created == 4
    assert results["deals"].created == 4  # six rows: one lost deal, one bad date
    assert results["deals"].filtered == 1
    assert results["deals"].failed == 1


def test_example_second_run_changes_nothing(agency: Path) -> None:
    run_project(agency)
    report = agency / "out" / "agency-report.xlsx"
    before = {tab: sheet_rows(report, tab)
              for tab in ("Clients", "Deals", "Time entries", "Utilization", "Errors")}

    results = run_project(agency)

    for result in results:
        assert result.created == 0, result.flow
        assert result.updated == 0, result.flow
        assert result.deleted == 0, result.flow
    after = {tab: sheet_rows(report, tab) for tab in before}
    assert after == before
    runs = sheet_rows(report, "Runs")
    assert len([row for row in runs[1:] if row[0]]) == 8  # one row per run, 4 flows x 2


def test_example_values_are_typed_and_normalized(agency: Path) -> None:
    run_project(agency)
    report = agency / "out" / "agency-report.xlsx"
    clients = sheet_rows(report, "Clients")
    assert clients[0] == ("Client code", "Client", "Account lead", "Calendar tag",
                          "Budget h/month")
    acme = next(row for row in clients if row[0] == "ACM-001")
    assert acme[1] == "Acme Ltd"  # collapse_spaces
    assert acme[2] == "ana.lopez@agency.example"  # email lowercased
    assert isinstance(acme[4], (int, float))
    umbrella = [row for row in clients if row[1] == "Umbrella Health"]
    assert umbrella[0][0] == "UMB-004"  # upper normalizer

    deals = sheet_rows(report, "Deals")
    rebuild = next(row for row in deals if row[0] == "D-1001")
    assert rebuild[3] == 48000
    # The close date 02/10/2026 is read day first, and a date cell has no time.
    assert rebuild[5] == dt.datetime(2026, 10, 2, 0, 0)


def test_example_calendar_rules(agency: Path) -> None:
    run_project(agency)
    report = agency / "out" / "agency-report.xlsx"
    entries = sheet_rows(report, "Time entries")
    header = entries[0]
    rows = [dict(zip(header, row)) for row in entries[1:] if row[0]]
    summaries = {row["Meeting"] for row in rows}
    # The cancelled kickoff, the declined prep (for Ana) and the leave never count.
    assert "Umbrella kickoff" not in summaries
    assert "Ben - annual leave" not in summaries
    prep = [row for row in rows if row["Meeting"] == "Initech pitch prep"]
    # Chen organizes, Ben accepted, Ana declined.
    assert sorted(row["Person"] for row in prep) == ["ben.okafor@agency.example",
                                                     "chen.wu@agency.example"]
    # External attendees are not agency people.
    assert all(row["Person"].endswith("@agency.example") for row in rows)
    # Weekly 10:00 London stays 10:00 local after the clocks go back on 25 October.
    acme = sorted(row["Start"] for row in rows if row["Meeting"] == "Acme weekly status"
                  and row["Person"] == "ana.lopez@agency.example")
    assert all(start.hour == 10 for start in acme)
    days = [start.date() for start in acme]
    assert dt.date(2026, 10, 20) not in days  # moved to the 21st
    assert dt.date(2026, 11, 3) not in days  # EXDATE
    assert dt.date(2026, 11, 17) not in days  # cancelled override
    moved = [row for row in rows if row["Meeting"] == "Acme weekly status (moved)"]
    assert {row["Start"] for row in moved} == {dt.datetime(2026, 10, 21, 14, 0)}
    assert {row["Hours"] for row in moved} == {1.5}


def test_example_utilization_sums_hours(agency: Path) -> None:
    run_project(agency)
    report = agency / "out" / "agency-report.xlsx"
    rows = sheet_rows(report, "Utilization")
    header = rows[0]
    table = [dict(zip(header, row)) for row in rows[1:] if row[0]]
    week = [row for row in table if row["Person"] == "ana.lopez@agency.example"
            and row["Week of"].date() == dt.date(2026, 11, 2)]
    # Ana's week of 2 November: the Umbrella workshop (3 h); the Acme status on the
    # 3rd is an EXDATE.
    assert [(row["Client code"], row["Hours"]) for row in week] == [("UMB-004", 3)]
    total = sum(Decimal(str(row["Hours"])) for row in table)
    entries = sheet_rows(report, "Time entries")
    hours_index = entries[0].index("Hours")
    assert total == sum(Decimal(str(row[hours_index])) for row in entries[1:]
                        if row[0])


def test_example_errors_are_kept_in_state_and_tab(agency: Path) -> None:
    results = by_flow(run_project(agency))
    state = sqlite3.connect(agency / ".syncplan" / "state.db")
    stored = state.execute("SELECT flow, record_key, field, code, raw FROM errors"
                           " ORDER BY flow").fetchall()
    state.close()

    assert ("deals", "D-1006", "close_date", "invalid_date", "31/11/2026") in stored
    assert any(row[0] == "calendar_hours" and row[3] == "lookup_not_found"
               for row in stored)
    errors_tab = sheet_rows(agency / "out" / "agency-report.xlsx", "Errors")
    codes = {row[errors_tab[0].index("Code")] for row in errors_tab[1:] if row[0]}
    assert codes == {"invalid_date", "lookup_not_found"}
    assert results["calendar_hours"].failed == 1


def test_people_columns_and_rows_survive(agency: Path) -> None:
    run_project(agency)
    report = agency / "out" / "agency-report.xlsx"
    workbook = openpyxl.load_workbook(report)
    clients = workbook["Clients"]
    clients.cell(row=1, column=7, value="Notes")
    clients.cell(row=2, column=7, value="renewal in March")
    clients.cell(row=3, column=7, value="=LEN(B3)")
    clients.append(["ZZZ-999", "A client typed by hand"])
    workbook.save(report)

    (agency / "data" / "clients.json").write_text(
        (agency / "data" / "clients.json").read_text().replace("Globex Corporation",
                                                               "Globex Corp"))
    results = by_flow(run_project(agency, ["clients"]))

    assert results["clients"].updated == 1
    rows = sheet_rows(report, "Clients")
    assert rows[1][6] == "renewal in March"
    assert rows[2][6] == "=LEN(B3)"
    assert any(row[0] == "ZZZ-999" for row in rows)
    assert any(row[1] == "Globex Corp" for row in rows)


def test_missing_source_fails_run_but_not_others(agency: Path) -> None:
    (agency / "data" / "closed-deals.csv").unlink()
    results = by_flow(run_project(agency))

    assert results["deals"].status == "failed"
    assert "closed-deals.csv" in (results["deals"].message or "")
    assert results["clients"].status == "succeeded"
    assert results["calendar_hours"].status == "succeeded"


def test_default_of_wrong_type_fails_flow(agency: Path) -> None:
    entities = agency / "entities.yaml"
    text = entities.read_text(encoding="utf-8")
    old = "scale: 1, minimum: 0}"
    assert old in text
    entities.write_text(text.replace(old, "scale: 1, minimum: 0,"
                                     " normalize: [{default: abc}]}"), encoding="utf-8")

    done = subprocess.run([sys.executable, "-m", "sheets_addon.cli", "run", str(agency),
                           "--flow", "clients"], capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 1
    assert "the default 'abc' is not a valid decimal" in done.stderr
    assert "internal error" not in done.stderr
    assert "Traceback" not in done.stderr


def test_mirror_removes_rows_of_vanished_events(agency: Path) -> None:
    run_project(agency)
    ics = agency / "data" / "team.ics"
    text = ics.read_bytes().decode("utf-8")
    start = text.index("BEGIN:VEVENT\r\nUID:umbrella-workshop")
    end = text.index("END:VEVENT\r\n", start) + len("END:VEVENT\r\n")
    ics.write_bytes((text[:start] + text[end:]).encode("utf-8"))

    results = by_flow(run_project(agency))

    assert results["calendar_hours"].deleted == 2  # Chen organized, Ana attended
    entries = sheet_rows(agency / "out" / "agency-report.xlsx", "Time entries")
    assert not any(row[2] == "Umbrella discovery workshop" for row in entries)


def test_cli_run_prints_summary_and_path(agency: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sheets_addon", "run", str(agency)],
        capture_output=True, text=True, timeout=120)

    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    first = completed.stdout.splitlines()[0].split()
    assert first[:3] == ["flow", "status", "read"]
    assert "agency-report.xlsx" in completed.stdout
    assert "invalid_date" in completed.stderr


def test_cli_run_one_flow_and_unknown_flow(agency: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "sheets_addon", "run", str(agency),
                         "--flow", "clients"], capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert [line.split()[0] for line in ok.stdout.splitlines()[1:2]] == ["clients"]

    bad = subprocess.run([sys.executable, "-m", "sheets_addon", "run", str(agency),
                          "--flow", "clinets"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2
    assert "did you mean 'clients'?" in bad.stderr


def test_cli_run_failed_flow_exits_1(agency: Path) -> None:
    (agency / "data" / "team.ics").unlink()
    completed = subprocess.run([sys.executable, "-m", "sheets_addon", "run",
                                str(agency)], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 1
    assert "team.ics" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_cli_runs_compiled_plan_file(agency: Path, tmp_path: Path) -> None:
    plan_file = agency / "plan.json"
    compiled = subprocess.run([sys.executable, "-m", "sheets_addon", "compile",
                               str(agency), "-o", str(plan_file)], capture_output=True,
                              text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    ran = subprocess.run([sys.executable, "-m", "sheets_addon", "run",
                          str(plan_file), "--state", str(tmp_path / "s.db")],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert (agency / "out" / "agency-report.xlsx").exists()


def test_cli_rejects_broken_plan_file(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text('{"format": "syncplan.plan/1", "flows": "nope"}')
    completed = subprocess.run([sys.executable, "-m", "sheets_addon", "run",
                                str(plan_file)], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 1
    assert "not a runnable plan" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_unset_reference_without_default_fails_run(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    (tmp_path / "rows.csv").write_text("id,name\n1,a\n")
    (tmp_path / "syncplan.yaml").write_text(textwrap.dedent("""\
        version: 1
        systems:
          src: {kind: csv, path: rows.csv}
          out: {kind: sheets, spreadsheet: "${env:SYNCPLAN_TEST_SHEET}"}
        entities:
          row:
            key: id
            fields:
              id: {type: integer, owner: src}
              name: {type: string, owner: src}
        flows:
          rows:
            source: {system: src}
            map: {entity: row, fields: {id: id, name: name}}
            destinations: [{system: out, object: Rows, mode: upsert}]
        """))
    monkeypatch.delenv("SYNCPLAN_TEST_SHEET", raising=False)
    results = by_flow(run_project(tmp_path))
    assert results["rows"].status == "failed"
    assert "SYNCPLAN_TEST_SHEET" in (results["rows"].message or "")

    monkeypatch.setenv("SYNCPLAN_TEST_SHEET", str(tmp_path / "elsewhere.xlsx"))
    results = by_flow(run_project(tmp_path))
    assert results["rows"].status == "succeeded"
    assert sheet_rows(tmp_path / "elsewhere.xlsx", "Rows")[1] == (1, "a")


def test_retry_reprocesses_kept_records(agency: Path) -> None:
    results = by_flow(run_project(agency))
    failed_run = results["calendar_hours"].run_id
    clients = agency / "data" / "clients.json"
    clients.write_text(clients.read_text().replace(
        '"clients": [', '"clients": [\n    {"code": "HOO-005", "name": "Hooli",'
        ' "calendar_tag": "hooli", "budget": {"hours_per_month": 5}},'))
    run_project(agency, ["clients"])

    compiled = compile_project(agency)
    state = StateStore(agency / ".syncplan" / "state.db")
    try:
        retried = PlanRunner(compiled.plan, agency, state).retry(failed_run)
        runs = state.runs("calendar_hours")
    finally:
        state.close()

    assert retried.status == "succeeded"
    assert (retried.read, retried.created, retried.failed) == (1, 1, 0)
    assert len(runs) == 2
    report = agency / "out" / "agency-report.xlsx"
    entries = sheet_rows(report, "Time entries")
    hooli = [row for row in entries if row[2] == "Intro call with Hooli"]
    assert [row[5] for row in hooli] == ["HOO-005"]
    # The other rows stayed: a retry upserts, even into a mirror destination.
    assert len([row for row in entries[1:] if row[0]]) == 25
    errors_tab = sheet_rows(report, "Errors")
    codes = {row[errors_tab[0].index("Code")] for row in errors_tab[1:] if row[0]}
    assert codes == {"invalid_date"}


def test_retry_unknown_error_id_is_rejected(agency: Path) -> None:
    results = by_flow(run_project(agency))
    compiled = compile_project(agency)
    state = StateStore(agency / ".syncplan" / "state.db")
    try:
        with pytest.raises(Exception, match="has no error 'nope'"):
            PlanRunner(compiled.plan, agency, state).retry(
                results["deals"].run_id, ["nope"])
    finally:
        state.close()


def test_cli_rejects_plan_naming_unknown_system(agency: Path) -> None:
    plan_file = agency / "plan.json"
    subprocess.run([sys.executable, "-m", "sheets_addon", "compile", str(agency),
                    "-o", str(plan_file)], check=True, capture_output=True)
    plan_file.write_text(plan_file.read_text().replace('"system": "client_list"',
                                                       '"system": "nope"'))

    completed = subprocess.run([sys.executable, "-m", "sheets_addon", "run",
                                str(plan_file)], capture_output=True, text=True,
                               timeout=120)

    assert completed.returncode == 1
    assert "reads the unknown system 'nope'" in completed.stderr
    assert "internal error" not in completed.stderr


def test_plan_command_writes_no_state(agency: Path) -> None:
    completed = subprocess.run([sys.executable, "-m", "sheets_addon", "plan",
                                str(agency)], capture_output=True, text=True,
                               timeout=120)

    assert completed.returncode == 0, completed.stderr
    assert "clients -> report/Clients: 4 to create" in completed.stdout
    assert not (agency / ".syncplan").exists()
    assert not (agency / "out").exists()


def test_failed_run_gets_a_runs_row(agency: Path) -> None:
    (agency / "data" / "closed-deals.csv").unlink()
    results = by_flow(run_project(agency))

    runs = sheet_rows(agency / "out" / "agency-report.xlsx", "Runs")
    header = runs[0]
    rows = [dict(zip(header, row)) for row in runs[1:] if row[0]]
    failed = [row for row in rows if row["Flow"] == "deals"]
    assert [row["Status"] for row in failed] == ["failed"]
    assert failed[0]["Run ID"] == results["deals"].run_id
    assert "closed-deals.csv" in failed[0]["Message"]
    assert {row["Status"] for row in rows if row["Flow"] != "deals"} == {"succeeded"}


def test_lookup_before_its_entity_exists_says_so(agency: Path) -> None:
    results = by_flow(run_project(agency, ["calendar_hours"]))

    codes = {error["code"] for error in results["calendar_hours"].errors}
    assert codes == {"lookup_not_found"}
    message = results["calendar_hours"].errors[0]["message"]
    assert "no client records" in message
    assert "run the flow that produces client first" in message


def test_preview_shows_serial_cells_as_dates() -> None:
    # Google Sheets reads a date cell as its serial: 45352 is 2024-03-01.
    grid = Grid([["ID", "Day", "Hours"], [1, 45352, 1.5]])
    columns = [ColumnPlan(field="id", header="ID"),
               ColumnPlan(field="day", header="Day"),
               ColumnPlan(field="hours", header="Hours")]
    types = {"id": "integer", "day": "date", "hours": "decimal"}
    record = {"id": 1, "day": dt.date(2024, 3, 5), "hours": 2}
    sync = plan_tab_sync(grid, [record], columns, types, mode="upsert", key=["id"])

    assert _changed_cells(grid, sync) == [
        ("B2", dt.date(2024, 3, 1), dt.date(2024, 3, 5)),
        ("C2", 1.5, 2)]


def rename_clients_key_header(agency: Path) -> None:
    """Rename the Clients tab's key header and change a client, so a run has work."""
    report = agency / "out" / "agency-report.xlsx"
    workbook = openpyxl.load_workbook(report)
    workbook["Clients"]["A1"] = "Client ID"
    workbook.save(report)
    clients = agency / "data" / "clients.json"
    clients.write_text(clients.read_text(encoding="utf-8").replace(
        "Globex Corporation", "Globex Corp"), encoding="utf-8")


def test_dry_run_reports_run_problems(agency: Path) -> None:
    run_project(agency, ["clients"])
    rename_clients_key_header(agency)
    compiled = compile_project(agency)
    state = StateStore(agency / ".syncplan" / "state.db")
    try:
        (preview,) = PlanRunner(compiled.plan, agency, state, dry_run=True).run(
            ["clients"])
    finally:
        state.close()

    (real,) = run_project(agency, ["clients"])

    assert [error["code"] for error in preview.errors] == ["key_column_missing"]
    assert [(e["code"], e["position"]) for e in preview.errors] == [
        (e["code"], e["position"]) for e in real.errors]
    assert preview.failed == 1


def test_plan_command_prints_missing_key(agency: Path) -> None:
    from click.testing import CliRunner

    from sheets_addon.cli import cli

    run_project(agency, ["clients"])
    rename_clients_key_header(agency)

    done = CliRunner().invoke(cli, ["plan", str(agency), "--flow", "clients"])

    assert done.exit_code == 0, done.output
    assert "clients: 1 record error(s) would be reported; first ones:" in done.stderr
    assert "  [key_column_missing] report/Clients client_code: Key column" \
        " 'Client code'" in done.stderr


def cli_run(agency: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from sheets_addon.cli import cli

    return CliRunner().invoke(cli, ["run", str(agency), *args])


def test_cli_second_run_writes_no_data(agency: Path) -> None:
    report = agency / "out" / "agency-report.xlsx"
    first = cli_run(agency)

    second = cli_run(agency)

    assert first.exit_code == 0, first.output
    assert (f"wrote {report}: report/Clients, report/Deals, report/Time entries,"
            " report/Utilization\n") in first.stdout
    assert second.exit_code == 0, second.output
    assert "wrote " not in second.stdout
    assert f"no data changes in {report}\n" in second.stdout


def test_cli_run_lists_changed_tabs_only(agency: Path) -> None:
    report = agency / "out" / "agency-report.xlsx"
    cli_run(agency)
    clients = agency / "data" / "clients.json"
    clients.write_text(clients.read_text(encoding="utf-8").replace(
        "Globex Corporation", "Globex Corp"), encoding="utf-8")

    done = cli_run(agency, "--flow", "clients", "--flow", "deals")

    assert done.exit_code == 0, done.output
    assert f"wrote {report}: report/Clients\n" in done.stdout


def test_cli_missing_key_column_writes_nothing(agency: Path) -> None:
    report = agency / "out" / "agency-report.xlsx"
    run_project(agency, ["clients"])
    rename_clients_key_header(agency)

    done = cli_run(agency, "--flow", "clients")

    assert done.exit_code == 0, done.output
    assert "wrote " not in done.stdout
    assert f"no data changes in {report}\n" in done.stdout
    assert "[key_column_missing] report/Clients" in done.stderr
