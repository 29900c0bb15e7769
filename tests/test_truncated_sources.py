"""Runs of the agency example whose source file was cut off part-way.

A cut-off file must never make a mirror destination delete rows: the records
before the cut may arrive, but the run reports the cut, and rows and
hand-typed cells stay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from support.projects import copy_agency, run_project

from runtime.runner import FlowResult

REPORT = Path("out") / "agency-report.xlsx"
NOTE = "billable, check with Ana"


@pytest.fixture()
def agency(tmp_path: Path) -> Path:
    return copy_agency(tmp_path)


def tab_rows(path: Path, tab: str) -> list[tuple[Any, ...]]:
    sheet = openpyxl.load_workbook(path)[tab]
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def add_notes_column(path: Path, tab: str) -> None:
    """Type a Notes column by hand next to the synced columns, one note per row."""
    workbook = openpyxl.load_workbook(path)
    sheet = workbook[tab]
    column = sheet.max_column + 1
    sheet.cell(row=1, column=column, value="Notes")
    for row in range(2, sheet.max_row + 1):
        sheet.cell(row=row, column=column, value=f"{NOTE} {row}")
    workbook.save(path)


def set_flow(root: Path, file_name: str, flow: str, **changes: Any) -> None:
    """Change settings of one flow's first destination in the copied spec."""
    path = root / "flows" / file_name
    spec = yaml.safe_load(path.read_text())
    spec["flows"][flow]["destinations"][0].update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def cut_after_event(ics: Path, count: int) -> None:
    """Cut the calendar file right after its ``count``-th END:VEVENT line."""
    lines = ics.read_bytes().split(b"\r\n")
    ends = [index for index, line in enumerate(lines) if line == b"END:VEVENT"]
    ics.write_bytes(b"\r\n".join(lines[: ends[count - 1] + 1]) + b"\r\n")


def assert_nothing_deleted(result: FlowResult, code: str, before: list[tuple],
                           after: list[tuple]) -> None:
    assert result.status == "succeeded"
    assert result.deleted == 0
    assert code in {error["code"] for error in result.errors}
    assert len(result.warnings) == 1
    assert "no rows were deleted" in result.warnings[0]
    assert code in result.warnings[0]
    assert after == before


def test_ics_cut_after_third_event_deletes_nothing(agency: Path) -> None:
    run_project(agency)
    report = agency / REPORT
    add_notes_column(report, "Time entries")
    before = tab_rows(report, "Time entries")
    assert len(before) == 25
    cut_after_event(agency / "data" / "team.ics", 3)

    results = run_project(agency, ["calendar_hours"])

    hours = results["calendar_hours"]
    assert_nothing_deleted(hours, "ics_truncated", before,
                           tab_rows(report, "Time entries"))
    assert before[1][7] == f"{NOTE} 2"


def test_ics_cut_keeps_stored_entries(agency: Path) -> None:
    first = run_project(agency)
    cut_after_event(agency / "data" / "team.ics", 3)

    results = run_project(agency)

    assert results["calendar_hours"].deleted == 0
    # The stored time entries keep the events after the cut, so the
    # utilization built from them loses nothing either.
    assert results["utilization"].deleted == 0
    assert results["utilization"].read == first["utilization"].read


def test_csv_cut_inside_quoted_cell_deletes_nothing(agency: Path) -> None:
    set_flow(agency, "clients.yaml", "deals", mode="mirror", key="deal_id")
    run_project(agency, ["deals"])
    report = agency / REPORT
    add_notes_column(report, "Deals")
    before = tab_rows(report, "Deals")
    csv_file = agency / "data" / "closed-deals.csv"
    text = csv_file.read_text()
    # D-1005's name is a quoted cell, so the file now ends inside quotes and
    # the won deal D-1006 after it is gone.
    csv_file.write_text(text[: text.index("Acme retainer") + 4])

    results = run_project(agency, ["deals"])

    assert_nothing_deleted(results["deals"], "csv_invalid", before,
                           tab_rows(report, "Deals"))


def test_ndjson_cut_mid_line_deletes_nothing(agency: Path) -> None:
    spec_path = agency / "syncplan.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["systems"]["client_list"] = {"kind": "ndjson", "path": "data/clients.ndjson"}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    set_flow(agency, "clients.yaml", "clients", mode="mirror", key="client_code")
    clients = json.loads((agency / "data" / "clients.json").read_text())["clients"]
    lines = [json.dumps(client) for client in clients]
    ndjson = agency / "data" / "clients.ndjson"
    ndjson.write_text("\n".join(lines) + "\n")
    run_project(agency, ["clients"])
    report = agency / REPORT
    add_notes_column(report, "Clients")
    before = tab_rows(report, "Clients")
    assert len(before) == 5
    # The last client's line loses its end.
    ndjson.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])

    results = run_project(agency, ["clients"])

    assert_nothing_deleted(results["clients"], "ndjson_invalid", before,
                           tab_rows(report, "Clients"))
