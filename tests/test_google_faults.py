"""Google Sheets backend under faults the emulator injects: quotas, 503s, timeouts.

Each test ends with the exact tab content and request counts, so a resent write
shows up as a duplicated row, a wrongly deleted row or an extra request. Sleeps
between retries are recorded instead of slept where the test asserts the delay,
and the back-off is tiny everywhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from compiler.plan.models import ColumnPlan, RateLimit, SystemPlan
from runtime.http import retry as retry_module
from runtime.sheets.engine import TabSync, plan_tab_sync
from sheets_addon.emulator import Fault, SheetsEmulator
from sheets_addon.google import session as session_module
from sheets_addon.google.backend import GoogleSheetsBackend, SheetsBackendError
from sheets_addon.google.session import build_client
from tests.support.sheet_views import displayed_rows

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "agency"
TAB = "Data"
COLUMNS = [ColumnPlan(field="id", header="ID"), ColumnPlan(field="name", header="Name"),
           ColumnPlan(field="day", header="Day")]
TYPES = {"id": "integer", "name": "string", "day": "date"}
STRUCTURE_PATH = r"/spreadsheets/[^/]+:batchUpdate$"
VALUES_PATH = r"/values:batchUpdate$"
RETRY_LOGGER = retry_module.__name__


def record(key: int, name: str | None = None) -> dict[str, Any]:
    return {"id": key, "name": name or f"p{key}",
            "day": dt.date(2024, 3, 1) + dt.timedelta(days=key)}


def expected_rows(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [["ID", "Name", "Day"], *([r["id"], r["name"], r["day"]] for r in records)]


class Target:
    """One emulated spreadsheet with a client wired like a run's."""

    def __init__(self, emulator: SheetsEmulator, **policy: Any) -> None:
        self.emulator = emulator
        self.spreadsheet_id = emulator.create_spreadsheet("faults")
        self.client, self.ambiguity = build_client(
            SystemPlan(id="report", kind="sheets"), self.spreadsheet_id,
            emulator=f"127.0.0.1:{emulator.port}")
        http = self.client.http_client
        fast = {"base_seconds": 0.001, "max_seconds": 0.01,
                "user_quota_min_seconds": 0.001, "project_quota_min_seconds": 0.001}
        http.policy = dataclasses.replace(http.policy, **{**fast, **policy})
        http.bucket = None

    def backend(self) -> GoogleSheetsBackend:
        return GoogleSheetsBackend(self.client, self.spreadsheet_id,
                                   ambiguity=self.ambiguity)

    def sync(self, records: Sequence[dict[str, Any]], *, mode: str = "mirror",
             owned: Sequence[str] = ()) -> TabSync:
        backend = self.backend()
        grid = backend.read_tab(TAB)
        outcome = plan_tab_sync(grid, records, COLUMNS, TYPES, mode=mode, key=["id"],
                                owned_keys=owned)
        if grid is None or not outcome.changes.is_empty():
            backend.apply(TAB, outcome.changes)
        return outcome

    def rows(self, tab: str = TAB) -> list[list[Any]]:
        """Return the tab as a person sees it: date-formatted serials as dates."""
        grid = self.backend().read_tab(tab)
        assert grid is not None, f"tab {tab!r} missing"
        return displayed_rows(self.emulator, self.spreadsheet_id, tab, grid.rows)

    def tab_titles(self) -> list[str]:
        return [sheet.title for sheet in
                self.emulator.spreadsheet(self.spreadsheet_id).sheets]


@pytest.fixture(scope="module")
def emulator() -> Iterator[SheetsEmulator]:
    with SheetsEmulator() as running:
        yield running


@pytest.fixture()
def target(emulator: SheetsEmulator) -> Iterator[Target]:
    emulator.clear_faults()
    emulator.reset_log()
    yield Target(emulator)
    emulator.clear_faults()


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the delays the retry loop requests instead of sleeping them."""
    recorded: list[float] = []
    monkeypatch.setattr(session_module, "send",
                        functools.partial(retry_module.send, sleep=recorded.append))
    return recorded


def retry_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RETRY_LOGGER]


def seeded(target: Target, count: int = 8) -> tuple[list[dict[str, Any]], TabSync]:
    records = [record(key) for key in range(1, count + 1)]
    first = target.sync(records)
    assert target.rows() == expected_rows(records)
    target.emulator.reset_log()
    return records, first


class EveryOtherRequest:
    """A fault queue that responds to every odd-numbered request with one fault."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.seen = 0

    def take(self, method: str, path: str) -> Fault | None:
        self.seen += 1
        return self.fault if self.seen % 2 == 1 else None

    def clear(self) -> None:
        self.seen = 0


# --- Quotas ------------------------------------------------------------------------


def test_faults_half_of_requests_get_429(target: Target, caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    records, first = seeded(target, 12)
    quota = target.emulator.inject_quota_exceeded(times=1_000_000)
    target.emulator.clear_faults()
    monkeypatch.setattr(target.emulator, "faults", EveryOtherRequest(quota))
    changed = [r for r in records if r["id"] % 4] + [record(13), record(14)]
    changed[0] = record(1, "renamed")

    with caplog.at_level(logging.WARNING, logger=RETRY_LOGGER):
        outcome = target.sync(changed, owned=sorted(first.written_keys))
        again = target.sync(changed, owned=sorted(outcome.written_keys))

    assert (outcome.created, outcome.updated, outcome.deleted) == (2, 1, 3)
    assert again.changes.is_empty()
    statuses = target.emulator.log.counts_by_status()
    messages = retry_messages(caplog)
    assert statuses[429] == statuses[200]
    assert len(messages) == statuses[429]
    for message in messages:
        assert "failed with HTTP 429 RESOURCE_EXHAUSTED" in message
        assert "per-user quota" in message
        assert "retrying in" in message
    monkeypatch.undo()
    rows = target.rows()
    assert rows == expected_rows(changed)
    keys = [row[0] for row in rows[1:]]
    assert len(keys) == len(set(keys))


def test_faults_retry_after_is_honored(target: Target, sleeps: list[float],
                                       caplog: pytest.LogCaptureFixture) -> None:
    target.emulator.inject_quota_exceeded(method="POST", path=VALUES_PATH,
                                          retry_after=7)

    with caplog.at_level(logging.WARNING, logger=RETRY_LOGGER):
        target.sync([record(1), record(2)])

    assert sleeps == [7.0]
    (message,) = retry_messages(caplog)
    assert "attempt 1 of 5 failed with HTTP 429" in message
    assert "retrying in 7.00 s (Retry-After)" in message
    assert target.rows() == expected_rows([record(1), record(2)])
    assert target.emulator.counts_by_kind()["values.batchUpdate"] == 2


def test_faults_user_and_project_quota_told_apart(
        emulator: SheetsEmulator, sleeps: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    emulator.clear_faults()
    emulator.reset_log()
    target = Target(emulator, user_quota_min_seconds=2.0, project_quota_min_seconds=10.0)
    emulator.inject_quota_exceeded(method="GET", scope="user")
    emulator.inject_quota_exceeded(method="POST", path=VALUES_PATH, scope="project")

    with caplog.at_level(logging.WARNING, logger=RETRY_LOGGER):
        target.sync([record(1)])

    assert sleeps == [2.0, 10.0]
    user, project = retry_messages(caplog)
    assert "per-user quota ReadRequestsPerMinutePerUser" in user
    assert "(per-user quota minimum)" in user
    assert "per-project quota WriteRequestsPerMinutePerProject" in project
    assert "(per-project quota minimum)" in project
    assert target.rows() == expected_rows([record(1)])


# --- Writes that applied although they failed ---------------------------------------


def test_faults_503_after_row_deletion_applied(target: Target,
                                               caplog: pytest.LogCaptureFixture) -> None:
    records, first = seeded(target)
    target.emulator.inject_error_after_apply(503, method="POST", path=STRUCTURE_PATH)
    kept = [r for r in records if r["id"] not in (2, 5)]
    kept[0] = record(1, "renamed")

    with caplog.at_level(logging.WARNING):
        outcome = target.sync(kept, owned=sorted(first.written_keys))

    assert outcome.deleted == 2
    assert target.rows() == expected_rows(kept)
    counts = target.emulator.counts_by_kind()
    assert counts["spreadsheets.batchUpdate"] == 1
    assert counts["values.batchUpdate"] == 1
    # The sync reads the properties and the values. After the 503, one read of
    # the properties and one of the values tell that the rows are gone. The
    # test reads both last.
    assert counts["spreadsheets.get"] == 1 + 1 + 1
    assert counts["values.get"] == 1 + 1 + 1
    assert "may have applied" in caplog.text
    assert "failed after it had applied, so it was not resent" in caplog.text


def test_faults_503_before_row_deletion_is_resent(target: Target) -> None:
    records, first = seeded(target)
    target.emulator.inject_error(503, method="POST", path=STRUCTURE_PATH)
    kept = [r for r in records if r["id"] not in (3, 4, 8)]

    outcome = target.sync(kept, owned=sorted(first.written_keys))

    assert outcome.deleted == 3
    assert target.rows() == expected_rows(kept)
    assert target.emulator.counts_by_kind()["spreadsheets.batchUpdate"] == 2


def test_faults_503_after_values_applied(target: Target) -> None:
    records, first = seeded(target)
    target.emulator.inject_error_after_apply(503, method="POST", path=VALUES_PATH)
    changed = [*records, record(9), record(10)]
    changed[2] = record(3, "renamed")

    outcome = target.sync(changed, owned=sorted(first.written_keys))

    assert (outcome.created, outcome.updated) == (2, 1)
    rows = target.rows()
    assert rows == expected_rows(changed)
    assert len(rows) == 11
    counts = target.emulator.counts_by_kind()
    assert counts["values.batchUpdate"] == 1
    assert counts["values.batchGetByDataFilter"] == 1


def test_faults_503_many_ranges_read_by_post(target: Target) -> None:
    records = [record(key) for key in range(1, 2001)]
    first = target.sync(records)
    target.emulator.reset_log()
    target.emulator.inject_error_after_apply(503, method="POST", path=VALUES_PATH)
    changed = [record(r["id"], "renamed") if r["id"] % 2 else r for r in records]

    outcome = target.sync(changed, owned=sorted(first.written_keys))

    assert outcome.updated == 1000
    counts = target.emulator.counts_by_kind()
    assert counts["values.batchUpdate"] == 1
    assert counts["values.batchGetByDataFilter"] == 1
    (check,) = [r for r in target.emulator.log.records
                if r.kind == "values.batchGetByDataFilter"]
    # The 1,000 ranges travel in the body; the URL carries none of them.
    assert check.method == "POST"
    assert check.query == "prettyPrint=false"
    assert check.request_bytes > 20_000
    assert target.rows() == expected_rows(changed)


def test_faults_503_after_new_tab_applied(target: Target) -> None:
    target.emulator.inject_error_after_apply(503, method="POST", path=STRUCTURE_PATH)
    records = [record(1), record(2), record(3)]

    target.sync(records)

    assert target.tab_titles() == ["Sheet1", TAB]
    assert target.rows() == expected_rows(records)
    assert target.emulator.counts_by_kind()["spreadsheets.batchUpdate"] == 1


@pytest.mark.parametrize("drop", [True, False])
def test_faults_timeout_after_values_applied(target: Target, drop: bool) -> None:
    records, first = seeded(target)
    target.client.http_client.timeout = 1.0
    target.emulator.inject_timeout_after_apply(seconds=2.5, drop=drop, method="POST",
                                               path=VALUES_PATH)
    changed = [*records, record(9)]

    outcome = target.sync(changed, owned=sorted(first.written_keys))
    again = target.sync(changed, owned=sorted(outcome.written_keys))

    assert outcome.created == 1
    assert again.changes.is_empty()
    assert target.rows() == expected_rows(changed)
    assert target.emulator.counts_by_kind()["values.batchUpdate"] == 1


def test_faults_timeout_after_structure_applied(target: Target) -> None:
    records, first = seeded(target)
    target.emulator.inject_timeout_after_apply(drop=True, method="POST",
                                               path=STRUCTURE_PATH)
    kept = [r for r in records if r["id"] != 6]

    target.sync(kept, owned=sorted(first.written_keys))

    assert target.rows() == expected_rows(kept)
    assert target.emulator.counts_by_kind()["spreadsheets.batchUpdate"] == 1


# --- Giving up ------------------------------------------------------------------------


def test_faults_retry_exhaustion_names_spreadsheet(target: Target) -> None:
    target.emulator.inject_error(503, times=5, method="GET")

    with pytest.raises(SheetsBackendError) as raised:
        target.backend().read_tab(TAB)

    message = str(raised.value)
    assert f"spreadsheet {target.spreadsheet_id!r}" in message
    assert "failed after 5 attempt(s)" in message
    assert "last cause: HTTP 503" in message
    assert target.emulator.log.counts_by_status() == {503: 5}


def test_faults_cli_run_gives_up_without_traceback(tmp_path: Path,
                                                   emulator: SheetsEmulator) -> None:
    project = tmp_path / "agency"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("out", ".syncplan"))
    spreadsheet = emulator.create_spreadsheet("agency")
    emulator.clear_faults()
    # Retry-After: 0 makes the five attempts of each request immediate.
    emulator.inject_quota_exceeded(times=1_000, retry_after=0)
    env = {**os.environ, "REPORT_SHEET": spreadsheet,
           "SYNCPLAN_SHEETS_EMULATOR": f"127.0.0.1:{emulator.port}"}

    try:
        completed = subprocess.run(
            [sys.executable, "-m", "sheets_addon", "run", str(project)], cwd=REPO,
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        emulator.clear_faults()

    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert "Traceback" not in completed.stdout
    assert f"error: flow 'clients' failed: spreadsheet {spreadsheet!r}" in completed.stderr
    assert "failed after 5 attempt(s)" in completed.stderr
    assert "HTTP 429" in completed.stderr
    assert emulator.spreadsheet(spreadsheet).sheets[0].cells == {}


# --- Whole runs: the data tab and the Errors tab afterwards ---------------------------
#
# These run the flow the way ``syncplan run`` does (PlanRunner, in this process),
# so each ends with the exact data tab, the exact Errors rows and the Runs rows.

RUN_SPEC = """\
version: 1
project: faults
systems:
  src: {kind: csv, path: people.csv}
  report:
    kind: sheets
    spreadsheet: "${env:REPORT_SHEET}"
    rate_limit: {requests: 1000, per: second}
entities:
  person:
    key: id
    fields:
      id: {type: integer, owner: src}
      name: {type: string, owner: src}
      day: {type: date, owner: src}
flows:
  people:
    source: {system: src}
    map: {entity: person, fields: {id: id, name: name, day: day}}
    destinations:
      - system: report
        object: Data
        mode: mirror
        key: id
        columns: {id: ID, name: Name, day: Day}
"""
ERRORS_HEADER = ["Error ID", "Flow", "First run", "Time", "Record key", "Field", "Code",
                 "Message", "Raw value", "Retry", "Where"]


class Project:
    """A one-flow project writing the emulated spreadsheet, run in this process."""

    def __init__(self, root: Path, emulator: SheetsEmulator, spreadsheet: str,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.emulator = emulator
        self.spreadsheet_id = spreadsheet
        self.run_ids: set[str] = set()
        (root / "syncplan.yaml").write_text(RUN_SPEC, encoding="utf-8")
        monkeypatch.setenv("REPORT_SHEET", spreadsheet)
        monkeypatch.setenv("SYNCPLAN_SHEETS_EMULATOR", f"127.0.0.1:{emulator.port}")
        fast = dataclasses.replace(session_module.retry_policy(
            SystemPlan(id="report", kind="sheets")), base_seconds=0.001,
            max_seconds=0.01, user_quota_min_seconds=0.001,
            project_quota_min_seconds=0.001)
        monkeypatch.setattr(session_module, "retry_policy", lambda system: fast)

    def write_source(self, rows: Sequence[tuple[Any, str, str]]) -> None:
        lines = ["id,name,day", *(f"{key},{name},{day}" for key, name, day in rows)]
        (self.root / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def run(self) -> Any:
        """Run the flow once and return its ``FlowResult``."""
        from compiler import compile_project
        from runtime.runner import PlanRunner
        from runtime.state import StateStore

        compiled = compile_project(self.root)
        assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
        state = StateStore(self.root / ".syncplan" / "state.db")
        try:
            (result,) = PlanRunner(compiled.plan, self.root, state).run()
        finally:
            state.close()
        self.run_ids.add(result.run_id)
        return result

    def tab(self, title: str) -> list[list[Any]]:
        """Return a tab as a person sees it, read by a backend of its own."""
        # The write bucket of a spreadsheet is shared, so the rate limit must be
        # the run's.
        system = SystemPlan(id="check", kind="sheets",
                            rate_limit=RateLimit(requests=1000, per_seconds=1))
        client, ambiguity = build_client(system, self.spreadsheet_id,
                                         emulator=f"127.0.0.1:{self.emulator.port}")
        grid = GoogleSheetsBackend(client, self.spreadsheet_id).read_tab(title)
        assert grid is not None, f"tab {title!r} missing"
        return displayed_rows(self.emulator, self.spreadsheet_id, title, grid.rows)


def expected_errors(result: Any) -> list[list[Any]]:
    """Return the Errors tab a run's reported errors must give, header first."""
    rows = [[row["error_id"], "people", None, None, row["record_key"], row["field"],
             row["code"], row["message"], row["raw"], False, row["position"]]
            for row in result.errors]
    return [ERRORS_HEADER, *sorted(rows)]


def errors_tab(project: Project) -> list[list[Any]]:
    """Return the Errors tab with First run and Time blanked, once checked.

    Both come from the runs themselves: the id of the run that first met the
    error and the time of the latest run.
    """
    header, *rows = project.tab("Errors")
    for row in rows:
        assert row[2] in project.run_ids, row
        assert isinstance(row[3], dt.datetime), row
    return [header, *sorted([*row[:2], None, None, *row[4:]] for row in rows)]


SOURCE = [(1, "Ada", "2024-03-01"), (2, "Bob", "2024-03-02"), (3, "Cy", "not a date"),
          (4, "Di", "2024-03-04"), (5, "Ed", "2024-03-05"), (6, "Flo", "2024-03-06")]


def data_rows(rows: Sequence[tuple[Any, str, str]]) -> list[list[Any]]:
    return [["ID", "Name", "Day"], *([key, name, dt.date.fromisoformat(day)]
                                     for key, name, day in rows)]


@pytest.fixture()
def project(tmp_path: Path, emulator: SheetsEmulator,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    emulator.clear_faults()
    made = Project(tmp_path, emulator, emulator.create_spreadsheet("runs"), monkeypatch)
    made.write_source(SOURCE)
    first = made.run()
    assert first.status == "succeeded", first.message
    emulator.reset_log()
    yield made
    emulator.clear_faults()


def changed_source() -> list[tuple[Any, str, str]]:
    rows = [row for row in SOURCE if row[0] != 2]
    rows[0] = (1, "Ada renamed", "2024-03-01")
    return [*rows, (7, "Gus", "2024-03-07")]


def test_run_half_429_data_and_errors_exact(project: Project,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    quota = project.emulator.inject_quota_exceeded(times=1_000_000)
    project.emulator.clear_faults()
    monkeypatch.setattr(project.emulator, "faults", EveryOtherRequest(quota))
    project.write_source(changed_source())

    result = project.run()

    monkeypatch.undo()
    statuses = project.emulator.log.counts_by_status()
    assert result.status == "succeeded", result.message
    assert (result.created, result.updated, result.deleted) == (1, 1, 1)
    assert statuses[429] == statuses[200]
    good = [row for row in changed_source() if row[0] != 3]
    assert project.tab("Data") == data_rows(good)
    (error,) = result.errors
    assert (error["code"], error["record_key"], error["field"]) == (
        "invalid_date", "3", "day")
    assert errors_tab(project) == expected_errors(result)
    runs = project.tab("Runs")
    assert [row[4] for row in runs[1:]] == ["succeeded", "succeeded"]
    assert runs[2][0] == result.run_id


@pytest.mark.parametrize("path", [VALUES_PATH, STRUCTURE_PATH])
def test_run_503_after_write_applied_exact(project: Project, path: str) -> None:
    # The first matching write of the run is the data tab's: a row deletion for
    # the structure, the changed cells for the values.
    project.emulator.inject_error_after_apply(503, method="POST", path=path)
    project.write_source(changed_source())

    result = project.run()

    assert result.status == "succeeded", result.message
    assert (result.created, result.updated, result.deleted) == (1, 1, 1)
    good = [row for row in changed_source() if row[0] != 3]
    assert project.tab("Data") == data_rows(good)
    assert errors_tab(project) == expected_errors(result)
    assert [row[0] for row in project.tab("Runs")[1:]][-1] == result.run_id
    assert len(project.tab("Runs")) == 3
    statuses = [record.status for record in project.emulator.log.records
                if record.method == "POST" and re.search(path, record.path)]
    # Nothing was resent: the write that got the 503 was read back and found done.
    assert statuses[0] == 503
    assert 503 not in statuses[1:]
    assert len([s for s in statuses if s == 503]) == 1


def test_run_over_cell_limit_writes_nothing(tmp_path: Path, emulator: SheetsEmulator,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.clear_faults()
    spreadsheet = emulator.create_spreadsheet("full", [{"properties": {
        "title": "Big", "gridProperties": {"rowCount": 399_000, "columnCount": 25}}}])
    project = Project(tmp_path, emulator, spreadsheet, monkeypatch)
    project.write_source([(key, f"p{key}", "2024-03-01") for key in range(1, 10_001)])

    result = project.run()

    assert result.status == "succeeded", result.message
    assert [sheet.title for sheet in emulator.spreadsheet(spreadsheet).sheets] == [
        "Big", "Errors", "Runs"]
    (error,) = result.errors
    assert error["code"] == "limit_exceeded"
    assert error["position"] == "report/Data"
    assert error["message"] == (
        "writing tabs 'Data', 'Errors', 'Runs' would take the spreadsheet to"
        " 10,005,040 cells, over Google Sheets' limit of 10,000,000; nothing was"
        " written. Delete unused tabs,"
        " rows or columns, or write to another spreadsheet")
    assert errors_tab(project) == expected_errors(result)
    assert emulator.spreadsheet(spreadsheet).sheet_by_title("Big").cells == {}


def test_run_503_after_new_tab_applied_exact(tmp_path: Path, emulator: SheetsEmulator,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.clear_faults()
    emulator.reset_log()
    spreadsheet = emulator.create_spreadsheet("new tabs")
    project = Project(tmp_path, emulator, spreadsheet, monkeypatch)
    project.write_source(SOURCE)
    # Each new tab's addSheet applies, then gets a 503: Data, Errors and Runs.
    emulator.inject_error_after_apply(503, times=3, method="POST", path=STRUCTURE_PATH)

    result = project.run()

    assert result.status == "succeeded", result.message
    assert [sheet.title for sheet in emulator.spreadsheet(spreadsheet).sheets] == [
        "Sheet1", "Data", "Errors", "Runs"]
    assert project.tab("Data") == data_rows([row for row in SOURCE if row[0] != 3])
    assert errors_tab(project) == expected_errors(result)
    assert [row[0] for row in project.tab("Runs")[1:]] == [result.run_id]
    assert emulator.log.counts_by_status()[503] == 3
    assert emulator.counts_by_kind()["spreadsheets.batchUpdate"] == 3
