"""Tests of the local Sheets API emulator, driven through real gspread."""

from __future__ import annotations

import json
import time

import gspread
import pytest
import requests
from requests.adapters import HTTPAdapter

from sheets_addon.emulator import BlockedRequestError, SheetsEmulator, running_emulator
from sheets_addon.emulator import a1

emulator = pytest.fixture(running_emulator)


@pytest.fixture
def client(emulator: SheetsEmulator):
    gspread_client = emulator.gspread_client()
    yield gspread_client
    gspread_client.http_client.session.close()


@pytest.fixture
def session(emulator: SheetsEmulator):
    raw_session = emulator.session()
    yield raw_session
    raw_session.close()


@pytest.fixture
def worksheet(client: gspread.Client):
    return client.create("Emulator test").sheet1


# --- spreadsheets and worksheets -----------------------------------------


def test_create_spreadsheet_through_drive(client: gspread.Client, emulator: SheetsEmulator) -> None:
    spreadsheet = client.create("Budget 2024")

    assert spreadsheet.title == "Budget 2024"
    assert spreadsheet.sheet1.title == "Sheet1"
    assert spreadsheet.sheet1.row_count == 1000
    assert spreadsheet.sheet1.col_count == 26
    assert emulator.counts_by_kind()["drive.files.create"] == 1
    assert spreadsheet.id in emulator.store.spreadsheets


def test_create_spreadsheet_through_sheets_api(session: requests.Session) -> None:
    response = session.post(
        "https://sheets.googleapis.com/v4/spreadsheets",
        json={"properties": {"title": "Direct"}, "sheets": [{"properties": {"title": "Data"}}]},
    )
    body = response.json()

    assert response.status_code == 200
    assert body["properties"]["title"] == "Direct"
    assert body["properties"]["locale"] == "en_US"
    assert body["sheets"][0]["properties"]["title"] == "Data"
    assert body["spreadsheetUrl"].endswith(f"/d/{body['spreadsheetId']}/edit")


def test_add_worksheet_quotes_title_in_ranges(client: gspread.Client) -> None:
    spreadsheet = client.create("Tabs")
    added = spreadsheet.add_worksheet("My Sheet", rows=10, cols=5)
    result = added.update([["a", "b"], ["c", "d"]], "A1")

    assert [ws.title for ws in spreadsheet.worksheets()] == ["Sheet1", "My Sheet"]
    assert added.row_count == 10
    assert added.col_count == 5
    assert result["updatedRange"] == "'My Sheet'!A1:B2"
    assert added.get_all_values() == [["a", "b"], ["c", "d"]]


def test_delete_spreadsheet_then_open_fails(client: gspread.Client) -> None:
    spreadsheet = client.create("Short lived")
    client.del_spreadsheet(spreadsheet.id)

    with pytest.raises(gspread.SpreadsheetNotFound):
        client.open_by_key(spreadsheet.id)


def test_open_by_title_lists_drive_files(client: gspread.Client) -> None:
    created = client.create("Findable")
    client.create("Other")

    assert client.open("Findable").id == created.id
    with pytest.raises(gspread.SpreadsheetNotFound):
        client.open("Missing")


# --- values ----------------------------------------------------------------


def test_update_and_get_with_render_options(worksheet: gspread.Worksheet) -> None:
    worksheet.update(
        [["=4/2", "2020-01-01", "string", 53], ["=3/2", 0.12, "1999-01-02", ""]],
        "A1:D2",
        value_input_option="USER_ENTERED",
    )

    assert worksheet.get("A1:D2") == [["2", "2020-01-01", "string", "53"], ["1.5", "0.12", "1999-01-02"]]
    unformatted = worksheet.get("A1:D2", value_render_option="UNFORMATTED_VALUE")
    assert unformatted == [[2, 43831, "string", 53], [1.5, 0.12, 36162]]
    formulas = worksheet.get("A1:D2", value_render_option="FORMULA")
    assert formulas == [["=4/2", 43831, "string", 53], ["=3/2", 0.12, 36162]]
    as_strings = worksheet.get(
        "B1", value_render_option="UNFORMATTED_VALUE", date_time_render_option="FORMATTED_STRING"
    )
    assert as_strings == [["2020-01-01"]]


def test_raw_input_keeps_text(worksheet: gspread.Worksheet) -> None:
    worksheet.update([["=SUM(1)", "007", "TRUE", "2020-01-01"]], "A1", value_input_option="RAW")
    worksheet.update([["=SUM(1)", "007", "TRUE", "1,234.5"]], "A2", value_input_option="USER_ENTERED")

    raw_row, entered_row = worksheet.get("A1:D2", value_render_option="UNFORMATTED_VALUE")
    assert raw_row == ["=SUM(1)", "007", "TRUE", "2020-01-01"]
    assert entered_row == [1, 7, True, 1234.5]
    assert worksheet.get("A2:D2")[0] == ["1", "7", "TRUE", "1,234.50"]
    assert worksheet.get("A1", value_render_option="FORMULA") == [["=SUM(1)"]]


def test_numbers_and_booleans_keep_types(worksheet: gspread.Worksheet) -> None:
    worksheet.update([[1, 2.5, True, None, "x"]], "A1", value_input_option="RAW")

    assert worksheet.get("A1:E1", value_render_option="UNFORMATTED_VALUE") == [[1, 2.5, True, "", "x"]]
    assert worksheet.get("A1:E1") == [["1", "2.5", "TRUE", "", "x"]]


def test_get_trims_trailing_empty_cells_and_rows(worksheet: gspread.Worksheet, session: requests.Session) -> None:
    worksheet.update([["A1", "B1", "", "D1"], ["", "b2", "", ""], ["", "", "", ""], ["A4", "B4", "", ""]], "A1")
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{worksheet.spreadsheet_id}/values/Sheet1!A1:D6"
    body = session.get(url).json()

    assert body == {
        "range": "Sheet1!A1:D6",
        "majorDimension": "ROWS",
        "values": [["A1", "B1", "", "D1"], ["", "b2"], [], ["A4", "B4"]],
    }
    empty = session.get(url.replace("A1:D6", "F1:F3")).json()
    assert empty == {"range": "Sheet1!F1:F3", "majorDimension": "ROWS"}


def test_get_open_ranges_are_clamped_to_grid(worksheet: gspread.Worksheet, session: requests.Session) -> None:
    base = f"https://sheets.googleapis.com/v4/spreadsheets/{worksheet.spreadsheet_id}/values/"
    cases = {"Sheet1": "Sheet1!A1:Z1000", "A:B": "Sheet1!A1:B1000", "2:2": "Sheet1!A2:Z2",
             "A2:C": "Sheet1!A2:C1000", "D4:A1": "Sheet1!A1:D4", "'Sheet1'!B3": "Sheet1!B3"}
    for requested, echoed in cases.items():
        assert session.get(base + requested).json()["range"] == echoed, requested


def test_get_columns_major_dimension(worksheet: gspread.Worksheet) -> None:
    worksheet.update([["a", "b"], ["c", "d"], ["e", ""]], "A1")

    assert worksheet.get("A1:B3", major_dimension="COLUMNS") == [["a", "c", "e"], ["b", "d"]]


def test_update_counts_only_non_null_values(worksheet: gspread.Worksheet) -> None:
    result = worksheet.update([["top", None, None], [None, None, "bottom"]], "A1:C2")

    assert result["updatedRange"] == "Sheet1!A1:C2"
    assert result["updatedRows"] == 2
    assert result["updatedColumns"] == 2
    assert result["updatedCells"] == 2


def test_update_rejects_data_larger_than_range(worksheet: gspread.Worksheet) -> None:
    with pytest.raises(gspread.exceptions.APIError) as raised:
        worksheet.update([["a"], ["b"], ["c"]], "A1:A2")

    assert raised.value.response.status_code == 400
    assert "but tried writing to row [3]" in raised.value.args[0]["message"]


def test_values_batch_update_totals(worksheet: gspread.Worksheet) -> None:
    result = worksheet.batch_update(
        [{"range": "A1:B1", "values": [["x", "y"]]}, {"range": "C3", "values": [["z"]]}]
    )

    assert result["totalUpdatedCells"] == 3
    assert result["totalUpdatedRows"] == 2
    assert [r["updatedRange"] for r in result["responses"]] == ["Sheet1!A1:B1", "Sheet1!C3"]
    assert worksheet.get_all_values() == [["x", "y", ""], ["", "", ""], ["", "", "z"]]


def test_batch_get_returns_value_ranges(worksheet: gspread.Worksheet) -> None:
    worksheet.update([["A1", "B1", "", "D1"], ["", "", "", ""], ["", "", "", ""], ["A4", "B4", "", "D4"]], "A1")
    ranges = worksheet.batch_get(["A1:B1", "B4:D4"])

    assert [r.range for r in ranges] == ["Sheet1!A1:B1", "Sheet1!B4:D4"]
    assert ranges[1] == [["B4", "", "D4"]]


def test_batch_get_by_data_filter_reads_ranges(worksheet: gspread.Worksheet, session: requests.Session) -> None:
    worksheet.update([["a", 1, "=B1*2"], ["", "", ""], ["c", 45292, True]], "A1", raw=False)
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{worksheet.spreadsheet_id}/values:batchGetByDataFilter"
    filters = [{"a1Range": "Sheet1!B1"}, {"a1Range": "A3:C3"},
               {"gridRange": {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 1,
                              "startColumnIndex": 2, "endColumnIndex": 3}}]

    response = session.post(url, json={"dataFilters": filters, "valueRenderOption": "UNFORMATTED_VALUE"})

    assert response.status_code == 200
    assert response.json() == {
        "spreadsheetId": worksheet.spreadsheet_id,
        "valueRanges": [
            {"valueRange": {"range": "Sheet1!B1", "majorDimension": "ROWS", "values": [[1]]},
             "dataFilters": [filters[0]]},
            {"valueRange": {"range": "Sheet1!A3:C3", "majorDimension": "ROWS", "values": [["c", 45292, True]]},
             "dataFilters": [filters[1]]},
            {"valueRange": {"range": "Sheet1!C1", "majorDimension": "ROWS", "values": [[2]]},
             "dataFilters": [filters[2]]},
        ],
    }


def test_batch_get_by_data_filter_rejects_unknown_filter(worksheet: gspread.Worksheet, session: requests.Session) -> None:
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{worksheet.spreadsheet_id}/values:batchGetByDataFilter"

    unknown = session.post(url, json={"dataFilters": [{"a1Range": "Nowhere!A1"}]})
    metadata = session.post(url, json={"dataFilters": [{"developerMetadataLookup": {"metadataId": 1}}]})
    empty = session.post(url, json={"dataFilters": [{}]})

    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "Unable to parse range: Nowhere!A1"
    assert metadata.status_code == 501
    assert empty.status_code == 400
    assert "set a1Range or gridRange" in empty.json()["error"]["message"]


def test_append_finds_table_and_reports_range(worksheet: gspread.Worksheet) -> None:
    first = worksheet.append_row(["a", "b", "c"])
    second = worksheet.append_rows([["d", "e", "f"], ["g", "h", "i"]])

    assert "tableRange" not in first
    assert first["updates"]["updatedRange"] == "Sheet1!A1:C1"
    assert second["tableRange"] == "Sheet1!A1:C1"
    assert second["updates"]["updatedRange"] == "Sheet1!A2:C3"
    assert worksheet.get_all_values()[2] == ["g", "h", "i"]


def test_append_insert_rows_grows_grid(client: gspread.Client) -> None:
    worksheet = client.create("Small").add_worksheet("Tiny", rows=2, cols=3)
    worksheet.update([["h1", "h2"], ["v1", "v2"]], "A1")
    result = worksheet.append_rows(
        [["v3", "v4"]], insert_data_option="INSERT_ROWS", include_values_in_response=True
    )

    assert result["updates"]["updatedRange"] == "Tiny!A3:B3"
    assert result["updates"]["updatedData"]["values"] == [["v3", "v4"]]
    worksheet.spreadsheet.fetch_sheet_metadata()
    assert worksheet.spreadsheet.worksheet("Tiny").row_count == 3


def test_clear_and_batch_clear_keep_formats(worksheet: gspread.Worksheet, emulator: SheetsEmulator) -> None:
    worksheet.update([["1", "2"], ["3", "4"]], "A1")
    worksheet.format("A1", {"numberFormat": {"type": "NUMBER", "pattern": "0.00"}})
    worksheet.batch_clear(["A1", "B2"])

    assert worksheet.get_all_values() == [["", "2"], ["3", ""]]
    cell = emulator.spreadsheet(worksheet.spreadsheet_id).sheets[0].cells[(0, 0)]
    assert cell.number_format() == {"type": "NUMBER", "pattern": "0.00"}
    worksheet.clear()
    assert worksheet.get_all_values() == [[]]


def test_repeat_cell_number_format_renders_dates(worksheet: gspread.Worksheet) -> None:
    worksheet.format("A1:A2", {"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}})
    worksheet.update([[45352], [45352.5]], "A1", value_input_option="RAW")

    assert worksheet.get("A1:A2") == [["2024-03-01"], ["2024-03-01"]]
    assert worksheet.get("A1:A2", value_render_option="UNFORMATTED_VALUE") == [[45352], [45352.5]]


def test_formula_placeholder_for_unknown_function(worksheet: gspread.Worksheet) -> None:
    worksheet.update([["=IMPORTXML(\"http://x\", \"//a\")", "=A2*2", 21]], "A1", value_input_option="USER_ENTERED")
    worksheet.update([[4]], "A2")

    assert worksheet.get("A1:B1") == [["#NAME?", "8"]]
    assert worksheet.get("A1", value_render_option="FORMULA") == [['=IMPORTXML("http://x", "//a")']]


# --- structure -------------------------------------------------------------


def test_insert_and_delete_rows_shift_cells(worksheet: gspread.Worksheet) -> None:
    worksheet.update([["r1"], ["r2"], ["r3"]], "A1")
    worksheet.insert_row(["new"], index=2)

    assert worksheet.col_values(1) == ["r1", "new", "r2", "r3"]
    worksheet.delete_rows(1)
    assert worksheet.col_values(1) == ["new", "r2", "r3"]


def test_add_rows_grows_grid_for_writes(worksheet: gspread.Worksheet) -> None:
    worksheet.add_rows(5)
    result = worksheet.update([["after"]], "A1005")

    assert result["updatedRange"] == "Sheet1!A1005"
    assert worksheet.row_count == 1005


def test_append_dimension_grows_grid(client: gspread.Client) -> None:
    spreadsheet = client.create("Growing")
    reply = spreadsheet.batch_update({"requests": [
        {"appendDimension": {"sheetId": 0, "dimension": "COLUMNS", "length": 4}},
        {"appendDimension": {"sheetId": 0, "dimension": "ROWS", "length": 1}},
    ]})
    worksheet = spreadsheet.sheet1
    spreadsheet.fetch_sheet_metadata()

    assert reply["replies"] == [{}, {}]
    assert spreadsheet.sheet1.col_count == 30
    assert spreadsheet.sheet1.row_count == 1001
    assert worksheet.update([["edge"]], "AD1001")["updatedRange"] == "Sheet1!AD1001"


def test_batch_update_is_atomic(client: gspread.Client) -> None:
    spreadsheet = client.create("Atomic")
    body = {"requests": [
        {"addSheet": {"properties": {"title": "Kept?"}}},
        {"deleteSheet": {"sheetId": 424242}},
    ]}
    with pytest.raises(gspread.exceptions.APIError) as raised:
        spreadsheet.batch_update(body)

    assert raised.value.args[0]["message"] == "Invalid requests[1].deleteSheet: No grid with id: 424242"
    assert [ws.title for ws in spreadsheet.worksheets()] == ["Sheet1"]


def test_unimplemented_request_kind_is_named(client: gspread.Client) -> None:
    spreadsheet = client.create("Unsupported")
    with pytest.raises(gspread.exceptions.APIError) as raised:
        spreadsheet.batch_update({"requests": [{"addChart": {"chart": {}}}]})

    assert raised.value.response.status_code == 501
    assert "'addChart'" in raised.value.args[0]["message"]


def test_set_data_validation_shown_in_grid_data(client: gspread.Client, session: requests.Session) -> None:
    spreadsheet = client.create("Checkboxes")
    rule = {"condition": {"type": "BOOLEAN"}, "strict": True}
    spreadsheet.batch_update({"requests": [{"setDataValidation": {
        "range": {"sheetId": 0, "startRowIndex": 1, "endRowIndex": 3,
                  "startColumnIndex": 1, "endColumnIndex": 2},
        "rule": rule}}]})
    spreadsheet.sheet1.update([[True], [False]], "B2", raw=True)
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{spreadsheet.id}"
    fields = "sheets.data.rowData.values(dataValidation,effectiveValue)"

    grid = session.get(url, params={"ranges": "Sheet1!B1:B4", "fields": fields}).json()

    assert grid["sheets"][0]["data"][0]["rowData"] == [
        {},
        {"values": [{"effectiveValue": {"boolValue": True}, "dataValidation": rule}]},
        {"values": [{"effectiveValue": {"boolValue": False}, "dataValidation": rule}]},
    ]


def test_set_data_validation_without_rule_clears(client: gspread.Client, emulator: SheetsEmulator) -> None:
    spreadsheet = client.create("Cleared")
    grid_range = {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 2,
                  "startColumnIndex": 0, "endColumnIndex": 1}
    spreadsheet.batch_update({"requests": [{"setDataValidation": {
        "range": grid_range, "rule": {"condition": {"type": "ONE_OF_LIST",
                                                    "values": [{"userEnteredValue": "y"}]}}}}]})
    sheet = emulator.spreadsheet(spreadsheet.id).sheets[0]
    assert sheet.cells[(1, 0)].data_validation["condition"]["type"] == "ONE_OF_LIST"

    spreadsheet.batch_update({"requests": [{"setDataValidation": {"range": grid_range}}]})

    assert sheet.cells == {}


def test_set_data_validation_checks_values(client: gspread.Client) -> None:
    spreadsheet = client.create("Bad rule")
    grid_range = {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 1,
                  "startColumnIndex": 0, "endColumnIndex": 1}
    with pytest.raises(gspread.exceptions.APIError) as raised:
        spreadsheet.batch_update({"requests": [{"setDataValidation": {
            "range": grid_range, "rule": {"condition": {"type": "ONE_OF_LIST"}}}}]})

    assert raised.value.response.status_code == 400
    assert raised.value.args[0]["message"] == (
        "Invalid requests[0].setDataValidation: Invalid ConditionValue count 0 for"
        " condition type ONE_OF_LIST: expected at least 1.")


def test_spreadsheet_get_field_mask(client: gspread.Client, session: requests.Session) -> None:
    spreadsheet = client.create("Masked")
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{spreadsheet.id}"

    titles = session.get(url, params={"fields": "sheets(properties(title,index))"}).json()
    assert titles == {"sheets": [{"properties": {"title": "Sheet1", "index": 0}}]}
    assert session.get(url, params={"fields": "namedRanges"}).json() == {}


# --- limits and errors -------------------------------------------------------


def test_write_beyond_grid_is_rejected(worksheet: gspread.Worksheet) -> None:
    with pytest.raises(gspread.exceptions.APIError) as raised:
        worksheet.update([["late"]], "A1001")

    error = raised.value.args[0]
    assert raised.value.response.status_code == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "Range ('Sheet1'!A1001) exceeds grid limits. Max rows: 1000, max columns: 26"


def test_ten_million_cell_limit(client: gspread.Client) -> None:
    spreadsheet = client.create("Huge")
    spreadsheet.add_worksheet("Big", rows=9000, cols=1000)

    with pytest.raises(gspread.exceptions.APIError) as raised:
        spreadsheet.add_worksheet("Too big", rows=1000, cols=1000)

    assert raised.value.args[0]["message"].endswith(
        "This action would increase the number of cells in the workbook above the limit of 10000000 cells."
    )


def test_cell_character_limit(worksheet: gspread.Worksheet) -> None:
    worksheet.update([["x" * 50000]], "A1")

    with pytest.raises(gspread.exceptions.APIError) as raised:
        worksheet.update([["x" * 50001]], "A2")

    assert raised.value.args[0]["message"] == (
        "Your input contains more than the maximum of 50000 characters in a single cell."
    )
    assert worksheet.acell("A2").value is None


def test_unknown_sheet_and_spreadsheet(worksheet: gspread.Worksheet, session: requests.Session) -> None:
    base = "https://sheets.googleapis.com/v4/spreadsheets/"
    unknown_sheet = session.get(base + worksheet.spreadsheet_id + "/values/Nope!A1")
    unknown_file = session.get(base + "no-such-id")

    assert unknown_sheet.status_code == 400
    assert unknown_sheet.json()["error"]["message"] == "Unable to parse range: Nope!A1"
    assert unknown_file.status_code == 404
    assert unknown_file.json() == {
        "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
    }


def test_missing_credentials_get_401(emulator: SheetsEmulator) -> None:
    spreadsheet_id = emulator.create_spreadsheet("Private")
    anonymous = emulator.session(token=None)
    response = anonymous.get(f"https://sheets.googleapis.com/v4/spreadsheets/{spreadsheet_id}")
    anonymous.close()

    error = response.json()["error"]
    assert response.status_code == 401
    assert error["status"] == "UNAUTHENTICATED"
    assert error["details"][0]["reason"] == "CREDENTIALS_MISSING"


# --- faults ------------------------------------------------------------------


def test_quota_fault_body_and_retry_after(worksheet: gspread.Worksheet, emulator: SheetsEmulator) -> None:
    emulator.inject_quota_exceeded(method="PUT", path=r"/values/", retry_after=7)

    with pytest.raises(gspread.exceptions.APIError) as raised:
        worksheet.update([["blocked"]], "A1")

    response = raised.value.response
    error = response.json()["error"]
    info = error["details"][0]
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"] == (
        "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' "
        "of service 'sheets.googleapis.com' for consumer 'project_number:123456789012'."
    )
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] == "RATE_LIMIT_EXCEEDED"
    assert info["metadata"]["quota_limit"] == "WriteRequestsPerMinutePerUser"
    assert info["metadata"]["quota_metric"] == "sheets.googleapis.com/write_requests"
    assert worksheet.acell("A1").value is None
    assert worksheet.update([["ok"]], "A1")["updatedCells"] == 1


def test_quota_fault_project_scope_for_reads(worksheet: gspread.Worksheet, emulator: SheetsEmulator) -> None:
    emulator.inject_quota_exceeded(times=2, method="GET", scope="project")

    for _ in range(2):
        with pytest.raises(gspread.exceptions.APIError) as raised:
            worksheet.get_all_values()
        metadata = raised.value.response.json()["error"]["details"][0]["metadata"]
        assert metadata["quota_limit"] == "ReadRequestsPerMinutePerProject"
        assert "limit 'Read requests per minute' of service" in raised.value.args[0]["message"]
        assert "Retry-After" not in raised.value.response.headers
    assert worksheet.get_all_values() == [[]]


def test_backoff_client_retries_quota(emulator: SheetsEmulator) -> None:
    spreadsheet_id = emulator.create_spreadsheet("Retried")
    # gspread's BackOffHTTPClient sleeps 2 s before its first retry.
    retrying = emulator.gspread_client(http_client=gspread.BackOffHTTPClient)
    emulator.inject_quota_exceeded(method="GET", path=r"/values/")
    worksheet = retrying.open_by_key(spreadsheet_id).sheet1
    worksheet.get_all_values()
    retrying.http_client.session.close()

    statuses = [r.status for r in emulator.log.records if r.kind == "values.get"]
    assert statuses == [429, 200]


def test_server_error_faults(worksheet: gspread.Worksheet, emulator: SheetsEmulator) -> None:
    emulator.inject_error(500, method="GET")
    emulator.inject_error(503, method="GET", retry_after=3)

    statuses = []
    for _ in range(2):
        with pytest.raises(gspread.exceptions.APIError) as raised:
            worksheet.get_all_values()
        statuses.append((raised.value.response.status_code, raised.value.args[0]["status"]))
    assert statuses == [(500, "INTERNAL"), (503, "UNAVAILABLE")]
    assert raised.value.response.headers["Retry-After"] == "3"


def test_timeout_after_apply_applies_write(client: gspread.Client, emulator: SheetsEmulator) -> None:
    worksheet = client.create("Timeouts").sheet1
    emulator.inject_timeout_after_apply(seconds=3, method="PUT")
    client.set_timeout(0.5)

    with pytest.raises(requests.exceptions.ReadTimeout):
        worksheet.update([["written anyway"]], "A1")

    client.set_timeout(None)
    assert worksheet.acell("A1").value == "written anyway"


def test_dropped_connection_after_apply(client: gspread.Client, emulator: SheetsEmulator) -> None:
    worksheet = client.create("Drops").sheet1
    emulator.inject_timeout_after_apply(drop=True, method="POST", path=r":append$")

    with pytest.raises(requests.exceptions.ConnectionError):
        worksheet.append_row(["once"])

    assert worksheet.get_all_values() == [["once"]]
    dropped = [r for r in emulator.log.records if r.fault == "timeout_after_apply"]
    assert [r.status for r in dropped] == [None]


def test_delay_fault_slows_answer(worksheet: gspread.Worksheet, emulator: SheetsEmulator) -> None:
    emulator.inject_delay(0.3, method="GET", path=r"/values/")
    started = time.monotonic()
    worksheet.get_all_values()

    assert time.monotonic() - started >= 0.3
    assert emulator.faults.pending() == []


# --- request log and network boundary -------------------------------------------


def test_request_log_counts_and_bytes(worksheet: gspread.Worksheet, emulator: SheetsEmulator, session: requests.Session) -> None:
    emulator.reset_log()
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{worksheet.spreadsheet_id}/values/A1:B1"
    body = json.dumps({"values": [["a", "b"]]}).encode()
    response = session.put(url, params={"valueInputOption": "RAW"}, data=body,
                           headers={"Content-Type": "application/json"})
    worksheet.get_all_values()

    assert emulator.requests_count == 2
    assert emulator.counts_by_kind() == {"values.update": 1, "values.get": 1}
    first = emulator.log.records[0]
    assert first.request_bytes == len(body)
    assert first.response_bytes == len(response.content)
    assert first.status == 200
    assert first.path.endswith("/values/A1:B1")
    assert emulator.bytes_received == len(body)
    assert emulator.bytes_sent == sum(r.response_bytes for r in emulator.log.records)
    emulator.reset_log()
    assert emulator.requests_count == 0


def test_session_blocks_other_hosts(session: requests.Session) -> None:
    for url in ("https://example.com/", "http://10.0.0.1/v4/spreadsheets", "https://oauth2.googleapis.com/token"):
        with pytest.raises(BlockedRequestError):
            session.get(url)


def test_session_rejects_foreign_adapter(session: requests.Session) -> None:
    with pytest.raises(BlockedRequestError):
        session.mount("https://", HTTPAdapter())


def test_emulator_binds_only_loopback() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        SheetsEmulator(host="0.0.0.0")


def test_stop_and_restart_emulator() -> None:
    emulator = SheetsEmulator().start()
    first_port = emulator.port
    emulator.stop()
    emulator.start()

    assert emulator.port > 0
    assert first_port > 0
    emulator.stop()
    with pytest.raises(RuntimeError):
        emulator.port


# --- A1 notation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sheet", "bounds"),
    [
        ("A1", None, (0, 1, 0, 1)),
        ("Sheet1!A1:B2", "Sheet1", (0, 2, 0, 2)),
        ("'It''s here'!C3", "It's here", (2, 3, 2, 3)),
        ("A:A", None, (0, None, 0, 1)),
        ("1:1", None, (0, 1, 0, None)),
        ("A2:C", None, (1, None, 0, 3)),
        ("A1:1", None, (0, 1, 0, None)),
        ("$B$2:$a$1", None, (0, 2, 0, 2)),
        ("My sheet!A1", "My sheet", (0, 1, 0, 1)),
    ],
)
def test_a1_parse_forms(text: str, sheet: str | None, bounds: tuple) -> None:
    reference = a1.parse_range(text)

    assert reference.sheet == sheet
    assert reference.bounds is not None
    parsed = reference.bounds
    assert (parsed.start_row, parsed.end_row, parsed.start_column, parsed.end_column) == bounds


def test_a1_whole_sheet_and_names() -> None:
    quoted = a1.parse_range("'Sheet 1'")
    bare = a1.parse_range("Budget")

    assert (quoted.sheet, quoted.bounds, quoted.name) == ("Sheet 1", None, None)
    assert (bare.sheet, bare.bounds, bare.name) == (None, None, "Budget")
    with pytest.raises(ValueError, match="unclosed quote"):
        a1.parse_range("'Sheet1!A1")


def test_a1_title_quoting() -> None:
    assert a1.quote_sheet_title("Sheet1") == "Sheet1"
    assert a1.quote_sheet_title("D3") == "'D3'"
    assert a1.quote_sheet_title("My sheet") == "'My sheet'"
    assert a1.quote_sheet_title("It's") == "'It''s'"
    assert a1.index_to_column(701) == "ZZ"
    assert a1.column_to_index("AAA") == 702
