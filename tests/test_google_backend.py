"""Google Sheets backend specifics, against the local Sheets API emulator.

These are the checks the contract suite cannot make: the number and kind of
requests of a sync, the request bodies (RAW input, only the changed cells, the
2 MB split), the stored serials and number formats, and the cell limits. The
last tests check that the backend factory finds its spreadsheet id and
credentials without sending any request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from google.auth.exceptions import DefaultCredentialsError
from gspread.exceptions import APIError

from compiler.plan.models import ColumnPlan, SystemPlan
from runtime.sheets.base import ChangeSet, LimitExceeded
from runtime.sheets.engine import TabSync, plan_tab_sync
from runtime.sheets.tabs import (
    ERRORS_TAB,
    RUNS_TAB,
    TRUNCATION_MARKER,
    check_run_limits,
    sync_errors_tab,
)
from sheets_addon.emulator import SheetsEmulator
from sheets_addon.google import (
    CredentialsError,
    create_backend,
    load_credentials,
    sharing_hint,
    spreadsheet_id,
)
from sheets_addon.google import backend as backend_module
from sheets_addon.google import batches as batches_module
from sheets_addon.google.backend import CellLimitExceeded, GoogleSheetsBackend
from sheets_addon.google.session import build_client
from tests.support.sheet_views import displayed_rows

TAB = "Data"
COLUMNS = [
    ColumnPlan(field="id", header="ID"),
    ColumnPlan(field="name", header="Name"),
    ColumnPlan(field="day", header="Day"),
    ColumnPlan(field="at", header="At"),
    ColumnPlan(field="amount", header="Amount"),
]
TYPES = {"id": "integer", "name": "string", "day": "date", "at": "datetime",
         "amount": "decimal"}
WRITE_KINDS = {"spreadsheets.batchUpdate", "values.batchUpdate", "values.update",
               "values.append", "values.clear", "values.batchClear"}


def record(key: int, name: str = "n", amount: Any = 1) -> dict[str, Any]:
    return {"id": key, "name": name, "day": dt.date(2024, 1, 1) + dt.timedelta(key),
            "at": dt.datetime(2024, 1, 1, 12, 0) + dt.timedelta(days=key),
            "amount": amount}


class Target:
    """One emulated spreadsheet and a client wired like a run's, with fast retries."""

    def __init__(self, emulator: SheetsEmulator, spreadsheet: str) -> None:
        self.emulator = emulator
        self.spreadsheet_id = spreadsheet
        self.client, self.ambiguity = build_client(
            SystemPlan(id="report", kind="sheets"), spreadsheet,
            emulator=f"127.0.0.1:{emulator.port}")
        http = self.client.http_client
        http.policy = dataclasses.replace(http.policy, base_seconds=0.001,
                                          max_seconds=0.01)
        http.bucket = None
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        session = http.session
        original = session.request

        def spy(method: str, url: str, **kwargs: Any) -> requests.Response:
            payload = kwargs.get("json")
            if payload is None and kwargs.get("data"):
                payload = json.loads(kwargs["data"])
            if payload is not None:
                self.bodies.append((url, payload))
            return original(method, url, **kwargs)

        session.request = spy  # type: ignore[method-assign]

    def backend(self) -> GoogleSheetsBackend:
        return GoogleSheetsBackend(self.client, self.spreadsheet_id,
                                   ambiguity=self.ambiguity)

    def sync(self, records: Sequence[dict[str, Any]], *, mode: str = "upsert",
             tab: str = TAB, owned: Sequence[str] = (),
             backend: GoogleSheetsBackend | None = None) -> TabSync:
        backend = backend or self.backend()
        grid = backend.read_tab(tab)
        outcome = plan_tab_sync(grid, records, COLUMNS, TYPES, mode=mode, key=["id"],
                                owned_keys=owned, max_cell_chars=backend.max_cell_chars)
        if grid is None or not outcome.changes.is_empty():
            backend.apply(tab, outcome.changes)
        return outcome

    def rows(self, tab: str = TAB) -> list[list[Any]]:
        """Return the tab as the backend reads it: dates as serial numbers."""
        grid = self.backend().read_tab(tab)
        assert grid is not None, f"tab {tab!r} missing"
        return grid.rows

    def shown(self, tab: str = TAB) -> list[list[Any]]:
        """Return the tab as a person sees it: date-formatted serials as dates."""
        return displayed_rows(self.emulator, self.spreadsheet_id, tab, self.rows(tab))

    def stored(self, tab: str, row: int, column: int) -> Any:
        sheet = self.emulator.spreadsheet(self.spreadsheet_id).sheet_by_title(tab)
        assert sheet is not None, f"tab {tab!r} missing"
        return sheet.cells.get((row, column))

    def grid_size(self, tab: str) -> tuple[int, int]:
        sheet = self.emulator.spreadsheet(self.spreadsheet_id).sheet_by_title(tab)
        assert sheet is not None, f"tab {tab!r} missing"
        return sheet.row_count, sheet.column_count

    def values_bodies(self) -> list[dict[str, Any]]:
        return [body for url, body in self.bodies if url.endswith("values:batchUpdate")]

    def writes(self) -> list[Any]:
        return [r for r in self.emulator.log.records if r.kind in WRITE_KINDS]


@pytest.fixture(scope="module")
def emulator() -> Iterator[SheetsEmulator]:
    with SheetsEmulator() as running:
        yield running


@pytest.fixture()
def target(emulator: SheetsEmulator) -> Target:
    emulator.reset_log()
    return Target(emulator, emulator.create_spreadsheet("backend"))


def number_format(cell: Any) -> dict[str, Any] | None:
    return ((cell.user_format or {}) if cell is not None else {}).get("numberFormat")


# --- Request budget ------------------------------------------------------------


def test_google_new_tab_sync_costs_three_requests(target: Target) -> None:
    target.sync([record(key) for key in range(1, 21)])

    # The properties of every tab tell that the tab is missing, so it is not read.
    assert target.emulator.counts_by_kind() == {
        "spreadsheets.get": 1,
        "spreadsheets.batchUpdate": 1,
        "values.batchUpdate": 1,
    }


def test_google_tab_read_asks_unformatted_values(target: Target) -> None:
    target.sync([record(1)])
    target.emulator.reset_log()

    target.rows()

    properties, read = target.emulator.log.records
    assert properties.kind == "spreadsheets.get"
    assert parse_qs(properties.query) == {
        "fields": ["sheets(properties(sheetId,title,gridProperties))"],
        "prettyPrint": ["false"]}
    assert read.kind == "values.get"
    assert read.path.endswith("/values/Data")
    assert parse_qs(read.query) == {"valueRenderOption": ["UNFORMATTED_VALUE"],
                                    "dateTimeRenderOption": ["SERIAL_NUMBER"],
                                    "majorDimension": ["ROWS"],
                                    "prettyPrint": ["false"]}
    assert target.rows() == [["ID", "Name", "Day", "At", "Amount"],
                             [1, "n", 45293, 45293.5, 1]]


def test_google_resync_with_few_changes_costs_three(target: Target) -> None:
    records = [record(key) for key in range(1, 21)]
    target.sync(records)
    target.emulator.reset_log()
    records[3] = record(4, "renamed")
    records[9] = record(10, amount=99)
    records[12] = {**record(13), "day": dt.date(2025, 1, 1)}

    outcome = target.sync(records)

    assert (outcome.created, outcome.updated) == (0, 3)
    # Dates and numbers over dates and numbers need no look at the formats.
    assert target.emulator.counts_by_kind() == {"spreadsheets.get": 1,
                                                "values.get": 1,
                                                "values.batchUpdate": 1}
    rows = target.shown()
    assert rows[4][1] == "renamed"
    assert rows[10][4] == 99
    assert rows[13][2] == dt.date(2025, 1, 1)


def test_google_append_into_grid_reads_formats(target: Target) -> None:
    records = [record(key) for key in range(1, 21)]
    target.sync(records)
    target.emulator.reset_log()

    outcome = target.sync([*records, record(21)])

    assert outcome.created == 1
    # The appended row lands in an empty grid row, whose formats are read.
    assert target.emulator.counts_by_kind() == {"values.get": 1,
                                                "spreadsheets.get": 2,
                                                "values.batchUpdate": 1}
    formats = [r for r in target.emulator.log.records
               if r.kind == "spreadsheets.get"][1]
    assert parse_qs(formats.query)["ranges"] == ["Data!A22:A22", "Data!C22:C22",
                                                 "Data!D22:D22", "Data!E22:E22"]
    assert target.shown()[21] == [21, "n", dt.date(2024, 1, 22),
                                  dt.datetime(2024, 1, 22, 12), 1]


def test_google_identical_resync_only_reads(target: Target) -> None:
    records = [record(key) for key in range(1, 11)]
    target.sync(records)
    target.emulator.reset_log()

    outcome = target.sync(records)

    assert outcome.changes.is_empty()
    assert target.emulator.counts_by_kind() == {"spreadsheets.get": 1,
                                                "values.get": 1}


def test_google_second_tab_reads_values_only(target: Target) -> None:
    target.sync([record(1)], tab="First")
    target.sync([record(2)], tab="Second")
    target.emulator.reset_log()
    backend = target.backend()

    target.sync([record(1, "changed")], tab="First", backend=backend)
    target.sync([record(2, "changed")], tab="Second", backend=backend)

    assert target.emulator.counts_by_kind() == {
        "spreadsheets.get": 1,
        "values.get": 2,
        "values.batchUpdate": 2,
    }


def test_google_properties_read_once_per_backend(target: Target) -> None:
    backend = target.backend()
    target.sync([record(1)], tab="First", backend=backend)
    target.sync([record(2)], tab="Second", backend=backend)
    target.sync([record(3)], tab="Third", backend=backend)

    # The properties read at the start serve every tab, and each apply keeps
    # them up to date: the three new tabs are never read.
    assert target.emulator.counts_by_kind() == {
        "spreadsheets.get": 1,
        "spreadsheets.batchUpdate": 3,
        "values.batchUpdate": 3,
    }
    assert [s.title for s in target.emulator.spreadsheet(
        target.spreadsheet_id).sheets] == ["Sheet1", "First", "Second", "Third"]


def test_google_append_past_headroom_grows_once(target: Target) -> None:
    target.sync([record(key) for key in range(1, 6)])
    assert target.grid_size(TAB) == (6 + backend_module.HEADROOM_ROWS, 5)
    target.emulator.reset_log()

    target.sync([record(key) for key in range(1, 156)])

    # The grid grows: the properties of every tab for the cell count, and the
    # formats of the appended rows that land in the grid's headroom.
    assert target.emulator.counts_by_kind() == {
        "values.get": 1,
        "spreadsheets.get": 2,
        "spreadsheets.batchUpdate": 1,
        "values.batchUpdate": 1,
    }
    assert target.grid_size(TAB) == (156 + backend_module.HEADROOM_ROWS, 5)
    rows = target.shown()
    assert len(rows) == 156
    # New grid rows get the date format of the column, so dates show as dates.
    assert rows[155][2] == dt.date(2024, 6, 4)
    assert number_format(target.stored(TAB, 200, 2))["type"] == "DATE"


def test_google_formula_key_cell_matches_record(target: Target) -> None:
    target.sync([record(1000), record(1002)])
    spreadsheet = target.emulator.gspread_client().open_by_key(target.spreadsheet_id)
    spreadsheet.values_batch_update({"valueInputOption": "USER_ENTERED", "data": [
        {"range": "Data!A4:B4", "values": [["=1000+1", "typed"]]}]})
    target.emulator.reset_log()

    outcome = target.sync([record(1000), record(1001, "synced"), record(1002)])

    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 1, 2)
    assert outcome.errors == []
    rows = target.shown()
    assert [row[:2] for row in rows] == [["ID", "Name"], [1000, "n"], [1002, "n"],
                                         [1001, "synced"]]
    # The key cell is an owned cell whose value already matches: the formula stays.
    assert target.stored(TAB, 3, 0).formula == "=1000+1"
    assert target.stored(TAB, 3, 1).value == "synced"


# --- Values: RAW, serials and formats --------------------------------------------


@pytest.mark.parametrize("text", ["=SUM(A1)", "007", "TRUE", "2024-01-05", "12%",
                                  "+1", "'quoted"])
def test_google_values_sent_raw_and_stored_as_text(target: Target, text: str) -> None:
    target.sync([record(1, text)])

    bodies = target.values_bodies()
    assert len(bodies) == 1
    assert bodies[0]["valueInputOption"] == "RAW"
    # Each range names its top-left cell only; the values say how far it goes.
    assert bodies[0]["data"] == [
        {"range": "Data!A1", "values": [["ID", "Name", "Day", "At", "Amount"]]},
        {"range": "Data!A2", "values": [[1, text, 45293, 45293.5, 1]]},
    ]
    cell = target.stored(TAB, 1, 1)
    assert cell.formula is None
    assert cell.value == text
    assert target.rows()[1][1] == text


def test_google_dates_stored_as_serials_with_format(target: Target) -> None:
    target.sync([{"id": 1, "name": "a", "day": dt.date(2024, 1, 1),
                  "at": dt.datetime(2024, 1, 1, 18, 0), "amount": 2.5}])

    sent = target.values_bodies()[0]["data"][1]["values"]
    assert sent == [[1, "a", 45292, 45292.75, 2.5]]
    day, moment, amount = (target.stored(TAB, 1, c) for c in (2, 3, 4))
    assert day.value == 45292
    assert number_format(day) == {"type": "DATE", "pattern": "yyyy-mm-dd"}
    assert moment.value == 45292.75
    assert number_format(moment) == {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm"}
    assert number_format(amount) is None
    # The whole owned date column is formatted, headroom rows included, so that
    # rows appended later read back as dates without another structural request.
    assert number_format(target.stored(TAB, 100, 2))["type"] == "DATE"
    assert target.stored(TAB, 0, 2).user_format is None


def seed_person_tab(target: Target) -> None:
    """Create the tab as a person would: own headers, own number formats."""
    spreadsheet = target.emulator.gspread_client().open_by_key(target.spreadsheet_id)
    sheet = spreadsheet.add_worksheet(TAB, rows=50, cols=6)
    sheet.update([["ID", "Name", "Day", "At", "Amount"], [1, "a", 45292, 45292.5, 3]],
                 "A1", raw=True)
    formats = [(2, {"type": "DATE", "pattern": "dd mmm yyyy"}),
               (3, {"type": "DATE_TIME", "pattern": "dd/mm/yyyy hh:mm:ss"}),
               (4, {"type": "NUMBER", "pattern": "#,##0.00"})]
    spreadsheet.batch_update({"requests": [{"repeatCell": {
        "range": {"sheetId": sheet.id, "startRowIndex": 1, "endRowIndex": 50,
                  "startColumnIndex": column, "endColumnIndex": column + 1},
        "cell": {"userEnteredFormat": {"numberFormat": number_format_spec}},
        "fields": "userEnteredFormat.numberFormat"}} for column, number_format_spec
        in formats]})


def test_google_person_number_formats_survive(target: Target) -> None:
    seed_person_tab(target)
    target.emulator.reset_log()

    outcome = target.sync([record(1, amount=4), record(2, amount=5)])

    assert (outcome.created, outcome.updated) == (1, 1)
    # The appended row lands in an empty grid row, so its formats are read. They
    # fit, so no structural request is sent.
    assert target.emulator.counts_by_kind() == {"values.get": 1,
                                                "spreadsheets.get": 2,
                                                "values.batchUpdate": 1}
    for row in (1, 2):
        assert number_format(target.stored(TAB, row, 2))["pattern"] == "dd mmm yyyy"
        assert number_format(target.stored(TAB, row, 3))["pattern"] == (
            "dd/mm/yyyy hh:mm:ss")
        assert number_format(target.stored(TAB, row, 4))["pattern"] == "#,##0.00"
    assert target.shown()[1:] == [
        [1, "n", dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 12), 4],
        [2, "n", dt.date(2024, 1, 3), dt.datetime(2024, 1, 3, 12), 5],
    ]


def test_google_unformatted_date_cells_get_format(target: Target) -> None:
    spreadsheet = target.emulator.gspread_client().open_by_key(target.spreadsheet_id)
    spreadsheet.add_worksheet(TAB, rows=50, cols=6).update(
        [["ID", "Name", "Day", "At", "Amount"], [1, "a", None, None, 3]], "A1", raw=True)
    target.emulator.reset_log()

    target.sync([record(1), record(2)])

    assert target.emulator.counts_by_kind() == {"values.get": 1,
                                                "spreadsheets.get": 2,
                                                "spreadsheets.batchUpdate": 1,
                                                "values.batchUpdate": 1}
    structure = [body for url, body in target.bodies if url.endswith(":batchUpdate")
                 and not url.endswith("values:batchUpdate")][-1]
    ranges = [(r["repeatCell"]["range"]["startColumnIndex"],
               r["repeatCell"]["range"]["startRowIndex"],
               r["repeatCell"]["range"]["endRowIndex"]) for r in structure["requests"]]
    assert ranges == [(2, 1, 3), (3, 1, 3)]
    assert number_format(target.stored(TAB, 2, 2)) == {"type": "DATE",
                                                       "pattern": "yyyy-mm-dd"}
    assert number_format(target.stored(TAB, 3, 2)) is None
    assert target.shown()[2][2:4] == [dt.date(2024, 1, 3), dt.datetime(2024, 1, 3, 12)]


def test_google_one_cell_change_sends_one_small_range(target: Target) -> None:
    records = [record(key, f"name {key}") for key in range(1, 51)]
    target.sync(records)
    target.emulator.reset_log()
    target.bodies.clear()
    records[6] = record(7, "name 7", amount=700)

    target.sync(records)

    assert target.values_bodies() == [
        {"valueInputOption": "RAW", "data": [{"range": "Data!E8", "values": [[700]]}]}]
    (write,) = target.writes()
    assert write.kind == "values.batchUpdate"
    assert write.request_bytes < 200
    assert target.rows()[7][4] == 700


# --- Limits -----------------------------------------------------------------------


def test_google_long_text_becomes_error_row(target: Target) -> None:
    long_text = "x" * 60_000
    backend = target.backend()
    outcome = target.sync([record(1, "short"), record(2, long_text), record(3, "ok")],
                          backend=backend)
    errors = [{"error_id": f"e{number}", "record_key": problem.key,
               "field": problem.field, "code": problem.code,
               "message": problem.message, "raw_value": problem.raw,
               "time": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}
              for number, problem in enumerate(outcome.errors)]
    sync_errors_tab(backend, "deals", errors, ())

    assert [problem.code for problem in outcome.errors] == ["cell_too_long"]
    assert [row[:2] for row in target.rows()[1:]] == [[1, "short"], [2, None], [3, "ok"]]
    assert target.shown()[2][2:] == [dt.date(2024, 1, 3), dt.datetime(2024, 1, 3, 12), 1]
    (error_row,) = target.rows(ERRORS_TAB)[1:]
    assert error_row[:2] == ["e0", "deals"]
    assert error_row[4:7] == ["2", "name", "cell_too_long"]
    assert "60000 characters" in error_row[7]
    raw = error_row[8]
    assert len(raw) == 50_000
    assert raw.endswith(TRUNCATION_MARKER.format(length=60_000))


def big_spreadsheet(emulator: SheetsEmulator, rows: int) -> str:
    return emulator.create_spreadsheet("big", [{"properties": {
        "title": "Big", "gridProperties": {"rowCount": rows, "columnCount": 25}}}])


def test_google_cell_limit_writes_nothing(emulator: SheetsEmulator) -> None:
    target = Target(emulator, big_spreadsheet(emulator, 399_900))
    emulator.reset_log()
    backend = target.backend()
    grid = backend.read_tab(TAB)
    outcome = plan_tab_sync(grid, [record(key) for key in range(1000)], COLUMNS, TYPES,
                            mode="upsert", key=["id"])

    with pytest.raises(CellLimitExceeded) as raised:
        backend.apply(TAB, outcome.changes)

    assert isinstance(raised.value, LimitExceeded)
    message = str(raised.value)
    assert "'Data'" in message
    assert "10,002,505 cells" in message
    assert "limit of 10,000,000" in message
    assert "nothing was written" in message
    assert target.writes() == []
    assert [s.title for s in emulator.spreadsheet(target.spreadsheet_id).sheets] == [
        "Big"]


def test_google_cell_limit_trims_headroom(emulator: SheetsEmulator) -> None:
    target = Target(emulator, big_spreadsheet(emulator, 399_900))

    target.sync([record(key) for key in range(1, 401)])

    # 9,997,500 cells in Big leave 2,500: the 401 rows fit, 501 would not.
    assert target.grid_size(TAB) == (401, 5)
    assert len(target.rows()) == 401


def test_google_existing_tab_growth_checked(emulator: SheetsEmulator) -> None:
    target = Target(emulator, big_spreadsheet(emulator, 399_000))
    target.sync([record(key) for key in range(1, 11)])
    emulator.reset_log()

    with pytest.raises(CellLimitExceeded):
        target.sync([record(key) for key in range(1, 5100)])

    assert target.writes() == []
    assert len(target.rows()) == 11


def plan_rows(backend: GoogleSheetsBackend, tab: str, count: int) -> ChangeSet:
    grid = backend.read_tab(tab)
    return plan_tab_sync(grid, [record(key) for key in range(1, count + 1)], COLUMNS,
                         TYPES, mode="upsert", key=["id"]).changes


def test_google_check_limits_counts_every_tab(emulator: SheetsEmulator) -> None:
    # Big takes 9,975,000 cells, so 25,000 are left: 15,005 for each new tab fit
    # alone, but not together.
    target = Target(emulator, big_spreadsheet(emulator, 399_000))
    emulator.reset_log()
    backend = target.backend()
    planned = {tab: plan_rows(backend, tab, 3000) for tab in ("Data", "Other")}

    backend.check_limits({"Data": planned["Data"]})
    backend.check_limits({"Other": planned["Other"]})
    with pytest.raises(CellLimitExceeded) as raised:
        backend.check_limits(planned)

    assert str(raised.value) == (
        "writing tabs 'Data', 'Other' would take the spreadsheet to 10,005,010 cells,"
        " over Google Sheets' limit of 10,000,000; nothing was written. Delete unused"
        " tabs, rows or columns, or write to another spreadsheet")
    assert target.writes() == []
    # The properties of every tab, and no read of the missing tabs.
    assert emulator.counts_by_kind() == {"spreadsheets.get": 1}


def test_google_check_limits_counts_report_tabs(emulator: SheetsEmulator) -> None:
    target = Target(emulator, big_spreadsheet(emulator, 399_000))
    backend = target.backend()
    changes = plan_rows(backend, TAB, 4900)

    # 24,505 cells for Data, 11 for a new Errors tab and 26 for a new Runs tab.
    check_run_limits(backend, {TAB: changes}, error_count=0)
    with pytest.raises(CellLimitExceeded) as raised:
        check_run_limits(backend, {TAB: changes}, error_count=50)

    assert "tabs 'Data', 'Errors', 'Runs'" in str(raised.value)
    assert "10,000,092 cells" in str(raised.value)
    assert target.writes() == []


def test_google_check_limits_existing_tabs(emulator: SheetsEmulator) -> None:
    target = Target(emulator, big_spreadsheet(emulator, 399_000))
    target.sync([record(key) for key in range(1, 11)])
    for tab in (ERRORS_TAB, RUNS_TAB):
        emulator.gspread_client().open_by_key(target.spreadsheet_id).add_worksheet(
            tab, rows=100, cols=13)
    backend = target.backend()
    changes = plan_rows(backend, TAB, 2000)

    # Data grows from 111 x 5 to 2,001 x 5 rows. The report tabs are not read,
    # so their new rows are counted below their 100 grid rows.
    check_run_limits(backend, {TAB: changes}, error_count=10)
    with pytest.raises(CellLimitExceeded):
        check_run_limits(backend, {TAB: changes}, error_count=1000)

    assert [row[0] for row in target.rows()[1:]] == list(range(1, 11))


# --- Checkboxes ----------------------------------------------------------------------


BOOLEAN_RULE = {"condition": {"type": "BOOLEAN"}, "strict": True}


def error_rows(*ids: str) -> list[dict[str, Any]]:
    return [{"error_id": error_id, "first_run": "run-1", "record_key": "7",
             "field": "name", "code": "invalid", "message": f"bad {error_id}",
             "raw_value": "x", "time": dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)}
            for error_id in ids]


def validations(target: Target) -> list[dict[str, Any]]:
    return [request["setDataValidation"] for url, body in target.bodies
            if url.endswith(":batchUpdate") and not url.endswith("values:batchUpdate")
            for request in body["requests"] if "setDataValidation" in request]


def test_google_retry_column_gets_checkboxes(target: Target) -> None:
    sync_errors_tab(target.backend(), "deals", error_rows("e1"), ())

    (validation,) = validations(target)
    assert validation == {"range": {"sheetId": validation["range"]["sheetId"],
                                    "startRowIndex": 1, "endRowIndex": 102,
                                    "startColumnIndex": 9, "endColumnIndex": 10},
                          "rule": BOOLEAN_RULE}
    assert target.stored(ERRORS_TAB, 0, 9).data_validation is None
    assert target.stored(ERRORS_TAB, 1, 9).data_validation == BOOLEAN_RULE
    assert target.stored(ERRORS_TAB, 101, 9).data_validation == BOOLEAN_RULE
    assert target.stored(ERRORS_TAB, 1, 9).value is False
    assert target.rows(ERRORS_TAB)[1][9] is False


def test_google_retry_checkboxes_sent_once(target: Target) -> None:
    sync_errors_tab(target.backend(), "deals", error_rows("e1"), ())
    target.bodies.clear()

    sync_errors_tab(target.backend(), "deals", error_rows("e1", "e2"), ())

    assert validations(target) == []
    assert target.stored(ERRORS_TAB, 2, 9).data_validation == BOOLEAN_RULE
    assert [row[9] for row in target.rows(ERRORS_TAB)[1:]] == [False, False]


def test_google_retry_checkboxes_follow_growth(target: Target) -> None:
    sync_errors_tab(target.backend(), "deals", error_rows("e1"), ())
    target.bodies.clear()
    many = [f"e{number}" for number in range(1, 151)]

    sync_errors_tab(target.backend(), "deals", error_rows(*many), ())

    (validation,) = validations(target)
    assert validation["range"]["startRowIndex"] == 102
    assert validation["range"]["endRowIndex"] == 151 + backend_module.HEADROOM_ROWS
    assert target.stored(ERRORS_TAB, 150, 9).data_validation == BOOLEAN_RULE
    assert len(target.rows(ERRORS_TAB)) == 151


# --- Body size ----------------------------------------------------------------------


def test_google_body_over_2mb_is_split(target: Target) -> None:
    text = "y" * 800
    records = [record(key, f"{key}:{text}") for key in range(1, 3001)]

    target.sync(records)

    bodies = target.values_bodies()
    writes = [w for w in target.writes() if w.kind == "values.batchUpdate"]
    assert len(bodies) == 2
    assert len(writes) == len(bodies)
    assert all(w.request_bytes <= batches_module.MAX_BODY_BYTES for w in writes)
    assert sum(w.request_bytes for w in writes) > batches_module.MAX_BODY_BYTES
    rows = target.rows()
    assert len(rows) == 3001
    assert [row[0] for row in rows[1:]] == list(range(1, 3001))
    assert rows[3000][1] == f"3000:{text}"


def test_google_many_ranges_split_in_chunks(target: Target,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record(key, "old") for key in range(1, 201)]
    target.sync(records)
    monkeypatch.setattr(batches_module, "MAX_BODY_BYTES", 3_000)
    target.emulator.reset_log()
    target.bodies.clear()
    changed = [record(key, "new" if key % 2 else "old") for key in range(1, 201)]

    outcome = target.sync(changed)

    bodies = target.values_bodies()
    writes = [w for w in target.writes() if w.kind == "values.batchUpdate"]
    assert outcome.updated == 100
    assert len(bodies) > 1
    assert len(writes) == len(bodies)
    assert sum(len(body["data"]) for body in bodies) == 100
    assert all(w.request_bytes <= 3_000 for w in writes)
    assert [row[1] for row in target.rows()[1:]] == [r["name"] for r in changed]


def test_google_many_deletions_split_in_chunks(target: Target,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    first = target.sync([record(key) for key in range(1, 121)], mode="mirror")
    monkeypatch.setattr(batches_module, "MAX_BODY_BYTES", 2_000)
    target.emulator.reset_log()
    kept = [record(key) for key in range(1, 121) if key % 3 == 0]

    outcome = target.sync(kept, mode="mirror", owned=sorted(first.written_keys))

    structural = target.emulator.counts_by_kind()["spreadsheets.batchUpdate"]
    assert outcome.deleted == 80
    assert structural > 1
    assert all(w.request_bytes <= 2_000 for w in target.writes())
    assert [row[0] for row in target.rows()[1:]] == list(range(3, 121, 3))


# --- Spreadsheet ids and credentials --------------------------------------------------


SHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


@pytest.mark.parametrize("value, expected", [
    (SHEET_ID, SHEET_ID),
    (f"  {SHEET_ID} ", SHEET_ID),
    (f"https://docs.google.com/spreadsheets/d/{SHEET_ID}", SHEET_ID),
    (f"https://docs.google.com/spreadsheets/d/{SHEET_ID}/edit#gid=0", SHEET_ID),
    (f"https://docs.google.com/spreadsheets/d/{SHEET_ID}/edit?usp=sharing", SHEET_ID),
    ("out/agency-report.xlsx", None),
    ("reports/a_very_long_report_name.xlsx", None),
    ("a_very_long_report_name_of_ours.XLSX", None),
    ("short", None),
    (f"https://example.com/spreadsheets/d/{SHEET_ID}", None),
    ("", None),
])
def test_google_spreadsheet_id_forms(value: str, expected: str | None) -> None:
    assert spreadsheet_id(value) == expected


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail any HTTP request, and clear the emulator setting."""
    sent: list[str] = []

    def reject_request(adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        sent.append(request.url or "")
        raise AssertionError(f"unexpected request to {request.url}")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", reject_request)
    monkeypatch.delenv("SYNCPLAN_SHEETS_EMULATOR", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return sent


def sheets_system(**settings: Any) -> SystemPlan:
    return SystemPlan(id="report", kind="sheets",
                      settings={"spreadsheet": SHEET_ID, **settings})


def test_google_missing_credentials_file(tmp_path: Path, no_network: list[str]) -> None:
    system = sheets_system(credentials="${file:missing.json}")

    with pytest.raises(CredentialsError) as raised:
        create_backend(system, SHEET_ID, tmp_path)

    message = str(raised.value)
    assert "'report'" in message
    assert "'credentials' setting '${file:missing.json}'" in message
    assert "create it or fix the path" in message
    assert no_network == []


@pytest.mark.parametrize("content", [
    '{"type": "authorized_user", "client_id": "c", "refresh_token": "SECRET-1x9"}',
    '{"type": "service_account", "client_email": "a@b", "private_key": "SECRET-1x9",'
    ' "token_uri": "https://oauth2.googleapis.com/token"}',
    "SECRET-1x9 is not JSON",
])
def test_google_unusable_credentials_file(tmp_path: Path, no_network: list[str],
                                          caplog: pytest.LogCaptureFixture,
                                          content: str) -> None:
    (tmp_path / "sa.json").write_text(content, encoding="utf-8")
    system = sheets_system(credentials="${file:sa.json}")

    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsError) as raised:
        create_backend(system, SHEET_ID, tmp_path)

    message = str(raised.value)
    assert "'${file:sa.json}'" in message
    assert "service account JSON key" in message
    assert "SECRET-1x9" not in message
    assert "SECRET-1x9" not in caplog.text
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert no_network == []


def test_google_unset_credentials_variable(tmp_path: Path, no_network: list[str]) -> None:
    system = sheets_system(credentials="${env:GOOGLE_APPLICATION_CREDENTIALS}")

    with pytest.raises(CredentialsError) as raised:
        load_credentials(system, tmp_path)

    assert "'GOOGLE_APPLICATION_CREDENTIALS' is not set" in str(raised.value)
    assert no_network == []


def test_google_no_default_credentials(tmp_path: Path, no_network: list[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_default(**kwargs: Any) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr("google.auth.default", no_default)

    with pytest.raises(CredentialsError) as raised:
        create_backend(sheets_system(), SHEET_ID, tmp_path)

    message = str(raised.value)
    assert "names no 'credentials'" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "${file:secrets/service-account.json}" in message
    assert no_network == []


def test_google_service_account_file_loads(tmp_path: Path, no_network: list[str]) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "p", "private_key_id": "k",
            "private_key": pem, "client_email": "sync@p.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
    (tmp_path / "sa.json").write_text(json.dumps(info), encoding="utf-8")

    backend = create_backend(sheets_system(credentials="${file:sa.json}"), SHEET_ID,
                             tmp_path)

    assert isinstance(backend, GoogleSheetsBackend)
    assert backend.spreadsheet_id == SHEET_ID
    assert backend.location() == f"https://docs.google.com/spreadsheets/d/{SHEET_ID}"
    credentials = backend.http.session.credentials
    assert credentials.service_account_email == "sync@p.iam.gserviceaccount.com"
    assert tuple(credentials.scopes) == ("https://www.googleapis.com/auth/spreadsheets",)
    assert no_network == []


def test_google_xlsx_path_is_not_a_google_backend(tmp_path: Path,
                                                  no_network: list[str]) -> None:
    assert create_backend(sheets_system(), "out/agency-report.xlsx", tmp_path) is None


@pytest.mark.parametrize("address", ["10.0.0.5:8085", "example.com:80", "127.0.0.1:x"])
def test_google_emulator_address_must_be_loopback(address: str,
                                                  no_network: list[str]) -> None:
    with pytest.raises(ValueError, match="loopback"):
        build_client(sheets_system(), SHEET_ID, emulator=address)


def test_google_apply_reads_an_unread_tab_first(target: Target) -> None:
    target.sync([record(1), record(2)])
    target.sync([record(9)], tab="Other")
    grid = target.backend().read_tab(TAB)
    outcome = plan_tab_sync(grid, [record(1), record(2), record(3)], COLUMNS, TYPES,
                            mode="upsert", key=["id"])
    backend = target.backend()
    backend.read_tab("Other")

    backend.apply(TAB, outcome.changes)

    assert [row[0] for row in target.rows()] == ["ID", 1, 2, 3]


def api_error(status: int, message: str) -> APIError:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps({"error": {
        "code": status, "message": message, "status": "PERMISSION_DENIED"}}).encode()
    return APIError(response)


class RefusingHTTP:
    """An HTTP client whose every spreadsheet read fails with one API error."""

    def __init__(self, error: APIError) -> None:
        self.error = error

    def fetch_sheet_metadata(self, *args: Any) -> Any:
        raise self.error


@pytest.mark.parametrize("message, hint, expected", [
    ("The caller does not have permission", "share the spreadsheet with a@b as an"
     " editor", "share the spreadsheet with a@b as an editor"),
    ("Request had insufficient authentication scopes.", "share it",
     "the credentials lack the spreadsheets scope"),
    ("Google Sheets API has not been used in project 12 before or it is disabled.",
     None, "enable the Google Sheets API in the credentials' Google Cloud project"),
    ("The caller does not have permission", None,
     "give the account of the credentials edit access"),
])
def test_google_403_hint_names_the_fix(message: str, hint: str | None,
                                       expected: str) -> None:
    client = type("Client", (), {"http_client": RefusingHTTP(api_error(403, message))})
    backend = GoogleSheetsBackend(client(), SHEET_ID, forbidden_hint=hint)

    with pytest.raises(backend_module.SheetsBackendError) as raised:
        backend.read_tab(TAB)

    text = str(raised.value)
    assert text.startswith(f"spreadsheet {SHEET_ID!r}: Sheets API error 403"
                           f" PERMISSION_DENIED: {message}; ")
    assert expected in text


def test_google_sharing_hint_by_credentials() -> None:
    service = type("Service", (), {"service_account_email": "sync@p.iam.example"})()
    user = type("User", (), {})()
    compute = type("Compute", (), {"service_account_email": "default"})()

    assert sharing_hint(service) == (
        "share the spreadsheet with sync@p.iam.example as an editor")
    assert "application default credentials" in sharing_hint(user)
    assert "spreadsheets scope" in sharing_hint(user)
    assert sharing_hint(compute) == sharing_hint(user)


def test_google_unknown_spreadsheet_names_the_fix(emulator: SheetsEmulator) -> None:
    target = Target(emulator, "1" + "x" * 43)

    with pytest.raises(backend_module.SheetsBackendError) as raised:
        target.backend().read_tab(TAB)

    message = str(raised.value)
    assert f"spreadsheet {'1' + 'x' * 43!r}" in message
    assert "404" in message
    assert "check the spreadsheet id" in message


def test_google_new_columns_grow_the_grid(target: Target) -> None:
    spreadsheet = target.emulator.gspread_client().open_by_key(target.spreadsheet_id)
    headers = ["ID"] + [f"Mine {number}" for number in range(1, 26)]
    spreadsheet.add_worksheet(TAB, rows=20, cols=26).update(
        [headers, [1] + ["x"] * 25], "A1", raw=True)
    target.emulator.reset_log()

    target.sync([record(1, "Ada")])

    assert target.emulator.counts_by_kind() == {"values.get": 1,
                                                "spreadsheets.get": 1,
                                                "spreadsheets.batchUpdate": 1,
                                                "values.batchUpdate": 1}
    structure = [body for url, body in target.bodies if url.endswith(":batchUpdate")
                 and not url.endswith("values:batchUpdate")][-1]
    formatted = [(r["repeatCell"]["range"]["startColumnIndex"],
                  r["repeatCell"]["range"]["startRowIndex"],
                  r["repeatCell"]["range"]["endRowIndex"])
                 for r in structure["requests"] if "repeatCell" in r]
    assert formatted == [(27, 1, 20), (28, 1, 20)]
    assert target.grid_size(TAB) == (20, 30)
    rows = target.shown()
    assert rows[0] == [*headers, "Name", "Day", "At", "Amount"]
    assert rows[1] == [1, *["x"] * 25, "Ada", dt.date(2024, 1, 2),
                       dt.datetime(2024, 1, 2, 12), 1]


# --- The emulator setting in a run -----------------------------------------------

AGENCY = Path(__file__).resolve().parents[1] / "examples" / "agency"


def run_agency_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       emulator_address: str) -> Any:
    """Run the agency example's clients flow through the CLI, into a Google sheet."""
    import shutil

    from click.testing import CliRunner

    from sheets_addon.cli import cli
    from sheets_addon.google import session as session_module

    project = tmp_path / "agency"
    shutil.copytree(AGENCY, project, ignore=shutil.ignore_patterns("out", ".syncplan"))
    monkeypatch.setenv("REPORT_SHEET", SHEET_ID)
    monkeypatch.setenv("SYNCPLAN_SHEETS_EMULATOR", emulator_address)
    fast = dataclasses.replace(session_module.retry_policy(sheets_system()),
                               base_seconds=0.001, max_seconds=0.01)
    monkeypatch.setattr(session_module, "retry_policy", lambda system: fast)
    return CliRunner().invoke(cli, ["run", str(project), "--flow", "clients"])


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_google_emulator_not_loopback_is_user_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = run_agency_clients(tmp_path, monkeypatch, "example.com:80")

    assert done.exit_code == 1, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert "error: flow 'clients' failed: SYNCPLAN_SHEETS_EMULATOR is" \
        " 'example.com:80', which is not a loopback address" in done.stderr
    assert "such as 127.0.0.1:8085, or unset it" in done.stderr


def test_google_emulator_unreachable_names_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    address = f"127.0.0.1:{closed_port()}"

    with caplog.at_level(logging.WARNING):
        done = run_agency_clients(tmp_path, monkeypatch, address)

    assert done.exit_code == 1, done.output
    assert "got no response in 5 attempt(s), the last with ConnectionError" in (
        done.stderr)
    assert f"requests go to the Sheets emulator at {address!r}" in done.stderr
    assert "sheets.googleapis.com is reachable" not in done.stderr
    first_attempts = [r for r in caplog.records
                      if "attempt 1 of 5 failed" in r.getMessage()]
    # One series: the Runs tab of the spreadsheet that failed is not tried again.
    assert len(first_attempts) == 1
