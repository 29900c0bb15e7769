"""The example project run by the ``syncplan`` command into the Sheets emulator.

Each run is a subprocess (``python -m sheets_addon``) pointed at the emulator by
``SYNCPLAN_SHEETS_EMULATOR`` and at its spreadsheet by ``REPORT_SHEET``, the way
a person would run it. The same project run without ``REPORT_SHEET`` writes the
local workbook, and both reports must hold the same tabs and values.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from runtime.sheets.xlsx import XlsxBackend
from sheets_addon.emulator import SheetsEmulator
from sheets_addon.google.backend import GoogleSheetsBackend
from sheets_addon.google.cells import EPOCH
from sheets_addon.google.session import build_client
from tests.support.sheet_views import displayed_rows

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "agency"
DATA_TABS = ("Clients", "Deals", "Time entries", "Utilization")
REPORT_TABS = {*DATA_TABS, "Errors", "Runs"}
FLOWS = ("clients", "deals", "calendar_hours", "utilization")
WRITE_KINDS = {"spreadsheets.batchUpdate", "values.batchUpdate", "values.update",
               "values.append", "values.clear", "values.batchClear"}
# Columns that differ between two runs by design: run ids, times and durations.
ERRORS_STABLE = slice(4, 9)  # Record key, Field, Code, Message, Raw value
RUNS_STABLE = [1, 4, 5, 6, 7, 8, 9, 10]  # Flow, Status and the counts


def copy_project(target: Path) -> Path:
    """Copy the example, with a rate limit high enough to never pace the test."""
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("out", ".syncplan"))
    spec = target / "syncplan.yaml"
    text = spec.read_text(encoding="utf-8")
    line = '    spreadsheet: "${env:REPORT_SHEET:-out/agency-report.xlsx}"\n'
    assert line in text
    spec.write_text(text.replace(
        line, line + "    rate_limit: {requests: 1000, per: second}\n"), encoding="utf-8")
    return target


def syncplan(command: str, project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("REPORT_SHEET", "SYNCPLAN_SHEETS_EMULATOR")}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "sheets_addon", command, str(project)],
                          cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=300)


def emulator_env(emulator: SheetsEmulator, spreadsheet: str) -> dict[str, str]:
    return {"REPORT_SHEET": spreadsheet,
            "SYNCPLAN_SHEETS_EMULATOR": f"127.0.0.1:{emulator.port}"}


def google_backend(emulator: SheetsEmulator, spreadsheet: str) -> GoogleSheetsBackend:
    from compiler.plan.models import SystemPlan

    client, ambiguity = build_client(SystemPlan(id="check", kind="sheets"), spreadsheet,
                                     emulator=f"127.0.0.1:{emulator.port}")
    client.http_client.bucket = None
    return GoogleSheetsBackend(client, spreadsheet, ambiguity=ambiguity)


def google_tabs(emulator: SheetsEmulator, spreadsheet: str) -> dict[str, list[list[Any]]]:
    """Return every tab as a person sees it: date-formatted serials as dates."""
    backend = google_backend(emulator, spreadsheet)
    titles = [sheet.title for sheet in emulator.spreadsheet(spreadsheet).sheets]
    return {title: displayed_rows(emulator, spreadsheet, title,
                                  backend.read_tab(title).rows) for title in titles}


def write_requests(emulator: SheetsEmulator) -> list[Any]:
    return [record for record in emulator.log.records if record.kind in WRITE_KINDS]


@dataclass
class Reports:
    """The example run once into a workbook and once into an emulated spreadsheet."""

    workbook: Path
    project: Path
    spreadsheet: str
    xlsx_run: subprocess.CompletedProcess[str]
    google_run: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def emulator() -> Iterator[SheetsEmulator]:
    with SheetsEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def reports(emulator: SheetsEmulator,
            tmp_path_factory: pytest.TempPathFactory) -> Reports:
    local = copy_project(tmp_path_factory.mktemp("xlsx") / "agency")
    project = copy_project(tmp_path_factory.mktemp("google") / "agency")
    spreadsheet = emulator.create_spreadsheet("agency report")
    xlsx_run = syncplan("run", local)
    google_run = syncplan("run", project, **emulator_env(emulator, spreadsheet))
    return Reports(local / "out" / "agency-report.xlsx", project, spreadsheet,
                   xlsx_run, google_run)


# --- First run ------------------------------------------------------------------


def test_e2e_google_run_succeeds(reports: Reports) -> None:
    run = reports.google_run

    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    for flow in FLOWS:
        assert f"\n{flow} " in f"\n{run.stdout}"
    location = f"https://docs.google.com/spreadsheets/d/{reports.spreadsheet}"
    wrote = [line for line in run.stdout.splitlines()
             if line.startswith(f"wrote {location}: ")]
    assert len(wrote) == 1, run.stdout
    for tab in DATA_TABS:
        assert f"report/{tab}" in wrote[0]
    assert reports.xlsx_run.returncode == 0, reports.xlsx_run.stderr


def test_e2e_google_tabs_match_xlsx_tabs(reports: Reports,
                                         emulator: SheetsEmulator) -> None:
    workbook = XlsxBackend(reports.workbook)
    google = google_tabs(emulator, reports.spreadsheet)

    assert set(openpyxl.load_workbook(reports.workbook).sheetnames) == REPORT_TABS
    assert set(google) == REPORT_TABS | {"Sheet1"}
    for tab in DATA_TABS:
        assert google[tab] == workbook.read_tab(tab).rows, tab
    local_errors = workbook.read_tab("Errors").rows
    assert google["Errors"][0] == local_errors[0]
    assert sorted(row[ERRORS_STABLE] for row in google["Errors"][1:]) == sorted(
        row[ERRORS_STABLE] for row in local_errors[1:])
    local_runs = workbook.read_tab("Runs").rows
    assert google["Runs"][0] == local_runs[0]
    assert [[row[i] for i in RUNS_STABLE] for row in google["Runs"][1:]] == [
        [row[i] for i in RUNS_STABLE] for row in local_runs[1:]]


def test_e2e_google_content_is_the_expected(reports: Reports,
                                            emulator: SheetsEmulator) -> None:
    google = google_tabs(emulator, reports.spreadsheet)

    assert google["Clients"][0] == ["Client code", "Client", "Account lead",
                                    "Calendar tag", "Budget h/month"]
    assert len(google["Clients"]) == 5
    assert len(google["Deals"]) == 5
    assert len(google["Time entries"]) == 25
    assert len(google["Utilization"]) == 25
    assert [row[1] for row in google["Runs"][1:]] == list(FLOWS)
    assert [row[4] for row in google["Runs"][1:]] == ["succeeded"] * 4
    assert sorted(row[6] for row in google["Errors"][1:]) == [
        "invalid_date", "lookup_not_found"]
    for row in google["Deals"][1:]:
        assert isinstance(row[5], dt.date), row
        assert isinstance(row[3], (int, float)), row


def serial(value: Any) -> Any:
    """Convert an openpyxl value to what the Sheets API returns UNFORMATTED."""
    if isinstance(value, dt.datetime):
        delta = value - EPOCH
        return delta.days + delta.seconds / 86_400 + delta.microseconds / 86_400e6
    if isinstance(value, dt.date):
        return (value - EPOCH.date()).days
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / 86_400
    return "" if value is None else value


def same_cell(google: Any, local: Any) -> bool:
    if isinstance(google, (int, float)) and isinstance(local, (int, float)):
        return math.isclose(google, local, rel_tol=1e-12, abs_tol=1e-9)
    return google == local


def test_e2e_raw_values_match_workbook_cells(reports: Reports,
                                             emulator: SheetsEmulator) -> None:
    # Read without syncplan's own readers: gspread's values against openpyxl's.
    spreadsheet = emulator.gspread_client().open_by_key(reports.spreadsheet)
    workbook = openpyxl.load_workbook(reports.workbook)
    for tab in DATA_TABS:
        google = spreadsheet.worksheet(tab).get_values(
            value_render_option="UNFORMATTED_VALUE",
            date_time_render_option="SERIAL_NUMBER")
        local = [[serial(value) for value in row]
                 for row in workbook[tab].iter_rows(values_only=True)]
        assert len(google) == len(local), tab
        for google_row, local_row in zip(google, local, strict=True):
            padded = google_row + [""] * (len(local_row) - len(google_row))
            assert all(same_cell(g, x) for g, x in zip(padded, local_row, strict=True)), (
                tab, google_row, local_row)


# --- Second run and dry run ---------------------------------------------------------


def test_e2e_second_run_writes_only_run_rows(emulator: SheetsEmulator,
                                             tmp_path: Path) -> None:
    project = copy_project(tmp_path / "agency")
    spreadsheet = emulator.create_spreadsheet("agency twice")
    env = emulator_env(emulator, spreadsheet)
    assert syncplan("run", project, **env).returncode == 0
    before = google_tabs(emulator, spreadsheet)
    emulator.reset_log()

    second = syncplan("run", project, **env)

    assert second.returncode == 0, second.stderr
    counts = emulator.counts_by_kind()
    # One properties read for the run. Per flow: a values read of its data tab,
    # of Errors and of Runs, a format read of the new Runs row's cells, and the
    # write of that row.
    assert counts == {"spreadsheets.get": 1 + len(FLOWS),
                      "values.get": 3 * len(FLOWS),
                      "values.batchUpdate": len(FLOWS)}
    assert counts.get("spreadsheets.batchUpdate", 0) == 0
    assert counts["values.batchUpdate"] == len(FLOWS)
    assert len(write_requests(emulator)) == len(FLOWS)
    after = google_tabs(emulator, spreadsheet)
    for tab in (*DATA_TABS, "Errors"):
        assert after[tab] == before[tab], tab
    assert after["Runs"][:5] == before["Runs"]
    assert [row[1] for row in after["Runs"][5:]] == list(FLOWS)
    assert [row[6:9] for row in after["Runs"][5:]] == [[0, 0, 4], [0, 0, 4],
                                                        [0, 0, 24], [0, 0, 24]]


def test_e2e_plan_previews_without_writing(reports: Reports, emulator: SheetsEmulator,
                                           tmp_path: Path) -> None:
    project = tmp_path / "agency"
    shutil.copytree(reports.project, project)
    clients_file = project / "data" / "clients.json"
    clients = json.loads(clients_file.read_text(encoding="utf-8"))
    renamed = clients["clients"][1]
    renamed["name"] = "Renamed Client Ltd"
    clients_file.write_text(json.dumps(clients), encoding="utf-8")
    google = google_tabs(emulator, reports.spreadsheet)
    row, old_name = next((number, cells[1]) for number, cells
                         in enumerate(google["Clients"]) if cells[0] == renamed["code"])
    emulator.reset_log()

    preview = syncplan("plan", project, **emulator_env(emulator, reports.spreadsheet))

    assert preview.returncode == 0, preview.stderr
    lines = preview.stdout.splitlines()
    assert lines[0] == ("clients -> report/Clients: 0 to create, 1 to update,"
                        " 3 unchanged, 0 to delete")
    assert lines[1] == f"  B{row + 1}: {old_name!r} -> 'Renamed Client Ltd'"
    assert ("deals -> report/Deals: 0 to create, 0 to update, 4 unchanged,"
            " 0 to delete") in lines
    assert write_requests(emulator) == []
    # One properties read for the run, then one values read per tab.
    assert emulator.counts_by_kind() == {"spreadsheets.get": 1,
                                         "values.get": len(DATA_TABS)}
    assert google_tabs(emulator, reports.spreadsheet) == google


def test_e2e_plan_of_new_spreadsheet_counts_creates(emulator: SheetsEmulator,
                                                    tmp_path: Path) -> None:
    project = copy_project(tmp_path / "agency")
    spreadsheet = emulator.create_spreadsheet("agency preview")
    emulator.reset_log()

    preview = syncplan("plan", project, **emulator_env(emulator, spreadsheet))

    assert preview.returncode == 0, preview.stderr
    assert ("clients -> report/Clients: 4 to create, 0 to update, 0 unchanged,"
            " 0 to delete") in preview.stdout
    assert write_requests(emulator) == []
    assert [sheet.title for sheet in emulator.spreadsheet(spreadsheet).sheets] == [
        "Sheet1"]


# --- Failing before any request --------------------------------------------------------


def test_e2e_missing_credentials_fail_cleanly(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "agency")
    spec = project / "syncplan.yaml"
    text = spec.read_text(encoding="utf-8")
    line = "    rate_limit: {requests: 1000, per: second}\n"
    spec.write_text(text.replace(
        line, line + "    credentials: ${file:secrets/missing.json}\n"), encoding="utf-8")
    sheet_id = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"

    # A request that slipped through would go to a closed loopback port.
    completed = syncplan("run", project, REPORT_SHEET=sheet_id,
                         HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
                         NO_PROXY="")

    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert ("error: flow 'clients' failed: system 'report': the 'credentials' setting"
            " '${file:secrets/missing.json}' cannot be resolved") in completed.stderr
    assert "create it or fix the path" in completed.stderr
