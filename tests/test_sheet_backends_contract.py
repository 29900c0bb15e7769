"""One contract, two backends: the same syncs give the same tabs in .xlsx and Google Sheets.

Every test here runs twice, once on a workbook in ``tmp_path`` and once on a
spreadsheet of the local Sheets API emulator. Each drives ``plan_tab_sync``,
``apply`` and ``read_tab`` the way a run does (a fresh backend per sync, then a
commit) and asserts the exact content of the tab afterwards. People's edits are
seeded outside syncplan: with openpyxl for the workbook, with gspread for the
spreadsheet (RAW values, and USER_ENTERED for formulas).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from compiler.plan.models import ColumnPlan, SystemPlan
from runtime.sheets.base import SheetBackend
from runtime.sheets.engine import TabSync, plan_tab_sync
from runtime.pipeline import ErrorRecord
from runtime.sheets.tabs import (
    ERRORS_TAB,
    RUNS_TAB,
    append_run_row,
    sync_errors_tab,
    truncate_text,
)
from runtime.sheets.xlsx import XlsxBackend
from sheets_addon.emulator import SheetsEmulator
from sheets_addon.google.backend import GoogleSheetsBackend
from sheets_addon.google.cells import a1_range
from sheets_addon.google.session import build_client
from tests.support.sheet_views import displayed_rows

UTC = dt.UTC
TAB = "Data"
WRITE_KINDS = ("spreadsheets.batchUpdate", "values.batchUpdate", "values.update",
               "values.append", "values.clear", "values.batchClear")

COLUMNS = [
    ColumnPlan(field="id", header="ID"),
    ColumnPlan(field="name", header="Name"),
    ColumnPlan(field="score", header="Score"),
]
TYPES = {"id": "integer", "name": "string", "score": "decimal"}


@dataclass(frozen=True)
class Formula:
    """A formula a person typed into a cell (seeded as a formula, not as text)."""

    text: str


# --- Harnesses -----------------------------------------------------------------


class XlsxSheet:
    """A workbook file; every sync opens a new backend and commits it."""

    kind = "xlsx"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saves = 0

    def backend(self) -> SheetBackend:
        return XlsxBackend(self.path)

    def commit(self, backend: SheetBackend) -> None:
        before = _disk_state(self.path)
        backend.commit()
        if _disk_state(self.path) != before:
            self.saves += 1

    def write_count(self) -> int:
        return self.saves

    def rows(self, tab: str) -> list[list[Any]] | None:
        grid = self.backend().read_tab(tab)
        return None if grid is None else grid.rows

    @staticmethod
    def formula_shown(text: str, value: Any) -> Any:
        """Return how a formula cell reads: openpyxl keeps the formula text."""
        return text

    def seed(self, tab: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.path.exists():
            workbook = openpyxl.load_workbook(self.path)
        else:
            workbook = openpyxl.Workbook()
            workbook.remove(workbook.active)
        sheet = workbook[tab] if tab in workbook.sheetnames else workbook.create_sheet(tab)
        for row_number, row in enumerate(rows, start=1):
            for column_number, value in enumerate(row, start=1):
                if value is None:
                    continue
                cell = sheet.cell(row=row_number, column=column_number)
                if isinstance(value, Formula):
                    cell.value = value.text
                    continue
                cell.value = value
                if isinstance(value, str):
                    cell.data_type = "s"
        workbook.save(self.path)

    def tab_titles(self) -> list[str]:
        return openpyxl.load_workbook(self.path).sheetnames

    def seed_number_format(self, tab: str, column: int, pattern: str,
                           format_type: str) -> None:
        """Give rows 2 to 200 of a column a number format, as a person would."""
        workbook = openpyxl.load_workbook(self.path)
        for row in range(2, 201):
            workbook[tab].cell(row=row, column=column + 1).number_format = pattern
        workbook.save(self.path)

    def number_format(self, tab: str, row: int, column: int) -> str | None:
        cell = openpyxl.load_workbook(self.path)[tab].cell(row=row + 1, column=column + 1)
        return None if cell.number_format == "General" else cell.number_format

    def stored_kind(self, tab: str, row: int, column: int) -> str | None:
        """Return how the cell at 0-based (row, column) is stored in the file."""
        cell = openpyxl.load_workbook(self.path)[tab].cell(row=row + 1, column=column + 1)
        if cell.value is None:
            return None
        return {"f": "formula", "s": "text", "n": "number", "b": "boolean",
                "d": "number"}[cell.data_type]


class GoogleSheet:
    """A spreadsheet of the emulator; every sync builds a new backend on one client."""

    kind = "google"

    def __init__(self, emulator: SheetsEmulator) -> None:
        self.emulator = emulator
        self.spreadsheet_id = emulator.create_spreadsheet("contract")
        system = SystemPlan(id="report", kind="sheets")
        self.client, self.ambiguity = build_client(
            system, self.spreadsheet_id, emulator=f"127.0.0.1:{emulator.port}")
        self.client.http_client.policy = dataclasses.replace(
            self.client.http_client.policy, base_seconds=0.001, max_seconds=0.01,
            user_quota_min_seconds=0, project_quota_min_seconds=0)
        self.client.http_client.bucket = None

    def backend(self) -> SheetBackend:
        return GoogleSheetsBackend(self.client, self.spreadsheet_id,
                                   ambiguity=self.ambiguity)

    def commit(self, backend: SheetBackend) -> None:
        backend.commit()

    def write_count(self) -> int:
        return sum(1 for record in self.emulator.log.records
                   if record.kind in WRITE_KINDS
                   and self.spreadsheet_id in record.path)

    def rows(self, tab: str) -> list[list[Any]] | None:
        """Return the tab as a person sees it: date-formatted serials as dates."""
        grid = self.backend().read_tab(tab)
        if grid is None:
            return None
        return displayed_rows(self.emulator, self.spreadsheet_id, tab, grid.rows)

    @staticmethod
    def formula_shown(text: str, value: Any) -> Any:
        """Return how a formula cell reads: the API computes unformatted values."""
        return value

    def seed(self, tab: str, rows: Sequence[Sequence[Any]]) -> None:
        spreadsheet = self.emulator.gspread_client().open_by_key(self.spreadsheet_id)
        titles = [sheet.title for sheet in spreadsheet.worksheets()]
        if tab not in titles:
            spreadsheet.add_worksheet(tab, rows=1000, cols=26)
        worksheet = spreadsheet.worksheet(tab)
        width = max(map(len, rows))
        if worksheet.col_count < width:
            worksheet.add_cols(width - worksheet.col_count)
        if worksheet.row_count < len(rows):
            worksheet.add_rows(len(rows) - worksheet.row_count)
        raw = [[None if isinstance(v, Formula) else v for v in row] for row in rows]
        spreadsheet.values_batch_update({
            "valueInputOption": "RAW",
            "data": [{"range": a1_range(tab, 0, 0, len(rows), max(map(len, rows))),
                      "values": raw}]})
        formulas = [{"range": a1_range(tab, r, c), "values": [[value.text]]}
                    for r, row in enumerate(rows) for c, value in enumerate(row)
                    if isinstance(value, Formula)]
        if formulas:
            spreadsheet.values_batch_update({"valueInputOption": "USER_ENTERED",
                                             "data": formulas})

    def tab_titles(self) -> list[str]:
        spreadsheet = self.emulator.spreadsheet(self.spreadsheet_id)
        return [sheet.title for sheet in spreadsheet.sheets if sheet.title != "Sheet1"]

    def seed_number_format(self, tab: str, column: int, pattern: str,
                           format_type: str) -> None:
        """Give rows 2 to 200 of a column a number format, as a person would."""
        spreadsheet = self.emulator.gspread_client().open_by_key(self.spreadsheet_id)
        sheet_id = spreadsheet.worksheet(tab).id
        spreadsheet.batch_update({"requests": [{"repeatCell": {
            "range": {"sheetId": sheet_id, "startRowIndex": 1, "endRowIndex": 200,
                      "startColumnIndex": column, "endColumnIndex": column + 1},
            "cell": {"userEnteredFormat": {"numberFormat": {
                "type": format_type, "pattern": pattern}}},
            "fields": "userEnteredFormat.numberFormat"}}]})

    def number_format(self, tab: str, row: int, column: int) -> str | None:
        sheet = self.emulator.spreadsheet(self.spreadsheet_id).sheet_by_title(tab)
        assert sheet is not None, f"tab {tab!r} missing"
        cell = sheet.cells.get((row, column))
        user_format = (cell.user_format if cell is not None else None) or {}
        return (user_format.get("numberFormat") or {}).get("pattern")

    def stored_kind(self, tab: str, row: int, column: int) -> str | None:
        """Return how the emulator stores the cell at 0-based (row, column)."""
        sheet = self.emulator.spreadsheet(self.spreadsheet_id).sheet_by_title(tab)
        assert sheet is not None, f"tab {tab!r} missing"
        cell = sheet.cells.get((row, column))
        if cell is None or not cell.has_content():
            return None
        if cell.formula is not None:
            return "formula"
        if isinstance(cell.value, bool):
            return "boolean"
        return "text" if isinstance(cell.value, str) else "number"


def _disk_state(path: Path) -> tuple[int, int] | None:
    if not path.exists():
        return None
    status = path.stat()
    return (status.st_mtime_ns, status.st_size)


@pytest.fixture(scope="module")
def emulator() -> Iterator[SheetsEmulator]:
    with SheetsEmulator() as running:
        yield running


@pytest.fixture(params=["xlsx", "google"])
def sheet(request: pytest.FixtureRequest, tmp_path: Path) -> XlsxSheet | GoogleSheet:
    if request.param == "xlsx":
        return XlsxSheet(tmp_path / "report.xlsx")
    return GoogleSheet(request.getfixturevalue("emulator"))


def sync(sheet: XlsxSheet | GoogleSheet, records: Sequence[dict[str, Any]],
         **options: Any) -> TabSync:
    """Read the tab, plan the sync, apply it when it changes anything, commit."""
    backend = sheet.backend()
    outcome = sync_on(backend, records, **options)
    sheet.commit(backend)
    return outcome


def sync_on(backend: SheetBackend, records: Sequence[dict[str, Any]], *,
            mode: str = "upsert", key: Sequence[str] = ("id",),
            columns: Sequence[ColumnPlan] = COLUMNS,
            types: dict[str, str] | None = None, tab: str = TAB,
            owned: Sequence[str] = (), timezone: str = "UTC") -> TabSync:
    grid = backend.read_tab(tab)
    outcome = plan_tab_sync(grid, records, columns, types or TYPES, mode=mode,
                            key=list(key), owned_keys=owned, timezone=timezone,
                            max_cell_chars=backend.max_cell_chars)
    if grid is None or not outcome.changes.is_empty():
        backend.apply(tab, outcome.changes)
    return outcome


def rows_of(sheet: XlsxSheet | GoogleSheet, tab: str = TAB) -> list[list[Any]] | None:
    return sheet.rows(tab)


def person(key: int, name: str, score: Any = None) -> dict[str, Any]:
    return {"id": key, "name": name, "score": score}


def codes(outcome: TabSync) -> list[str]:
    return [problem.code for problem in outcome.errors]


FLOW = "people"
RUN_TIME = dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
ERRORS_HEADER = ["Error ID", "Flow", "First run", "Time", "Record key", "Field", "Code",
                 "Message", "Raw value", "Retry", "Where"]


def sync_reported(sheet: XlsxSheet | GoogleSheet, records: Sequence[dict[str, Any]],
                  **options: Any) -> TabSync:
    """Sync like a run: the data tab, then its problems into the Errors tab, one commit."""
    backend = sheet.backend()
    outcome = sync_on(backend, records, **options)
    rows = [{**_error_record(p.code, p.message, p.key, p.field, p.raw),
             "first_run": "run-1", "time": RUN_TIME} for p in outcome.errors]
    sync_errors_tab(backend, FLOW, rows, ())
    sheet.commit(backend)
    return outcome


def _error_record(code: str, message: str, key: str | None, field: str | None,
                  raw: str | None) -> dict[str, Any]:
    # The runner turns each problem into an ErrorRecord the same way.
    return ErrorRecord(FLOW, code, message, key, field, raw, f"report/{TAB}").as_row()


def error_row(code: str, message: str, *, key: str | None = None,
              field: str | None = None, raw: str | None = None,
              max_chars: int = 50_000) -> list[Any]:
    """Return the Errors tab row the runner writes for one problem of ``sync_reported``."""
    record = _error_record(code, message, key, field, raw)
    shown_raw = None if record["raw"] is None else truncate_text(record["raw"], max_chars)
    return [record["error_id"], FLOW, "run-1", dt.datetime(2024, 5, 1, 9, 0), key,
            field, code, message, shown_raw, False, f"report/{TAB}"]


# --- New tabs and cell types -----------------------------------------------------


def test_contract_new_tab_gets_header_then_rows(sheet) -> None:
    outcome = sync(sheet, [person(1, "Ada", 3), person(2, "Bob", Decimal("4.5"))])

    assert outcome.header_created
    assert outcome.created == 2
    assert rows_of(sheet) == [
        ["ID", "Name", "Score"],
        [1, "Ada", 3],
        [2, "Bob", 4.5],
    ]


@pytest.mark.parametrize("tab", ["Time entries", "Bob's tab", "A1", "R1C1", "2024"])
def test_contract_tab_names_that_need_quotes(sheet, tab: str) -> None:
    sync(sheet, [person(1, "Ada", 3)], tab=tab)
    outcome = sync(sheet, [person(1, "Ada", 4), person(2, "Bob", 5)], tab=tab)

    assert (outcome.created, outcome.updated) == (1, 1)
    assert rows_of(sheet, tab) == [["ID", "Name", "Score"], [1, "Ada", 4],
                                   [2, "Bob", 5]]


def test_contract_tab_found_whatever_its_case(sheet) -> None:
    sheet.seed("data", [["ID", "Name", "Score"], [1, "old", 1]])

    sync(sheet, [person(1, "Ada", 2)], tab="DATA")

    assert rows_of(sheet, "data") == [["ID", "Name", "Score"], [1, "Ada", 2]]
    assert rows_of(sheet, "Data") == rows_of(sheet, "data")
    assert sheet.tab_titles() == ["data"]


def test_contract_values_keep_their_types(sheet) -> None:
    columns = [ColumnPlan(field=name, header=name.title()) for name in
               ("id", "count", "ratio", "price", "day", "moment", "spent", "paid")]
    types = {"id": "integer", "count": "integer", "ratio": "decimal",
             "price": "money", "day": "date", "moment": "datetime",
             "spent": "duration", "paid": "boolean"}
    record = {"id": 1, "count": 12, "ratio": 0.25, "price": Decimal("10.50"),
              "day": dt.date(2024, 2, 29),
              "moment": dt.datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
              "spent": dt.timedelta(hours=1, minutes=30), "paid": True}

    sync(sheet, [record], columns=columns, types=types, timezone="Europe/Paris")

    header, row = rows_of(sheet)
    assert header == ["Id", "Count", "Ratio", "Price", "Day", "Moment", "Spent", "Paid"]
    assert row == [1, 12, 0.25, 10.5, dt.date(2024, 2, 29),
                   dt.datetime(2024, 3, 1, 9, 30), dt.timedelta(hours=1, minutes=30),
                   True]
    assert type(row[4]) is dt.date
    assert isinstance(row[1], int)
    assert sheet.stored_kind(TAB, 1, 1) == "number"
    assert sheet.stored_kind(TAB, 1, 3) == "number"
    assert sheet.stored_kind(TAB, 1, 7) == "boolean"


@pytest.mark.parametrize("text", ["007", "=SUM(A1)", "+1", "-x", "@me", "1e3",
                                  "Zoë ☕ 東京", "line one\nline two"])
def test_contract_text_stays_text(sheet, text: str) -> None:
    sync(sheet, [person(1, text)])

    assert rows_of(sheet)[1] == [1, text, None]
    assert sheet.stored_kind(TAB, 1, 1) == "text"
    second = sync(sheet, [person(1, text)])
    assert second.changes.is_empty()


def test_contract_dates_in_a_tab_a_person_made(sheet) -> None:
    columns = [COLUMNS[0], ColumnPlan(field="day", header="Day"),
               ColumnPlan(field="at", header="At")]
    types = {"id": "integer", "day": "date", "at": "datetime"}
    sheet.seed(TAB, [["ID", "Day", "At"], [1, None, None]])
    records = [{"id": 1, "day": dt.date(2024, 6, 1), "at": dt.datetime(2024, 6, 1, 9)},
               {"id": 2, "day": dt.date(2024, 6, 2), "at": dt.datetime(2024, 6, 2, 10)}]

    sync(sheet, records, columns=columns, types=types)

    assert rows_of(sheet) == [
        ["ID", "Day", "At"],
        [1, dt.date(2024, 6, 1), dt.datetime(2024, 6, 1, 9)],
        [2, dt.date(2024, 6, 2), dt.datetime(2024, 6, 2, 10)],
    ]
    again = sync(sheet, records, columns=columns, types=types)
    assert again.changes.is_empty()


def test_contract_person_date_format_is_kept(sheet) -> None:
    columns = [COLUMNS[0], ColumnPlan(field="day", header="Day")]
    types = {"id": "integer", "day": "date"}
    sheet.seed(TAB, [["ID", "Day"], [1, None]])
    sheet.seed_number_format(TAB, 1, "dd/mm/yyyy", "DATE")
    records = [{"id": 1, "day": dt.date(2024, 6, 1)}, {"id": 2, "day": dt.date(2024, 6, 2)}]

    sync(sheet, records, columns=columns, types=types)

    assert rows_of(sheet) == [["ID", "Day"], [1, dt.date(2024, 6, 1)],
                              [2, dt.date(2024, 6, 2)]]
    assert sheet.number_format(TAB, 1, 1) == "dd/mm/yyyy"
    assert sheet.number_format(TAB, 2, 1) == "dd/mm/yyyy"
    assert sync(sheet, records, columns=columns, types=types).changes.is_empty()


def test_contract_number_in_date_formatted_column(sheet) -> None:
    sheet.seed(TAB, [["ID", "Name", "Score"], [1, "Ada", None]])
    sheet.seed_number_format(TAB, 2, "yyyy-mm-dd", "DATE")
    records = [person(1, "Ada", 45000), person(2, "Bob", 2.5)]

    sync(sheet, records)

    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "Ada", 45000],
                              [2, "Bob", 2.5]]
    assert sync(sheet, records).changes.is_empty()


# --- Finding columns -------------------------------------------------------------


def test_contract_headers_match_case_space_and_alias(sheet) -> None:
    sheet.seed(TAB, [["  id ", "NAME", "Points"], [1, "old", 1]])
    columns = [COLUMNS[0], COLUMNS[1],
               ColumnPlan(field="score", header="Score", aliases=["points"])]

    outcome = sync(sheet, [person(1, "Ada", 7), person(2, "Bob", 8)], columns=columns)

    assert outcome.changes.new_headers == []
    assert rows_of(sheet) == [
        ["  id ", "NAME", "Points"],
        [1, "Ada", 7],
        [2, "Bob", 8],
    ]


def test_contract_user_column_and_formula_untouched(sheet) -> None:
    sheet.seed(TAB, [
        ["ID", "Notes", "Name", "Double", "Score"],
        [1, "call back", "old", Formula("=E2*2"), 5],
        [2, None, "Bob", Formula("=E3*2"), 6],
    ])

    outcome = sync_reported(sheet, [person(1, "Ada", 10), person(2, "Bob", 6),
                                    person(3, "Cy", 1)])

    assert outcome.updated == 1
    assert outcome.created == 1
    assert rows_of(sheet) == [
        ["ID", "Notes", "Name", "Double", "Score"],
        [1, "call back", "Ada", sheet.formula_shown("=E2*2", 20), 10],
        [2, None, "Bob", sheet.formula_shown("=E3*2", 12), 6],
        [3, None, "Cy", None, 1],
    ]
    assert sheet.stored_kind(TAB, 1, 3) == "formula"
    assert sheet.stored_kind(TAB, 2, 3) == "formula"
    assert sheet.stored_kind(TAB, 1, 1) == "text"
    assert rows_of(sheet, ERRORS_TAB) == [ERRORS_HEADER]


def test_contract_renamed_key_header_writes_nothing(sheet) -> None:
    seeded = [["Identifier", "Name", "Score"], [1, "old", 2]]
    sheet.seed(TAB, seeded)
    before = sheet.write_count()

    outcome = sync_reported(sheet, [person(1, "Ada", 3), person(2, "Bob", 4)])

    assert outcome.changes.is_empty()
    assert codes(outcome) == ["key_column_missing"]
    assert rows_of(sheet) == seeded
    # The only write is the new Errors tab.
    assert sheet.write_count() - before == (1 if sheet.kind == "xlsx" else 2)
    assert rows_of(sheet, ERRORS_TAB) == [ERRORS_HEADER, error_row(
        "key_column_missing",
        "Key column 'ID' (field 'id') was not found in the header row; headers found:"
        " ['Identifier', 'Name', 'Score']. Nothing was written to this tab. Rename"
        " the column back to 'ID' or add its new name as an alias.",
        field="id", raw="['Identifier', 'Name', 'Score']")]


def test_contract_blank_and_duplicate_headers(sheet) -> None:
    sheet.seed(TAB, [
        ["ID", None, "Name", "Name"],
        [1, "kept", "old", "copy"],
    ])

    outcome = sync_reported(sheet, [person(1, "Ada", 9)])

    assert outcome.changes.new_headers == ["Score"]
    assert rows_of(sheet) == [
        ["ID", None, "Name", "Name", "Score"],
        [1, "kept", "Ada", "copy", 9],
    ]
    # The blank header is a person's column and no problem; the repeated owned
    # header is.
    assert rows_of(sheet, ERRORS_TAB) == [ERRORS_HEADER, error_row(
        "duplicate_header",
        "Header 'Name' of field 'name' is also in column(s) D of the header row."
        " syncplan writes column C, the leftmost, and leaves the others alone."
        " Rename or delete the other columns so that the header is unique.",
        field="name", raw="Name")]


def test_contract_number_cell_against_text_key(sheet) -> None:
    columns = [ColumnPlan(field="code", header="Code"), COLUMNS[1]]
    types = {"code": "string", "name": "string"}
    # A person typed the key 0042 without formatting the cell as text.
    sheet.seed(TAB, [["Code", "Name"], [42, "typed"], ["0043", "kept"]])

    outcome = sync_reported(sheet, [{"code": "0042", "name": "new"},
                                    {"code": "0043", "name": "kept 2"},
                                    {"code": "0044", "name": "added"}],
                            columns=columns, types=types, key=["code"])

    assert (outcome.created, outcome.updated) == (1, 1)
    assert rows_of(sheet) == [["Code", "Name"], [42, "typed"], ["0043", "kept 2"],
                              ["0044", "added"]]
    assert sheet.stored_kind(TAB, 1, 0) == "number"
    assert rows_of(sheet, ERRORS_TAB) == [ERRORS_HEADER, error_row(
        "key_cell_is_number",
        "No row has the text key '0042', but rows [2] hold the number 42 in key"
        " column 'Code'. A spreadsheet drops the leading zeros of a key typed as a"
        " number, so the record was not written rather than added as a second row."
        " Format the key column as plain text and type the key as '0042', or delete"
        " that row.",
        key="0042", field="code", raw="0042")]


def test_contract_long_text_becomes_error_row(sheet) -> None:
    sync(sheet, [person(1, "Ada", 1), person(2, "Bob", 2)])
    long_text = "x" * 60_000
    limit = 32_767 if sheet.kind == "xlsx" else 50_000

    outcome = sync_reported(sheet, [person(1, long_text, 5), person(2, "Bob", 3),
                                    person(3, long_text, 4)])

    assert codes(outcome) == ["cell_too_long", "cell_too_long"]
    # The long cells keep what they had; the other cells of the records change.
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "Ada", 5], [2, "Bob", 3],
                              [3, None, 4]]
    message = (f"Field 'name': Text of 60000 characters is over the limit of {limit}"
               " characters per cell, so it was not written; shorten the value at its"
               " source or map a shorter field.")
    errors = rows_of(sheet, ERRORS_TAB)
    assert errors == [
        ERRORS_HEADER,
        error_row("cell_too_long", message, key="1", field="name", raw=long_text,
                  max_chars=limit),
        error_row("cell_too_long", message, key="3", field="name", raw=long_text,
                  max_chars=limit),
    ]
    # The raw value is cut to the first 2,000 characters when the error is made.
    assert errors[1][8] == "x" * 2000 + "..."


# --- Matching rows by key ----------------------------------------------------------


def test_contract_integer_key_matches_number_and_text(sheet) -> None:
    # A person typed 1008 as text; the integer key still matches it, and the
    # owned key cell is rewritten as the number the record holds.
    sheet.seed(TAB, [["ID", "Name", "Score"], [1007, "old", 1], ["1008", "Bob", 2],
                     [1009.0, "Cy", 3]])

    outcome = sync(sheet, [person(1007, "Ada", 1), person(1008, "Bob", 2),
                           person(1009, "Cy", 3)])

    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 2, 1)
    assert outcome.changes.cells == {(1, 1): "Ada", (2, 0): 1008}
    assert rows_of(sheet) == [
        ["ID", "Name", "Score"],
        [1007, "Ada", 1],
        [1008, "Bob", 2],
        [1009, "Cy", 3],
    ]
    assert sheet.stored_kind(TAB, 2, 0) == "number"


def test_contract_string_key_keeps_leading_zeros(sheet) -> None:
    columns = [ColumnPlan(field="code", header="Code"), COLUMNS[1]]
    types = {"code": "string", "name": "string"}
    sheet.seed(TAB, [["Code", "Name"], ["0042", "kept"]])

    outcome = sync(sheet, [{"code": "42", "name": "new"}], columns=columns,
                   types=types, key=["code"])

    assert outcome.created == 1
    assert outcome.updated == 0
    assert rows_of(sheet) == [["Code", "Name"], ["0042", "kept"], ["42", "new"]]
    assert sheet.stored_kind(TAB, 1, 0) == "text"
    assert sheet.stored_kind(TAB, 2, 0) == "text"


def test_contract_duplicate_source_keys_last_wins(sheet) -> None:
    sync(sheet, [person(1, "Ada", 1)])

    outcome = sync_reported(sheet, [person(1, "first", 2), person(2, "Bob", 3),
                                    person(1, "last", 4)])

    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "last", 4], [2, "Bob", 3]]
    assert rows_of(sheet, ERRORS_TAB) == [ERRORS_HEADER, error_row(
        "duplicate_key_in_source",
        "Key '1' occurs more than once in the records; the last record with this key"
        " was written and this earlier one was skipped. Remove the duplicate at the"
        " source, or add a field to the key.",
        key="1", raw="1")]


def test_contract_duplicate_sheet_keys_not_merged(sheet) -> None:
    seeded = [["ID", "Name", "Score"], [5, "first", 1], [6, "other", 2],
              [5, "second", 3]]
    sheet.seed(TAB, seeded)

    outcome = sync(sheet, [person(5, "Ada", 9), person(6, "Bob", 2)])

    assert codes(outcome) == ["duplicate_key_in_sheet"]
    assert outcome.errors[0].key == "5"
    assert "rows [2, 4]" in outcome.errors[0].message
    assert rows_of(sheet) == [["ID", "Name", "Score"], [5, "first", 1],
                              [6, "Bob", 2], [5, "second", 3]]


# --- Clearing and refusing values --------------------------------------------------


def test_contract_none_clears_owned_cell(sheet) -> None:
    sync(sheet, [person(1, "Ada", 3), person(2, "Bob", 4)])

    outcome = sync(sheet, [person(1, None, 3), person(2, "Bob", None)])

    assert outcome.updated == 2
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, None, 3], [2, "Bob", None]]
    assert sheet.stored_kind(TAB, 1, 1) is None
    assert sheet.stored_kind(TAB, 2, 2) is None


def test_contract_nan_never_written(sheet) -> None:
    sync(sheet, [person(1, "Ada", 3)])

    outcome = sync_reported(sheet, [person(1, "Ada", math.nan),
                                    person(2, "Bob", float("nan"))])

    assert codes(outcome) == ["value_not_finite", "value_not_finite"]
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "Ada", 3], [2, "Bob", None]]
    assert sheet.stored_kind(TAB, 1, 2) == "number"
    assert sheet.stored_kind(TAB, 2, 2) is None
    message = ("Field 'score': Value nan is not a number, so it was not written and"
               " the cell keeps its value; fix the calculation or the source value.")
    assert rows_of(sheet, ERRORS_TAB) == [
        ERRORS_HEADER,
        error_row("value_not_finite", message, key="1", field="score", raw="nan"),
        error_row("value_not_finite", message, key="2", field="score", raw="nan"),
    ]


# --- Write modes ---------------------------------------------------------------------


def test_contract_create_mode_never_updates(sheet) -> None:
    sync(sheet, [person(1, "Ada", 3)], mode="create")

    outcome = sync(sheet, [person(1, "changed", 9), person(2, "Bob", 4)], mode="create")

    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 0, 1)
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "Ada", 3], [2, "Bob", 4]]


def test_contract_upsert_mode_updates_and_appends(sheet) -> None:
    sync(sheet, [person(1, "Ada", 3), person(2, "Bob", 4)])

    outcome = sync(sheet, [person(2, "Bob", 5), person(3, "Cy", 6)])

    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 1, 0)
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "Ada", 3], [2, "Bob", 5],
                              [3, "Cy", 6]]


def test_contract_update_mode_never_appends(sheet) -> None:
    sync(sheet, [person(1, "Ada", 3)])

    outcome = sync(sheet, [person(1, "Ada", 8), person(2, "Bob", 4)], mode="update")

    assert (outcome.created, outcome.updated) == (0, 1)
    assert codes(outcome) == ["key_not_found"]
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "Ada", 8]]


def test_contract_append_mode_always_appends(sheet) -> None:
    sync(sheet, [person(1, "Ada", 3)], mode="append", key=())

    outcome = sync(sheet, [person(1, "Ada", 3), person(2, "Bob", 4)], mode="append",
                   key=())

    assert outcome.created == 2
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "Ada", 3], [1, "Ada", 3],
                              [2, "Bob", 4]]


def test_contract_mirror_deletes_only_owned_rows(sheet) -> None:
    first = sync(sheet, [person(1, "Ada", 1), person(3, "Cy", 3), person(4, "Di", 4)],
                 mode="mirror")
    assert first.written_keys == {"1", "3", "4"}
    # A person adds a row of their own between syncplan's rows and a note column.
    sheet.seed(TAB, [["ID", "Name", "Score", "Note"],
                     [1, "Ada", 1, "n1"], [2, "person's row", 0, "n2"],
                     [3, "Cy", 3, "n3"], [4, "Di", 4, "n4"]])

    outcome = sync(sheet, [person(1, "Ada", 10), person(4, "Di", 40), person(5, "Ed", 5)],
                   mode="mirror", owned=sorted(first.written_keys))

    assert (outcome.created, outcome.updated, outcome.deleted) == (1, 2, 1)
    assert outcome.written_keys == {"1", "4", "5"}
    assert rows_of(sheet) == [
        ["ID", "Name", "Score", "Note"],
        [1, "Ada", 10, "n1"],
        [2, "person's row", 0, "n2"],
        [4, "Di", 40, "n4"],
        [5, "Ed", 5, None],
    ]


def test_contract_mirror_deletes_several_rows(sheet) -> None:
    records = [person(key, f"p{key}", key) for key in range(1, 9)]
    first = sync(sheet, records, mode="mirror")

    kept = [records[0], records[3], records[7]]
    outcome = sync(sheet, [*kept, person(9, "p9", 9)], mode="mirror",
                   owned=sorted(first.written_keys))

    assert outcome.deleted == 5
    assert rows_of(sheet) == [["ID", "Name", "Score"], [1, "p1", 1], [4, "p4", 4],
                              [8, "p8", 8], [9, "p9", 9]]


def test_contract_second_sync_changes_nothing(sheet) -> None:
    columns = [*COLUMNS, ColumnPlan(field="day", header="Day"),
               ColumnPlan(field="at", header="At")]
    types = {**TYPES, "day": "date", "at": "datetime"}
    records = [{**person(key, f"p{key}", Decimal(key) / 4),
                "day": dt.date(2024, 1, key),
                "at": dt.datetime(2024, 1, key, 12, 0, 1, tzinfo=UTC)}
               for key in range(1, 6)]
    sync(sheet, records, columns=columns, types=types, timezone="Europe/Paris")
    before = sheet.write_count()
    content = rows_of(sheet)

    again = sync(sheet, records, columns=columns, types=types, timezone="Europe/Paris")

    assert again.changes.is_empty()
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert sheet.write_count() == before
    assert rows_of(sheet) == content


# --- Errors and Runs tabs -----------------------------------------------------------


def error(error_id: str, message: str, hour: int) -> dict[str, Any]:
    return {"error_id": error_id, "first_run": "run-1", "record_key": "7",
            "field": "email", "code": "invalid_email", "message": message,
            "raw_value": "x@", "time": dt.datetime(2024, 5, 1, hour, tzinfo=UTC)}


def test_contract_errors_tab_keeps_other_flows(sheet) -> None:
    backend = sheet.backend()
    sync_errors_tab(backend, "clients", [error("c1", "bad 1", 8), error("c2", "bad 2", 8)],
                    ())
    sync_errors_tab(backend, "deals", [error("d1", "bad deal", 9)], ())
    sheet.commit(backend)

    backend = sheet.backend()
    again = sync_errors_tab(backend, "clients",
                            [{**error("c2", "bad 2 again", 10), "first_run": "run-2"}],
                            ())
    sheet.commit(backend)

    assert (again.created, again.updated, again.deleted) == (0, 1, 1)
    assert rows_of(sheet, ERRORS_TAB) == [
        ["Error ID", "Flow", "First run", "Time", "Record key", "Field", "Code",
         "Message", "Raw value", "Retry", "Where"],
        ["c2", "clients", "run-1", dt.datetime(2024, 5, 1, 8), "7", "email",
         "invalid_email", "bad 2 again", "x@", False, None],
        ["d1", "deals", "run-1", dt.datetime(2024, 5, 1, 9), "7", "email",
         "invalid_email", "bad deal", "x@", False, None],
    ]


def test_contract_errors_tab_unchanged_sends_nothing(sheet) -> None:
    errors = [error("c1", "bad 1", 8)]
    backend = sheet.backend()
    sync_errors_tab(backend, "clients", errors, ())
    sheet.commit(backend)
    before = sheet.write_count()

    backend = sheet.backend()
    again = sync_errors_tab(backend, "clients", errors, ())
    sheet.commit(backend)

    assert again.changes.is_empty()
    assert sheet.write_count() == before


def run_row(run_id: str, created: int) -> dict[str, Any]:
    started = dt.datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    return {"run_id": run_id, "flow": "clients", "started": started,
            "finished": started + dt.timedelta(seconds=90), "status": "succeeded",
            "read": 4, "created": created, "updated": 0, "unchanged": 0,
            "deleted": 0, "failed": 1}


def test_contract_runs_tab_one_row_per_run(sheet) -> None:
    for run_id, created in [("r1", 4), ("r1", 4), ("r2", 0)]:
        backend = sheet.backend()
        append_run_row(backend, run_row(run_id, created), timezone="Europe/London")
        sheet.commit(backend)

    rows = rows_of(sheet, RUNS_TAB)
    assert rows[0] == ["Run ID", "Flow", "Started", "Finished", "Status", "Read",
                       "Created", "Updated", "Unchanged", "Deleted", "Failed",
                       "Seconds", "Message"]
    start = dt.datetime(2024, 5, 1, 7, 0)
    finish = dt.datetime(2024, 5, 1, 7, 1, 30)
    assert rows[1:] == [
        ["r1", "clients", start, finish, "succeeded", 4, 4, 0, 0, 0, 1, 90, None],
        ["r2", "clients", start, finish, "succeeded", 4, 0, 0, 0, 0, 1, 90, None],
    ]


# --- Both backends side by side ------------------------------------------------------


def test_contract_backends_agree_on_a_scenario(tmp_path: Path,
                                               emulator: SheetsEmulator) -> None:
    sheets = [XlsxSheet(tmp_path / "report.xlsx"), GoogleSheet(emulator)]
    steps = [
        dict(records=[person(k, f"p{k}", k * 1.5) for k in range(1, 7)], mode="mirror"),
        dict(records=[person(k, f"q{k}", k) for k in (2, 3, 5, 7)], mode="mirror",
             owned=[str(k) for k in range(1, 7)]),
        dict(records=[person(3, None, None), person(8, "=1+1", 0)], mode="upsert"),
    ]
    contents = []
    for target in sheets:
        for step in steps:
            sync(target, **step)
        contents.append(rows_of(target))

    assert contents[0] == contents[1]
    assert [row[0] for row in contents[0][1:]] == [2, 3, 5, 7, 8]
    assert contents[0][0] == ["ID", "Name", "Score"]
    assert contents[0][2] == [3, None, None]
    assert contents[0][5] == [8, "=1+1", 0]
