"""Tests of the .xlsx backend and the Errors and Runs tabs, on temporary workbooks."""

from __future__ import annotations

import csv
import datetime as dt
import os
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from compiler.plan.models import ColumnPlan
from runtime.sheets.base import BackendError, ChangeSet, LimitExceeded
from runtime.sheets.engine import sync_tab
from runtime.sheets.tabs import (
    ERRORS_TAB,
    RUNS_TAB,
    TRUNCATION_MARKER,
    append_run_row,
    sync_errors_tab,
    truncate_text,
)
from runtime.sheets.xlsx import (
    XLSX_MAX_CELL_CHARS,
    RowDeletion,
    XlsxBackend,
    XlsxFileError,
    XlsxLimitExceeded,
    date_format_kind,
    number_format_for,
    shift_formula,
)

UTC = dt.UTC
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"

COLUMNS = [
    ColumnPlan(field="id", header="Entry ID"),
    ColumnPlan(field="code", header="Code"),
    ColumnPlan(field="hours", header="Hours"),
    ColumnPlan(field="rate", header="Rate"),
    ColumnPlan(field="day", header="Day"),
    ColumnPlan(field="at", header="Logged at"),
    ColumnPlan(field="spent", header="Spent"),
    ColumnPlan(field="billable", header="Billable"),
]
TYPES = {
    "id": "integer",
    "code": "string",
    "hours": "integer",
    "rate": "money",
    "day": "date",
    "at": "datetime",
    "spent": "duration",
    "billable": "boolean",
}


def entry(entry_id: int, code: str = "007", hours: int = 5) -> dict[str, Any]:
    return {
        "id": entry_id,
        "code": code,
        "hours": hours,
        "rate": Decimal("12.50"),
        "day": dt.date(2024, 3, entry_id),
        "at": dt.datetime(2024, 3, entry_id, 8, 15, 30, 250000, tzinfo=UTC),
        "spent": dt.timedelta(hours=1, minutes=7),
        "billable": entry_id % 2 == 0,
    }


def sync(path: Path, records: list[dict[str, Any]], mode: str = "upsert", owned=()):
    backend = XlsxBackend(path)
    outcome = sync_tab(
        backend,
        "Data",
        records,
        COLUMNS,
        TYPES,
        mode=mode,
        key=["id"],
        owned_keys=owned,
        timezone="Europe/Paris",
    )
    backend.commit()
    return outcome


def sheet_xml(path: Path, title: str) -> bytes:
    workbook = openpyxl.load_workbook(path)
    index = workbook.sheetnames.index(title) + 1
    with zipfile.ZipFile(path) as archive:
        return archive.read(f"xl/worksheets/sheet{index}.xml")


# --- Cell types -----------------------------------------------------------------


def test_xlsx_written_cell_types(tmp_path):
    path = tmp_path / "report.xlsx"
    records = [entry(1, code="007"), entry(2, code="=SUM(A1)"), entry(3, code="#N/A")]

    sync(path, records)

    sheet = openpyxl.load_workbook(path)["Data"]
    assert [cell.value for cell in sheet[1]] == [c.header for c in COLUMNS]
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet["A2"].data_type == "n"
    assert sheet["A2"].value == 1
    assert sheet["C2"].value == 5
    assert sheet["D2"].data_type == "n"
    assert sheet["D2"].value == 12.5
    for row, text in [(2, "007"), (3, "=SUM(A1)"), (4, "#N/A")]:
        assert sheet.cell(row=row, column=2).data_type == "s"
        assert sheet.cell(row=row, column=2).value == text
    assert sheet["E2"].is_date
    assert sheet["E2"].number_format == "yyyy-mm-dd"
    assert sheet["E2"].value == dt.datetime(2024, 3, 1)
    assert sheet["F2"].number_format == "yyyy-mm-dd hh:mm"
    assert sheet["F2"].value == dt.datetime(2024, 3, 1, 9, 15, 30, 250000)
    assert sheet["G2"].number_format == "[h]:mm"
    assert sheet["G2"].value == dt.timedelta(hours=1, minutes=7)
    assert sheet["H2"].data_type == "b"
    assert sheet["H3"].value is True


def test_xlsx_decimal_stored_as_number_in_file(tmp_path):
    path = tmp_path / "report.xlsx"

    sync(path, [entry(1)])

    xml = sheet_xml(path, "Data").decode()
    assert '<c r="D2" t="n"' in xml
    assert "<v>12.5</v>" in xml


def test_xlsx_text_like_formula_stays_text_after_resave(tmp_path):
    path = tmp_path / "report.xlsx"
    sync(path, [entry(1, code="=SUM(A1)")])

    sync(path, [entry(1, code="=SUM(A1)", hours=6)])

    sheet = openpyxl.load_workbook(path)["Data"]
    assert sheet["B2"].data_type == "s"
    assert sheet["C2"].value == 6


def test_xlsx_read_tab_values(tmp_path):
    path = tmp_path / "report.xlsx"
    sync(path, [entry(1)])

    grid = XlsxBackend(path).read_tab("data")

    assert grid is not None
    row = grid.rows[1]
    assert row[0] == 1
    assert type(row[4]) is dt.date
    assert row[4] == dt.date(2024, 3, 1)
    assert row[5] == dt.datetime(2024, 3, 1, 9, 15, 30, 250000)
    assert row[6] == dt.timedelta(hours=1, minutes=7)
    assert row[7] is False


def test_xlsx_read_tab_pads_and_trims(tmp_path):
    path = tmp_path / "people.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Data"
    sheet["A1"] = "Entry ID"
    sheet["C1"] = "Notes"
    sheet["A2"] = 1
    sheet["B3"] = "=A2*2"
    sheet["D9"] = None
    sheet["E9"].number_format = "0.00"
    workbook.save(path)

    grid = XlsxBackend(path).read_tab("Data")

    assert grid is not None
    assert grid.rows == [
        ["Entry ID", None, "Notes"],
        [1, None, None],
        [None, "=A2*2", None],
    ]
    assert XlsxBackend(path).read_tab("Missing") is None


def test_xlsx_read_tab_creates_no_cells(tmp_path):
    path = tmp_path / "people.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active["A1"] = "x"
    workbook.active["D7"] = "y"
    workbook.save(path)
    backend = XlsxBackend(path)

    backend.read_tab("Sheet")

    assert len(backend._workbook.active._cells) == 2


# --- People's edits survive -----------------------------------------------------


def people_workbook(path: Path) -> None:
    sync(path, [entry(1), entry(2), entry(3)])
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["Data"]
    sheet.insert_cols(3)
    sheet["C1"] = "Notes"
    sheet["C2"] = "call back"
    sheet["J1"] = "Total"
    for row in (2, 3, 4):
        sheet.cell(row=row, column=10).value = f"=D{row}*E{row}"
    sheet["A6"] = "Sum"
    sheet["D6"] = "=SUM(D2:D4)"
    sheet["J6"] = "=SUM(J2:J4)"
    summary = workbook.create_sheet("Summary")
    summary["A1"] = "=Data!D3"
    summary["A2"] = "=SUM(Data!D2:D4)"
    workbook.save(path)


def test_xlsx_people_columns_rows_formulas_survive_resync(tmp_path):
    path = tmp_path / "report.xlsx"
    people_workbook(path)

    outcome = sync(path, [entry(1, hours=8), entry(2), entry(3), entry(4)])

    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 1, 2)
    sheet = openpyxl.load_workbook(path)["Data"]
    assert sheet["C1"].value == "Notes"
    assert sheet["C2"].value == "call back"
    assert sheet["D2"].value == 8
    assert sheet["J2"].value == "=D2*E2"
    assert sheet["J2"].data_type == "f"
    assert sheet["A6"].value == "Sum"
    assert sheet["D6"].value == "=SUM(D2:D4)"
    assert sheet["A7"].value == 4
    assert sheet["C7"].value is None
    assert sheet["J7"].value is None


def test_xlsx_mirror_delete_shifts_formulas(tmp_path):
    path = tmp_path / "report.xlsx"
    people_workbook(path)

    outcome = sync(path, [entry(1), entry(3)], mode="mirror", owned={"1", "2", "3"})

    assert outcome.deleted == 1
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["Data"]
    assert [sheet.cell(row=r, column=1).value for r in range(1, 6)] == [
        "Entry ID",
        1,
        3,
        None,
        "Sum",
    ]
    assert sheet["J3"].value == "=D3*E3"
    assert sheet["D5"].value == "=SUM(D2:D3)"
    assert sheet["J5"].value == "=SUM(J2:J3)"
    assert workbook["Summary"]["A1"].value == "=Data!#REF!"
    assert workbook["Summary"]["A2"].value == "=SUM(Data!D2:D3)"


@pytest.mark.parametrize(
    ("formula", "on_target", "expected"),
    [
        ("=B4+B6", True, "=B3+B4"),
        ("=B5*2", True, "=#REF!*2"),
        ("=SUM($B$2:$B$10)", True, "=SUM($B$2:$B$8)"),
        ("=SUM(B10:B2)", True, "=SUM(B8:B2)"),
        ("=SUM(B3:B3)", True, "=SUM(#REF!)"),
        ("=SUM(4:6)", True, "=SUM(3:4)"),
        ("=SUM(A:A)", True, "=SUM(A:A)"),
        ("=B4", False, "=B4"),
        ("='Data'!B4", False, "='Data'!B3"),
        ("=data!B4+Other!B4", False, "=data!B3+Other!B4"),
        ("=Rates[Amount]+MyName", True, "=Rates[Amount]+MyName"),
    ],
)
def test_shift_formula_cases(formula, on_target, expected):
    assert shift_formula(formula, "Data", on_target, RowDeletion([3, 5])) == expected


def test_row_deletion_mapping():
    deletion = RowDeletion([5, 3])

    assert [deletion.new_row(row) for row in range(1, 8)] == [1, 2, None, 3, None, 4, 5]
    assert deletion.new_span(3, 3) is None
    assert deletion.new_span(2, 6) == (2, 4)


# --- Number formats -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "previous", "expected"),
    [
        ("date", "General", "yyyy-mm-dd"),
        ("date", "DD/MM/YYYY", "DD/MM/YYYY"),
        ("date", "yyyy-mm-dd h:mm:ss", "yyyy-mm-dd"),
        ("datetime", "yyyy-mm-dd h:mm:ss", "yyyy-mm-dd h:mm:ss"),
        ("datetime", "yyyy-mm-dd", "yyyy-mm-dd hh:mm"),
        ("duration", "[hh]:mm:ss", "[hh]:mm:ss"),
        ("duration", "General", "[h]:mm"),
        ("number", "#,##0.00", "#,##0.00"),
        ("number", "yyyy-mm-dd", "General"),
        ("text", "General", "General"),
    ],
)
def test_number_format_for_cases(kind, previous, expected):
    assert number_format_for(kind, previous) == expected


@pytest.mark.parametrize(
    ("number_format", "kind"),
    [
        ("yyyy-mm-dd", "date"),
        ("DD.MM.YYYY", "date"),
        ("d/m/yy h:mm", "datetime"),
        ("[h]:mm", "duration"),
        ("h:mm AM/PM", "time"),
        ("0.00", None),
        ('"day "0', None),
    ],
)
def test_date_format_kind_cases(number_format, kind):
    assert date_format_kind(number_format) == kind


def test_xlsx_keeps_person_number_formats(tmp_path):
    path = tmp_path / "report.xlsx"
    sync(path, [entry(1)])
    workbook = openpyxl.load_workbook(path)
    workbook["Data"]["D2"].number_format = "#,##0.000"
    workbook["Data"]["E2"].number_format = "DD/MM/YYYY"
    workbook.save(path)

    sync(path, [{**entry(1), "rate": Decimal("13"), "day": dt.date(2024, 4, 2)}])

    sheet = openpyxl.load_workbook(path)["Data"]
    assert sheet["D2"].value == 13
    assert sheet["D2"].number_format == "#,##0.000"
    assert sheet["E2"].number_format == "DD/MM/YYYY"
    assert XlsxBackend(path).read_tab("Data").rows[1][4] == dt.date(2024, 4, 2)


# --- Idempotency and saving -----------------------------------------------------


def test_xlsx_second_sync_changes_nothing(tmp_path):
    path = tmp_path / "report.xlsx"
    records = [entry(1), entry(2, code="=SUM(A1)"), entry(3)]
    sync(path, records)
    before = sheet_xml(path, "Data")
    modified = path.stat().st_mtime_ns

    outcome = sync(path, records)

    assert outcome.changes.is_empty()
    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 0, 3)
    assert path.stat().st_mtime_ns == modified
    assert sheet_xml(path, "Data") == before


def test_xlsx_resync_keeps_data_tab_bytes(tmp_path):
    path = tmp_path / "report.xlsx"
    records = [entry(1), entry(2)]
    sync(path, records)
    before = sheet_xml(path, "Data")

    backend = XlsxBackend(path)
    outcome = sync_tab(
        backend,
        "Data",
        records,
        COLUMNS,
        TYPES,
        mode="upsert",
        key=["id"],
        timezone="Europe/Paris",
    )
    append_run_row(backend, {"run_id": "run-2", "flow": "hours", "status": "ok"})
    backend.commit()

    assert outcome.changes.is_empty()
    assert sheet_xml(path, "Data") == before
    assert openpyxl.load_workbook(path)[RUNS_TAB]["A2"].value == "run-2"


def test_xlsx_commit_creates_folders_and_drops_default_sheet(tmp_path):
    path = tmp_path / "out" / "nested" / "report.xlsx"

    sync(path, [entry(1)])

    assert openpyxl.load_workbook(path).sheetnames == ["Data"]
    assert [p.name for p in path.parent.iterdir()] == ["report.xlsx"]


def test_xlsx_default_sheet_kept_when_used(tmp_path):
    path = tmp_path / "report.xlsx"
    backend = XlsxBackend(path)
    backend.apply("Sheet", ChangeSet(new_headers=["A"]))
    backend.apply("Other", ChangeSet(new_headers=["B"]))

    backend.commit()

    assert openpyxl.load_workbook(path).sheetnames == ["Sheet", "Other"]


def test_xlsx_failed_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "report.xlsx"
    sync(path, [entry(1)])
    original = path.read_bytes()
    backend = XlsxBackend(path)
    sync_tab(
        backend, "Data", [entry(1, hours=9)], COLUMNS, TYPES, mode="upsert", key=["id"]
    )

    def crash(filename):
        Path(filename).write_bytes(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(backend._workbook, "save", crash)
    with pytest.raises(XlsxFileError, match="disk full") as raised:
        backend.commit()

    assert ".tmp" not in str(raised.value)

    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xlsx"]


def test_xlsx_save_keeps_file_mode(tmp_path):
    path = tmp_path / "report.xlsx"
    sync(path, [entry(1)])
    os.chmod(path, 0o640)

    sync(path, [entry(1, hours=9)])

    assert path.stat().st_mode & 0o777 == 0o640


def test_xlsx_commit_refuses_file_changed_on_disk(tmp_path):
    path = tmp_path / "report.xlsx"
    sync(path, [entry(1)])
    backend = XlsxBackend(path)
    sync_tab(
        backend, "Data", [entry(1, hours=9)], COLUMNS, TYPES, mode="upsert", key=["id"]
    )
    sync(path, [entry(2)])
    saved_by_other = path.read_bytes()

    with pytest.raises(XlsxFileError, match="changed on disk"):
        backend.commit()

    assert path.read_bytes() == saved_by_other


def test_xlsx_corrupt_file_raises(tmp_path):
    path = tmp_path / "report.xlsx"
    path.write_text("not a workbook")

    with pytest.raises(XlsxFileError, match="Cannot open .*report.xlsx"):
        XlsxBackend(path)


@pytest.mark.parametrize("name", ["a/b", "x" * 32, "Data?", "'quoted'", " "])
def test_xlsx_invalid_tab_name_raises(tmp_path, name):
    backend = XlsxBackend(tmp_path / "report.xlsx")

    # A BackendError fails the run of the flow with this message, where a
    # ValueError would surface as an internal error.
    with pytest.raises(BackendError, match="Tab name"):
        backend.apply(name, ChangeSet(new_headers=["A"]))


def test_xlsx_tab_names_case_insensitive(tmp_path):
    path = tmp_path / "report.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "data"
    workbook.active.append(["Entry ID", "Code"])
    workbook.active.append([1, "007"])
    workbook.save(path)

    outcome = sync(path, [entry(1), entry(2)])

    assert outcome.created == 1
    assert outcome.updated == 1
    assert openpyxl.load_workbook(path).sheetnames == ["data"]


def test_xlsx_location_is_path(tmp_path):
    assert XlsxBackend(tmp_path / "r.xlsx").location() == str(tmp_path / "r.xlsx")


# --- Errors tab -----------------------------------------------------------------


def error(error_id: str, **fields: Any) -> dict[str, Any]:
    base = {
        "error_id": error_id,
        "first_run": "run-1",
        "time": dt.datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        "record_key": "17",
        "field": "hours",
        "code": "invalid_integer",
        "message": "Value 'abc' is not an integer",
        "raw_value": "abc",
    }
    return {**base, **fields}


def sync_errors(path: Path, flow: str, errors, owned=()):
    backend = XlsxBackend(path)
    outcome = sync_errors_tab(backend, flow, errors, owned)
    backend.commit()
    return outcome


def errors_rows(path: Path) -> list[list[Any]]:
    grid = XlsxBackend(path).read_tab(ERRORS_TAB)
    assert grid is not None
    return grid.rows


def test_errors_tab_created_with_unticked_retry(tmp_path):
    path = tmp_path / "report.xlsx"

    outcome = sync_errors(path, "hours", [error("e1"), error("e2", record_key="18")])

    rows = errors_rows(path)
    assert rows[0] == [
        "Error ID",
        "Flow",
        "First run",
        "Time",
        "Record key",
        "Field",
        "Code",
        "Message",
        "Raw value",
        "Retry",
        "Where",
    ]
    assert rows[1][:3] == ["e1", "hours", "run-1"]
    assert rows[1][3] == dt.datetime(2024, 3, 1, 9, 0)
    assert rows[1][9] is False
    assert outcome.created == 2
    assert outcome.written_keys == {"e1", "e2"}


def test_errors_tab_retry_column_validated_once(tmp_path):
    path = tmp_path / "report.xlsx"
    sync_errors(path, "hours", [error("e1")])
    sync_errors(path, "hours", [error("e1"), error("e2", record_key="18")])

    validations = openpyxl.load_workbook(path)[ERRORS_TAB].data_validations.dataValidation
    assert len(validations) == 1
    (validation,) = validations
    assert validation.type == "list"
    assert validation.formula1 == '"TRUE,FALSE"'
    assert validation.allow_blank is True
    assert str(validation.sqref) == "J2:J1048576"
    assert [row[9] for row in errors_rows(path)[1:]] == [False, False]


def test_xlsx_checkbox_only_for_created_columns(tmp_path):
    path = tmp_path / "report.xlsx"
    backend = XlsxBackend(path)
    backend.apply("Data", ChangeSet(new_headers=["Done"], checkbox_columns={0}))
    backend.apply("Data", ChangeSet(cells={(1, 0): True}, checkbox_columns={0}))
    backend.apply("Data", ChangeSet(new_headers=["Note", "Ok"],
                                    checkbox_columns={0, 2}))
    backend.commit()

    sheet = openpyxl.load_workbook(path)["Data"]
    ranges = [str(v.sqref) for v in sheet.data_validations.dataValidation]
    assert ranges == ["A2:A1048576", "C2:C1048576"]


def test_xlsx_check_limits_rows_and_columns(tmp_path):
    path = tmp_path / "report.xlsx"
    backend = XlsxBackend(path)
    backend.apply("Data", ChangeSet(new_headers=["A", "B"], append_rows=[[1, 2]] * 3))

    backend.check_limits({"Data": ChangeSet(append_rows=[[1]] * 1_048_572)},
                         {ERRORS_TAB: (1_048_576, 11)})
    with pytest.raises(LimitExceeded) as raised:
        backend.check_limits({"Data": ChangeSet(append_rows=[[1]] * 1_048_573)})
    with pytest.raises(LimitExceeded):
        backend.check_limits({}, {"Data": (1_048_573, 2)})
    with pytest.raises(LimitExceeded):
        backend.check_limits({"Other": ChangeSet(new_headers=["x"] * 16_385)})

    message = str(raised.value)
    assert "Tab 'Data'" in message
    assert "1,048,576 rows" in message
    assert "1,048,577 rows" in message
    assert "nothing was written" in message


def test_xlsx_apply_over_row_limit_writes_nothing(tmp_path):
    path = tmp_path / "report.xlsx"
    backend = XlsxBackend(path)
    backend.apply("Data", ChangeSet(new_headers=["A"], append_rows=[[1]]))
    backend.commit()

    with pytest.raises(XlsxLimitExceeded):
        backend.apply("Data", ChangeSet(cells={(1, 0): 5},
                                        append_rows=[[2]] * 1_048_575))

    assert backend.read_tab("Data").rows == [["A"], [1]]


def test_errors_tab_persisting_error_keeps_row(tmp_path):
    path = tmp_path / "report.xlsx"
    first = sync_errors(path, "hours", [error("e1")])
    workbook = openpyxl.load_workbook(path)
    workbook[ERRORS_TAB]["J2"] = True
    workbook.save(path)
    before = sheet_xml(path, ERRORS_TAB)

    later = error("e1", first_run="run-2", time=dt.datetime(2024, 3, 2, tzinfo=UTC))
    outcome = sync_errors(path, "hours", [later], first.written_keys)

    assert outcome.changes.is_empty()
    assert outcome.unchanged == 1
    assert sheet_xml(path, ERRORS_TAB) == before
    assert errors_rows(path)[1][9] is True


def test_errors_tab_resolved_error_removed_other_flows_kept(tmp_path):
    path = tmp_path / "report.xlsx"
    hours = sync_errors(path, "hours", [error("h1"), error("h2")])
    sync_errors(path, "deals", [error("d1"), error("d2")])

    outcome = sync_errors(path, "hours", [error("h2")], hours.written_keys)

    assert outcome.deleted == 1
    assert [row[0] for row in errors_rows(path)[1:]] == ["h2", "d1", "d2"]
    assert outcome.written_keys == {"h2"}


def test_errors_tab_deletes_flow_rows_without_owned_keys(tmp_path):
    path = tmp_path / "report.xlsx"
    sync_errors(path, "hours", [error("h1")])
    sync_errors(path, "deals", [error("d1")])

    outcome = sync_errors(path, "hours", [], owned=())

    assert outcome.deleted == 1
    assert [row[0] for row in errors_rows(path)[1:]] == ["d1"]


def test_errors_tab_id_of_other_flow_not_written(tmp_path):
    path = tmp_path / "report.xlsx"
    sync_errors(path, "deals", [error("x1")])

    outcome = sync_errors(path, "hours", [error("x1", message="other")], owned={"x1"})

    assert [p.code for p in outcome.errors] == ["error_id_conflict"]
    assert outcome.changes.is_empty()
    assert errors_rows(path)[1][1] == "deals"


def test_errors_tab_truncates_long_raw_value(tmp_path):
    path = tmp_path / "report.xlsx"
    raw = "r" * 60_000

    outcome = sync_errors(path, "hours", [error("e1", raw_value=raw)])

    stored = errors_rows(path)[1][8]
    assert outcome.errors == []
    assert len(stored) == XLSX_MAX_CELL_CHARS
    assert stored.endswith(TRUNCATION_MARKER.format(length=60_000))


def test_errors_tab_accepts_raw_key(tmp_path):
    path = tmp_path / "report.xlsx"
    problem = error("e1")
    del problem["raw_value"]
    problem["raw"] = "12,5 h"

    sync_errors(path, "hours", [problem])

    assert errors_rows(path)[1][8] == "12,5 h"


def test_truncate_text_sheets_limit():
    text = "a" * 50_001

    cut = truncate_text(text)

    assert len(cut) == 50_000
    assert cut.endswith("[truncated: 50001 characters in total]")
    assert truncate_text("short") == "short"


def test_errors_tab_requires_error_id(tmp_path):
    with pytest.raises(ValueError, match="no 'error_id'"):
        sync_errors_tab(
            XlsxBackend(tmp_path / "r.xlsx"), "hours", [{"message": "x"}], ()
        )


# --- Runs tab -------------------------------------------------------------------


def run(run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "flow": "hours",
        "started": dt.datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        "finished": dt.datetime(2024, 3, 1, 9, 0, 12, 500000, tzinfo=UTC),
        "status": "succeeded",
        "read": 10,
        "created": 4,
        "updated": 3,
        "unchanged": 2,
        "deleted": 0,
        "failed": 1,
    }


def test_runs_tab_one_row_per_run(tmp_path):
    path = tmp_path / "report.xlsx"
    backend = XlsxBackend(path)

    first = append_run_row(backend, run("run-1"))
    again = append_run_row(backend, run("run-1"))
    append_run_row(backend, run("run-2"))
    backend.commit()

    assert first.created == 1
    assert again.created == 0
    sheet = openpyxl.load_workbook(path)[RUNS_TAB]
    assert [c.value for c in sheet[1]] == [
        "Run ID",
        "Flow",
        "Started",
        "Finished",
        "Status",
        "Read",
        "Created",
        "Updated",
        "Unchanged",
        "Deleted",
        "Failed",
        "Seconds",
        "Message",
    ]
    assert [sheet.cell(row=r, column=1).value for r in (2, 3)] == ["run-1", "run-2"]
    assert sheet.max_row == 3
    assert sheet["F2"].data_type == "n"
    assert sheet["F2"].value == 10
    assert sheet["L2"].value == 12.5
    assert sheet["C2"].is_date


def test_runs_tab_requires_run_id(tmp_path):
    with pytest.raises(ValueError, match="no 'run_id'"):
        append_run_row(XlsxBackend(tmp_path / "r.xlsx"), {"flow": "hours"})


# --- Real data ------------------------------------------------------------------


def test_xlsx_salesforce_export_resync_is_stable(tmp_path):
    source = (
        REALDATA
        / "dataloader"
        / "src"
        / "main"
        / "resources"
        / "samples"
        / "data"
        / "opportunityData.csv"
    )
    if not source.exists():
        pytest.skip(f"real data folder not present: {source}")
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [
        ColumnPlan(field="id", header="Opportunity ID"),
        ColumnPlan(field="name", header="Name"),
        ColumnPlan(field="amount", header="Amount"),
        ColumnPlan(field="close", header="Close date"),
        ColumnPlan(field="won", header="Won"),
        ColumnPlan(field="created", header="Created"),
    ]
    types = {
        "id": "string",
        "name": "string",
        "amount": "money",
        "close": "date",
        "won": "boolean",
        "created": "datetime",
    }
    records = [
        {
            "id": row["ID"],
            "name": row["NAME"],
            "amount": Decimal(row["AMOUNT"]) if row["AMOUNT"] else None,
            "close": dt.date.fromisoformat(row["CLOSEDATE"])
            if row["CLOSEDATE"]
            else None,
            "won": row["ISWON"] == "true",
            "created": dt.datetime.fromisoformat(row["CREATEDDATE"]),
        }
        for row in rows
    ]
    path = tmp_path / "deals.xlsx"

    def run_sync(batch, mode, owned=()):
        backend = XlsxBackend(path)
        outcome = sync_tab(
            backend,
            "Deals",
            batch,
            columns,
            types,
            mode=mode,
            key=["id"],
            owned_keys=owned,
            timezone="America/New_York",
        )
        backend.commit()
        return outcome

    first = run_sync(records, "mirror")
    second = run_sync(records, "mirror", first.written_keys)
    third = run_sync(records[:-5], "mirror", second.written_keys)

    unique_ids = {r["id"] for r in records}
    assert first.created == len(unique_ids)
    assert second.changes.is_empty()
    assert second.unchanged == len(unique_ids)
    assert third.deleted == len(unique_ids - {r["id"] for r in records[:-5]})
    grid = XlsxBackend(path).read_tab("Deals")
    assert grid is not None
    assert len(grid.rows) - 1 == len(unique_ids) - third.deleted
    kept = {r["id"]: r["name"] for r in records[:-5]}
    assert {row[0]: row[1] for row in grid.rows[1:]} == kept
    assert any("," in name for name in kept.values())
