"""Spreadsheet limits checked for a whole run, before its first write.

A run plans every tab of a spreadsheet, then checks them together: Google
Sheets' 10 million cells across all tabs, Excel's rows and columns per
worksheet. A run that would pass a limit writes no data tab of that
spreadsheet, and its Errors and Runs tabs, warnings and cursor report it.

The Google runs go to the local Sheets emulator, whose spreadsheet starts with
a tab of 399,000 x 25 empty cells, so 25,000 cells are left. The limit itself
is the real one: the backend has no setting for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner

from compiler import compile_project
from compiler.plan.models import ColumnPlan, RateLimit, SystemPlan
from runtime import runner as runner_module
from runtime.runner import FlowResult, PlanRunner
from runtime.sheets.base import LimitExceeded
from runtime.sheets.engine import plan_tab_sync
from runtime.sheets.tabs import check_run_limits
from runtime.state import StateStore
from sheets_addon.cli import cli
from sheets_addon.emulator import SheetsEmulator
from sheets_addon.google import session as session_module
from sheets_addon.google.backend import GoogleSheetsBackend
from sheets_addon.google.session import build_client
from tests.support.sheet_views import displayed_rows

DESTINATIONS = """\
      - {system: report, object: Alpha, mode: mirror, key: id,
         columns: {id: ID, name: Name, day: Day}}
      - {system: report, object: Beta, mode: upsert, key: id,
         columns: {id: ID, name: Name, day: Day}}
"""
SPEC = """\
version: 1
project: limits
systems:
  src: {{kind: csv, path: people.csv}}
  report:
    kind: sheets
    spreadsheet: "{spreadsheet}"
    rate_limit: {{requests: 1000, per: second}}
entities:
  person:
    key: id
    fields:
      id: {{type: integer, owner: src}}
      name: {{type: string, owner: src}}
      day: {{type: date, owner: src}}
flows:
  people:
    source: {{system: src, cursor: id}}
    map: {{entity: person, fields: {{id: id, name: name, day: day}}}}
    destinations:
{destinations}"""
COLUMNS = [ColumnPlan(field="id", header="ID"), ColumnPlan(field="name", header="Name"),
           ColumnPlan(field="day", header="Day")]
TYPES = {"id": "integer", "name": "string", "day": "date"}
LONG_NAME = "x" * 60_000
FIRST_ROWS = 10
# Each data tab of 5,000 more rows takes about 15,000 of the 21,900 cells left
# after the first run: either tab fits alone, both do not.
TOO_MANY = 5_000
# 3,000 more rows each take about 18,000 cells for both tabs: they fit.
FITTING = 3_000


def source_rows(first: int, count: int) -> list[tuple[int, str, str]]:
    return [(key, f"p{key}", (dt.date(2024, 1, 1) + dt.timedelta(days=key % 300))
             .isoformat()) for key in range(first, first + count)]


def with_problems(rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """Return ``rows`` with a name over the cell limit and a date that is not one."""
    rows = list(rows)
    key, _, day = rows[0]
    rows[0] = (key, LONG_NAME, day)
    key, name, _ = rows[1]
    rows[1] = (key, name, "not a date")
    return rows


class Project:
    """A one-flow project run in this process, the way ``syncplan run`` runs it."""

    def __init__(self, root: Path, spreadsheet: str, destinations: str = DESTINATIONS
                 ) -> None:
        self.root = root
        (root / "syncplan.yaml").write_text(
            SPEC.format(spreadsheet=spreadsheet, destinations=destinations),
            encoding="utf-8")

    def write_source(self, rows: Sequence[tuple[int, str, str]]) -> None:
        lines = ["id,name,day", *(f"{key},{name},{day}" for key, name, day in rows)]
        (self.root / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def run(self, *, dry_run: bool = False) -> FlowResult:
        compiled = compile_project(self.root)
        assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
        state = self.state()
        try:
            (result,) = PlanRunner(compiled.plan, self.root, state,
                                   dry_run=dry_run).run()
        finally:
            state.close()
        return result

    def state(self) -> StateStore:
        return StateStore(self.root / ".syncplan" / "state.db")

    def cursor(self) -> str | None:
        state = self.state()
        try:
            return state.cursor("people", "rows")
        finally:
            state.close()

    def written_keys(self, tab: str) -> set[str]:
        state = self.state()
        try:
            return state.written_keys("report", tab)
        finally:
            state.close()


def codes_by_place(result: FlowResult) -> list[tuple[str, str]]:
    return sorted((error["code"], error["position"]) for error in result.errors)


def errors_by_id(result: FlowResult) -> dict[str, str]:
    """Return the code of each error id of a run, as the Errors tab contains them."""
    return {error["error_id"]: error["code"] for error in result.errors}


# --- Google Sheets ------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[SheetsEmulator]:
    with SheetsEmulator() as running:
        yield running


class GoogleProject(Project):
    """A project writing a spreadsheet of the emulator that is nearly full."""

    def __init__(self, root: Path, emulator: SheetsEmulator,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.emulator = emulator
        self.spreadsheet_id = emulator.create_spreadsheet("limits", [{"properties": {
            "title": "Big", "gridProperties": {"rowCount": 399_000,
                                               "columnCount": 25}}}])
        super().__init__(root, "${env:REPORT_SHEET}")
        monkeypatch.setenv("REPORT_SHEET", self.spreadsheet_id)
        monkeypatch.setenv("SYNCPLAN_SHEETS_EMULATOR", f"127.0.0.1:{emulator.port}")
        fast = dataclasses.replace(session_module.retry_policy(
            SystemPlan(id="report", kind="sheets")), base_seconds=0.001,
            max_seconds=0.01)
        monkeypatch.setattr(session_module, "retry_policy", lambda system: fast)

    def backend(self) -> GoogleSheetsBackend:
        # The write bucket of a spreadsheet is shared, so the rate limit must be
        # the run's.
        system = SystemPlan(id="check", kind="sheets",
                            rate_limit=RateLimit(requests=1000, per_seconds=1))
        client, _ = build_client(system, self.spreadsheet_id,
                                 emulator=f"127.0.0.1:{self.emulator.port}")
        return GoogleSheetsBackend(client, self.spreadsheet_id)

    def tab(self, title: str) -> list[list[Any]]:
        grid = self.backend().read_tab(title)
        assert grid is not None, f"tab {title!r} missing"
        return displayed_rows(self.emulator, self.spreadsheet_id, title, grid.rows)

    def grid_sizes(self) -> dict[str, tuple[int, int]]:
        sheets = self.emulator.spreadsheet(self.spreadsheet_id).sheets
        return {sheet.title: (sheet.row_count, sheet.column_count) for sheet in sheets}


@pytest.fixture()
def google(tmp_path: Path, emulator: SheetsEmulator,
           monkeypatch: pytest.MonkeyPatch) -> GoogleProject:
    """A project whose first run wrote rows 1 to 10 to both tabs."""
    project = GoogleProject(tmp_path, emulator, monkeypatch)
    project.write_source(source_rows(1, FIRST_ROWS))
    first = project.run()
    assert first.status == "succeeded", first.message
    assert first.errors == []
    assert project.cursor() == str(FIRST_ROWS)
    return project


def test_google_tabs_fit_alone_not_together(google: GoogleProject) -> None:
    records = [{"id": key, "name": name, "day": dt.date.fromisoformat(day)}
               for key, name, day in source_rows(1, FIRST_ROWS + TOO_MANY)]
    backend = google.backend()
    changes = {tab: plan_tab_sync(backend.read_tab(tab), records, COLUMNS, TYPES,
                                  mode="upsert", key=["id"]).changes
               for tab in ("Alpha", "Beta")}

    check_run_limits(backend, {"Alpha": changes["Alpha"]}, error_count=5)
    check_run_limits(backend, {"Beta": changes["Beta"]}, error_count=5)
    with pytest.raises(LimitExceeded):
        check_run_limits(backend, changes, error_count=5)


def test_google_run_over_limit_writes_no_tab(google: GoogleProject) -> None:
    tabs_before = {tab: google.tab(tab) for tab in ("Alpha", "Beta")}
    sizes_before = google.grid_sizes()
    keys_before = google.written_keys("Alpha")
    google.write_source(with_problems(source_rows(FIRST_ROWS + 1, TOO_MANY)))

    result = google.run()

    assert result.status == "succeeded", result.message
    assert (result.created, result.updated, result.deleted) == (0, 0, 0)
    for tab, rows in tabs_before.items():
        assert google.tab(tab) == rows
        assert google.grid_sizes()[tab] == sizes_before[tab]
    assert google.written_keys("Alpha") == keys_before
    assert codes_by_place(result) == [
        ("cell_too_long", "report/Alpha"), ("cell_too_long", "report/Beta"),
        ("invalid_date", "people.csv:3"),
        ("limit_exceeded", "report/Alpha"), ("limit_exceeded", "report/Beta")]
    limit_error = next(e for e in result.errors if e["code"] == "limit_exceeded")
    assert "over Google Sheets' limit of 10,000,000" in limit_error["message"]
    assert "nothing was written" in limit_error["message"]


def test_google_rejection_in_errors_and_runs(google: GoogleProject) -> None:
    google.write_source(with_problems(source_rows(FIRST_ROWS + 1, TOO_MANY)))

    result = google.run()

    header, *rows = google.tab("Errors")
    error_id, code, where, message = (header.index(name) for name in (
        "Error ID", "Code", "Where", "Message"))
    assert {row[error_id]: row[code] for row in rows} == errors_by_id(result)
    # One record's value is too long for both tabs: two errors, one per tab.
    assert sorted(row[code] for row in rows) == [
        "cell_too_long", "cell_too_long", "invalid_date", "limit_exceeded",
        "limit_exceeded"]
    limits = [row for row in rows if row[code] == "limit_exceeded"]
    assert sorted(row[where] for row in limits) == ["report/Alpha", "report/Beta"]
    assert {row[message] for row in limits} == {
        e["message"] for e in result.errors if e["code"] == "limit_exceeded"}
    header, *runs = google.tab("Runs")
    last = dict(zip(header, runs[-1]))
    assert last["Run ID"] == result.run_id
    assert last["Status"] == "succeeded"
    assert last["Failed"] == 5
    assert last["Message"] == result.message
    assert result.message is not None
    assert result.message.startswith(
        f"report: tabs 'Alpha', 'Beta' of https://docs.google.com/spreadsheets/d/"
        f"{google.spreadsheet_id} were not written, because writing tabs 'Alpha',"
        " 'Beta', 'Errors', 'Runs' would take the spreadsheet to ")


def test_google_rejection_keeps_cursor(google: GoogleProject) -> None:
    google.write_source(source_rows(FIRST_ROWS + 1, TOO_MANY))

    result = google.run()

    assert google.cursor() == str(FIRST_ROWS)
    assert result.message in result.warnings
    assert any(warning.startswith("the cursor of stream 'rows' stays at '10'")
               for warning in result.warnings), result.warnings


def test_google_rejection_in_cli_summary(google: GoogleProject) -> None:
    google.write_source(source_rows(FIRST_ROWS + 1, TOO_MANY))

    outcome = CliRunner().invoke(cli, ["run", str(google.root)])

    assert outcome.exit_code == 0, outcome.output
    assert ("warning: flow 'people': report: tabs 'Alpha', 'Beta' of"
            f" https://docs.google.com/spreadsheets/d/{google.spreadsheet_id} were not"
            " written, because writing tabs") in outcome.stderr
    assert "people: 2 record error(s), kept in the state store and the Errors tab" in (
        outcome.stderr)
    assert "[limit_exceeded] report/Alpha:" in outcome.stderr


def test_google_dry_run_warns_of_rejection(google: GoogleProject) -> None:
    google.write_source(source_rows(FIRST_ROWS + 1, TOO_MANY))
    google.emulator.reset_log()

    result = google.run(dry_run=True)

    assert result.status == "succeeded", result.message
    assert codes_by_place(result) == [("limit_exceeded", "report/Alpha"),
                                      ("limit_exceeded", "report/Beta")]
    assert result.message is not None
    assert " would not be written, because " in result.message
    assert [(p.destination, p.created) for p in result.previews] == [
        ("report/Alpha", TOO_MANY), ("report/Beta", TOO_MANY)]
    assert set(google.emulator.counts_by_kind()) == {"spreadsheets.get", "values.get"}


def test_google_preview_shows_dates(google: GoogleProject) -> None:
    spec = google.root / "syncplan.yaml"
    # Without the cursor, the run reads the rows of the first run again.
    spec.write_text(spec.read_text().replace(", cursor: id", ""), encoding="utf-8")
    rows = source_rows(1, FIRST_ROWS)
    rows[0] = (1, "p1", "2025-02-03")
    google.write_source(rows)

    result = google.run(dry_run=True)

    old_day = dt.date.fromisoformat(source_rows(1, 1)[0][2])
    assert [(p.destination, p.changed_cells) for p in result.previews] == [
        ("report/Alpha", [("C2", old_day, dt.date(2025, 2, 3))]),
        ("report/Beta", [("C2", old_day, dt.date(2025, 2, 3))])]


def test_google_run_under_limit_writes(google: GoogleProject) -> None:
    rows = source_rows(FIRST_ROWS + 1, FITTING)
    google.write_source(rows)

    result = google.run()

    assert result.status == "succeeded", result.message
    assert result.errors == []
    assert result.message is None
    assert not any("were not written" in warning for warning in result.warnings)
    assert result.created == 2 * FITTING
    expected = [["ID", "Name", "Day"],
                *([key, name, dt.date.fromisoformat(day)]
                  for key, name, day in [*source_rows(1, FIRST_ROWS), *rows])]
    assert google.tab("Alpha") == expected
    assert google.tab("Beta") == expected
    assert google.cursor() == str(FIRST_ROWS + FITTING)
    assert len(google.written_keys("Alpha")) == FIRST_ROWS + FITTING


# --- .xlsx --------------------------------------------------------------------------


def seed_workbook(path: Path) -> None:
    """Write a workbook whose Beta tab has a person's note in Excel's last column."""
    workbook = openpyxl.Workbook()
    alpha = workbook.active
    alpha.title = "Alpha"
    alpha.append(["ID", "Name", "Day"])
    alpha.append([1, "kept", dt.date(2024, 1, 1)])
    beta = workbook.create_sheet("Beta")
    beta["A1"] = "ID"
    beta["XFD1"] = "note"  # column 16,384, so new Name and Day columns pass the cap
    workbook.save(path)


def workbook_rows(path: Path, tab: str) -> list[tuple[Any, ...]]:
    workbook = openpyxl.load_workbook(path)
    return [tuple(row) for row in workbook[tab].iter_rows(values_only=True)]


@pytest.fixture()
def xlsx(tmp_path: Path) -> Project:
    seed_workbook(tmp_path / "out.xlsx")
    project = Project(tmp_path, "out.xlsx")
    project.write_source(with_problems(source_rows(1, 4)))
    return project


def test_xlsx_run_over_column_cap_writes_no_tab(xlsx: Project) -> None:
    path = xlsx.root / "out.xlsx"
    before = {tab: workbook_rows(path, tab) for tab in ("Alpha", "Beta")}

    result = xlsx.run()

    assert result.status == "succeeded", result.message
    assert {tab: workbook_rows(path, tab) for tab in ("Alpha", "Beta")} == before
    assert codes_by_place(result) == [
        ("cell_too_long", "report/Alpha"), ("cell_too_long", "report/Beta"),
        ("invalid_date", "people.csv:3"),
        ("limit_exceeded", "report/Alpha"), ("limit_exceeded", "report/Beta")]
    assert xlsx.cursor() is None
    assert xlsx.written_keys("Alpha") == set()
    assert result.message is not None
    assert "Tab 'Beta'" in result.message
    assert "16,386 columns, over Excel's limit" in result.message
    header, *rows = workbook_rows(path, "Errors")
    error_id, code, where = (header.index(name) for name in (
        "Error ID", "Code", "Where"))
    assert {row[error_id]: row[code] for row in rows} == errors_by_id(result)
    assert sorted(row[where] for row in rows if row[code] == "limit_exceeded") == [
        "report/Alpha", "report/Beta"]
    runs = workbook_rows(path, "Runs")
    assert runs[-1][runs[0].index("Message")] == result.message


def test_xlsx_run_under_cap_writes(xlsx: Project) -> None:
    path = xlsx.root / "out.xlsx"
    workbook = openpyxl.load_workbook(path)
    workbook["Beta"]["XFD1"] = None
    workbook.save(path)
    xlsx.write_source(source_rows(1, 4))

    result = xlsx.run()

    assert result.status == "succeeded", result.message
    assert result.errors == []
    assert result.message is None
    assert [row[:2] for row in workbook_rows(path, "Alpha")] == [
        ("ID", "Name"), (1, "p1"), (2, "p2"), (3, "p3"), (4, "p4")]
    assert [row[:2] for row in workbook_rows(path, "Beta")] == [
        ("ID", "Name"), (1, "p1"), (2, "p2"), (3, "p3"), (4, "p4")]
    assert xlsx.cursor() == "4"


def test_xlsx_apply_rejection_keeps_row_problems(
        xlsx: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the run's check, Beta's own apply raises: the safety net.
    monkeypatch.setattr(runner_module, "check_run_limits",
                        lambda backend, writes, error_count: None)
    path = xlsx.root / "out.xlsx"
    beta_before = workbook_rows(path, "Beta")

    result = xlsx.run()

    assert result.status == "succeeded", result.message
    assert codes_by_place(result) == [
        ("cell_too_long", "report/Alpha"), ("cell_too_long", "report/Beta"),
        ("invalid_date", "people.csv:3"), ("limit_exceeded", "report/Beta")]
    assert workbook_rows(path, "Beta") == beta_before
    assert [row[:2] for row in workbook_rows(path, "Alpha")] == [
        ("ID", "Name"), (1, "kept"), (3, "p3"), (4, "p4")]
    assert result.message is not None
    assert result.message.startswith("report: tab 'Beta' of ")
    assert " was not written, because Tab 'Beta' " in result.message
    assert xlsx.cursor() is None


def test_plan_command_prints_rejection(xlsx: Project) -> None:
    path = xlsx.root / "out.xlsx"
    before = path.read_bytes()

    done = CliRunner().invoke(cli, ["plan", str(xlsx.root)])

    assert done.exit_code == 0, done.output
    assert "people: warning: " in done.stderr
    assert "over Excel's limit" in done.stderr
    assert path.read_bytes() == before


def test_xlsx_dry_run_reports_run_problems(xlsx: Project) -> None:
    preview = xlsx.run(dry_run=True)

    result = xlsx.run()

    assert preview.status == "succeeded", preview.message
    assert [(e["code"], e["position"]) for e in preview.errors] == [
        (e["code"], e["position"]) for e in result.errors]
    assert ("cell_too_long", "report/Beta") in codes_by_place(preview)
