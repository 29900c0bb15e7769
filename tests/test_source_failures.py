"""Sources that fail in whole or in part, run through the compiler and the runner.

What mirror may delete, which canonical records the state store keeps for the
flows downstream, and when the incremental cursor moves. The http cases read
from a ``FakeAPI`` on 127.0.0.1 that the test scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from support.fake_api import FakeAPI, Received, Reply, json_reply
from support.projects import copy_agency, run_project

from compiler import compile_project
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore

REPORT = Path("out") / "agency-report.xlsx"
# A 500 with a zero Retry-After, so a retried page costs no back-off delay.
FAILED_PAGE = Reply(500, b'{"error": "boom"}', {"Content-Type": "application/json",
                                                 "Retry-After": "0"})


# --- the agency example ----------------------------------------------------------

@pytest.fixture()
def agency(tmp_path: Path) -> Path:
    return copy_agency(tmp_path)


def tab_rows(path: Path, tab: str) -> list[tuple[Any, ...]]:
    sheet = openpyxl.load_workbook(path)[tab]
    return [tuple(row) for row in sheet.iter_rows(min_row=2, values_only=True)
            if row[0] is not None]


def stored_records(root: Path, entity: str) -> list[dict[str, Any]]:
    state = StateStore(root / ".syncplan" / "state.db")
    try:
        return list(state.records(entity))
    finally:
        state.close()


def remove_event(ics: Path, uid: str) -> None:
    text = ics.read_bytes().decode("utf-8")
    start = text.index(f"BEGIN:VEVENT\r\nUID:{uid}")
    end = text.index("END:VEVENT\r\n", start) + len("END:VEVENT\r\n")
    ics.write_bytes((text[:start] + text[end:]).encode("utf-8"))


def test_corrupt_json_fails_flow_and_deletes_nothing(agency: Path) -> None:
    run_project(agency)
    report = agency / REPORT
    entries = tab_rows(report, "Time entries")
    utilization = tab_rows(report, "Utilization")
    clients = agency / "data" / "clients.json"
    clients.write_text(clients.read_text()[:100])

    results = run_project(agency)

    failed = results["clients"]
    assert failed.status == "failed"
    assert "client_list" in (failed.message or "")
    assert "invalid JSON" in (failed.message or "")
    assert [error["code"] for error in failed.errors] == ["json_invalid"]
    # The stored clients stay, so the lookups downstream still find them.
    assert len(stored_records(agency, "client")) == 4
    hours = results["calendar_hours"]
    assert hours.status == "succeeded"
    assert [error["code"] for error in hours.errors] == ["lookup_not_found"]  # hooli
    assert hours.deleted == 0
    assert results["utilization"].deleted == 0
    assert len(entries) == 24
    assert tab_rows(report, "Time entries") == entries
    assert len(utilization) == 24
    assert tab_rows(report, "Utilization") == utilization


def test_non_calendar_ics_fails_flow_and_deletes_nothing(agency: Path) -> None:
    run_project(agency)
    report = agency / REPORT
    entries = tab_rows(report, "Time entries")
    utilization = tab_rows(report, "Utilization")
    before = stored_records(agency, "time_entry")
    (agency / "data" / "team.ics").write_text("this is a text file, not a calendar\n")

    results = run_project(agency)

    failed = results["calendar_hours"]
    assert failed.status == "failed"
    assert [error["code"] for error in failed.errors] == ["ics_unreadable"]
    assert "ics_unreadable" in (failed.message or "")
    assert stored_records(agency, "time_entry") == before
    assert results["utilization"].status == "succeeded"
    assert results["utilization"].deleted == 0
    assert tab_rows(report, "Time entries") == entries
    assert tab_rows(report, "Utilization") == utilization


def test_failed_lookups_keep_their_rows(agency: Path) -> None:
    run_project(agency)
    report = agency / REPORT
    entries = tab_rows(report, "Time entries")
    utilization = tab_rows(report, "Utilization")
    umbrella_entries = [row for row in entries if row[5] == "UMB-004"]
    umbrella_weeks = [row for row in utilization if row[2] == "UMB-004"]
    initech = [row for row in entries if row[5] == "INI-003"]
    assert umbrella_entries
    assert umbrella_weeks
    assert initech
    # The umbrella meetings' lookups now fail, and the initech meeting is gone.
    clients = agency / "data" / "clients.json"
    clients.write_text(clients.read_text().replace('"umbrella"', '"umbrella-health"'))
    remove_event(agency / "data" / "team.ics", "initech-prep")

    results = run_project(agency)

    hours = results["calendar_hours"]
    assert hours.status == "succeeded"
    failed_keys = {error["record_key"] for error in hours.errors
                   if error["code"] == "lookup_not_found"}
    assert {row[0] for row in umbrella_entries} <= failed_keys
    # Only the rows of the vanished meeting go; the failed records' rows stay.
    assert hours.deleted == len(initech)
    assert hours.warnings == []
    after = tab_rows(report, "Time entries")
    assert [row for row in after if row[5] == "UMB-004"] == umbrella_entries
    assert not [row for row in after if row[5] == "INI-003"]
    # The stored time entries keep the failed ones, so utilization keeps them too.
    stored = {record["entry_id"] for record in stored_records(agency, "time_entry")}
    assert {row[0] for row in umbrella_entries} <= stored
    assert [row for row in tab_rows(report, "Utilization")
            if row[2] == "UMB-004"] == umbrella_weeks


def test_broken_event_skips_deletions(agency: Path) -> None:
    run_project(agency)
    report = agency / REPORT
    entries = tab_rows(report, "Time entries")
    utilization = tab_rows(report, "Utilization")
    ics = agency / "data" / "team.ics"
    remove_event(ics, "initech-prep")
    text = ics.read_bytes().decode("utf-8")
    start = text.index("BEGIN:VEVENT\r\nUID:umbrella-workshop")
    dtstart = text.index("DTSTART", start)
    line_end = text.index("\r\n", dtstart) + 2
    ics.write_bytes((text[:dtstart] + text[line_end:]).encode("utf-8"))

    results = run_project(agency)

    hours = results["calendar_hours"]
    assert hours.status == "succeeded"
    assert "ics_invalid_event" in {error["code"] for error in hours.errors}
    assert hours.deleted == 0
    assert len(hours.warnings) == 1
    assert "report/Time entries: no rows were deleted" in hours.warnings[0]
    assert "ics_invalid_event" in hours.warnings[0]
    assert tab_rows(report, "Time entries") == entries
    assert results["utilization"].deleted == 0
    assert tab_rows(report, "Utilization") == utilization


def test_lookup_error_shows_searched_value(agency: Path) -> None:
    results = run_project(agency)

    (error,) = results["calendar_hours"].errors
    assert error["code"] == "lookup_not_found"
    assert error["raw"] == "hooli"


# --- template inputs ---------------------------------------------------------------

def test_template_error_shows_its_inputs(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text('[{"id": 1, "a": 6, "b": 3},'
                                        ' {"id": 2, "a": 1, "b": 0}]')
    (tmp_path / "syncplan.yaml").write_text(yaml.safe_dump({
        "version": 1,
        "systems": {"src": {"kind": "json", "path": "rows.json"},
                    "out": {"kind": "sheets", "spreadsheet": "out.xlsx"}},
        "entities": {"row": {"key": "id", "fields": {
            "id": {"type": "integer", "owner": "src"},
            "ratio": {"type": "decimal", "owner": "src"}}}},
        "flows": {"rows": {
            "source": {"system": "src"},
            "map": {"entity": "row", "fields": {
                "id": "id", "ratio": "{{ record.a / record.b }}"}},
            "destinations": [{"system": "out", "object": "Rows", "mode": "upsert"}]}},
    }))

    results = run_project(tmp_path)

    (error,) = results["rows"].errors
    assert error["code"] == "template_failed"
    assert error["record_key"] == "2"
    assert error["raw"] == '{"a": 1, "b": 0}'


# --- http sources through the runner -------------------------------------------------

def items(first: int, last: int, **changes: Any) -> list[dict[str, Any]]:
    return [{"id": number, "name": changes.get(str(number), f"item {number}"),
             "updated": number, "meta": {"updated": number}}
            for number in range(first, last + 1)]


class PagedItems:
    """``GET /items`` in pages of five, with a way to break one page."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.broken: dict[str, Callable[[Received], Reply]] = {}

    def __call__(self, request: Received) -> Reply:
        after = request.param("after") or "0"
        if after in self.broken:
            return self.broken[after](request)
        start = int(after)
        body: dict[str, Any] = {"results": self.records[start:start + 5]}
        if start + 5 < len(self.records):
            body["next"] = str(start + 5)
        return json_reply(body)


def http_project(root: Path, url: str, *, mode: str = "mirror",
                 cursor: str | None = None, retry: dict[str, Any] | None = None,
                 destinations: list[dict[str, Any]] | None = None) -> Path:
    source: dict[str, Any] = {"system": "api", "stream": "items"}
    if cursor is not None:
        source["cursor"] = cursor
    if destinations is None:
        destination: dict[str, Any] = {"system": "report", "object": "Items",
                                       "mode": mode}
        if mode == "mirror":
            destination["key"] = "id"
        destinations = [destination]
    spec = {
        "version": 1,
        "systems": {
            "api": {"kind": "http", "base_url": url, "streams": {"items": {
                "path": "/items", "records": "results",
                "pagination": {"type": "cursor", "next": "next", "param": "after"},
                "fields": {"id": "integer", "name": "string", "updated": "integer",
                           "meta": "object", "meta.updated": "integer"}}}},
            "report": {"kind": "sheets", "spreadsheet": "out.xlsx"},
            # The project tool that the write-failure test creates projects in.
            "tool": {"kind": "http", "base_url": url},
        },
        "entities": {"item": {"key": "id", "fields": {
            "id": {"type": "integer", "owner": "api"},
            "name": {"type": "string", "owner": "api"}}}},
        "flows": {"items": {
            "source": source,
            "on_error": {"retry": retry or {"attempts": 2, "backoff": "none"}},
            "map": {"entity": "item", "fields": {"id": "id", "name": "name"}},
            "destinations": destinations}},
    }
    (root / "syncplan.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def run_items(root: Path) -> FlowResult:
    compiled = compile_project(root)
    assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
    state = StateStore(root / "state.db")
    try:
        (result,) = PlanRunner(compiled.plan, root, state).run()
    finally:
        state.close()
    return result


def stored_cursor(root: Path) -> str | None:
    state = StateStore(root / "state.db")
    try:
        return state.cursor("items", "items")
    finally:
        state.close()


@pytest.fixture()
def api() -> Any:
    with FakeAPI() as server:
        yield server


def loop_back(request: Received) -> Reply:
    """Name the token of the first page again: a pagination loop."""
    return json_reply({"results": items(6, 10), "next": "5"})


@pytest.mark.parametrize(("break_page", "code"), [
    (lambda request: FAILED_PAGE, "http_request"),
    (loop_back, "http_pagination_loop"),
], ids=["page_fails", "cursor_repeats"])
def test_http_stream_stopped_early_deletes_nothing(
        tmp_path: Path, api: FakeAPI, break_page: Callable[[Received], Reply],
        code: str) -> None:
    pages = PagedItems(items(1, 15))
    api.route("GET", "/items", pages)
    root = http_project(tmp_path, api.url)
    first = run_items(root)
    assert (first.read, first.created) == (15, 15)
    pages.broken["5"] = break_page

    second = run_items(root)

    assert second.status == "succeeded"
    assert code in [error["code"] for error in second.errors]
    assert second.read < 15
    assert second.deleted == 0
    assert any("stopped early" in warning for warning in second.warnings)
    skipped = [w for w in second.warnings if "no rows were deleted" in w]
    assert len(skipped) == 1
    assert skipped[0].startswith("report/Items:")
    assert "stopped early" in skipped[0]
    sheet = openpyxl.load_workbook(root / "out.xlsx")["Items"]
    assert sheet.max_row == 16  # the header and all 15 items
    state = StateStore(root / "state.db")
    try:
        assert len(list(state.records("item"))) == 15
    finally:
        state.close()


@pytest.mark.parametrize("attempts", [1, 3])
def test_http_source_follows_flow_retry(tmp_path: Path, api: FakeAPI,
                                        attempts: int) -> None:
    pages = PagedItems(items(1, 10))
    pages.broken["5"] = lambda request: FAILED_PAGE
    api.route("GET", "/items", pages)
    root = http_project(tmp_path, api.url, mode="upsert",
                        retry={"attempts": attempts, "backoff": "none"})

    result = run_items(root)

    page_two = [request for request in api.received("GET", "/items")
                if request.param("after") == "5"]
    assert len(page_two) == attempts
    assert result.read == 5


@pytest.mark.parametrize("cursor", ["updated", "meta.updated"])
def test_http_cursor_is_applied_once(tmp_path: Path, api: FakeAPI, cursor: str) -> None:
    pages = PagedItems(items(1, 5))
    api.route("GET", "/items", pages)
    root = http_project(tmp_path, api.url, mode="upsert", cursor=cursor)
    run_items(root)
    assert stored_cursor(root) == "5"
    pages.records = items(1, 6, **{"5": "item 5, renamed"})

    second = run_items(root)

    # The reader keeps records at the stored cursor, and nothing drops them again.
    assert (second.read, second.filtered) == (2, 0)
    assert (second.created, second.updated) == (1, 1)
    assert stored_cursor(root) == "6"
    rows = tab_rows(root / "out.xlsx", "Items")
    assert (5, "item 5, renamed") in rows


def test_http_write_failure_holds_cursor(tmp_path: Path, api: FakeAPI) -> None:
    api.route("GET", "/items", PagedItems(items(1, 5)))
    created: list[Any] = []
    failing = [True]

    def create(request: Received) -> Reply:
        if failing[0]:
            return FAILED_PAGE
        created.append(request.json())
        return json_reply({"id": f"p{len(created)}"}, status=201)

    api.route("POST", "/projects", create)
    destination = {"system": "tool", "object": "projects", "mode": "create",
                   "idempotency_key": "id",
                   "http": {"create": {"path": "/projects",
                                       "body": {"name": "{{ record.name }}"}},
                            "id": "id"}}
    root = http_project(tmp_path, api.url, cursor="updated",
                        destinations=[destination])

    first = run_items(root)

    assert first.status == "succeeded"
    assert first.created == 0
    assert len(first.errors) == 5
    assert stored_cursor(root) is None
    assert any("the cursor of stream 'items' stays at None" in warning
               for warning in first.warnings)

    failing[0] = False
    second = run_items(root)

    assert (second.read, second.created) == (5, 5)
    names = sorted(body["name"] for body in created)
    assert names == [f"item {number}" for number in range(1, 6)]
    assert stored_cursor(root) == "5"
