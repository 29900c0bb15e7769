"""The closed-won example end to end against the fake CRM and project tool, with faults."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import requests

from compiler import compile_project
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore
from sheets_addon.demo.closed_won import DemoReport, run_closed_won
from sheets_addon.demo.fake_apis import SAMPLE_DEALS, FakeApis
from sheets_addon.demo.fake_asana import FakeAsana
from sheets_addon.demo.fake_crm import FakeCrm
from sheets_addon.demo.fake_server import FakeServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "closed-won"
SEARCH = "POST /crm/v3/objects/deals/search"
CREATE_NOTE = "POST /crm/v3/objects/notes"
SEARCH_NOTES = "POST /crm/v3/objects/notes/search"
CREATE_PROJECT = "POST /api/1.0/projects"
CREATE_TASK = "POST /api/1.0/tasks"
LIST_PROJECTS = "GET /api/1.0/projects"
EXTRA_WON_DEALS = 20
PAGE_SIZE = 10


@pytest.fixture
def apis(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeApis() as fakes:
        for name, value in fakes.environment().items():
            monkeypatch.setenv(name, value)
        yield fakes


def copy_example(target: Path) -> Path:
    """Copy the example with pages of 10 deals and a 1 s read timeout.

    Small pages give the deals search several pages with few deals, and the
    short timeout lets a create that hangs after applying time out quickly.
    """
    project = target / "closed-won"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".syncplan", "out"))
    spec = project / "syncplan.yaml"
    text = spec.read_text(encoding="utf-8")
    search_limit = "          limit: 100\n        records: results"
    assert search_limit in text
    assert text.count("timeout: {connect: 5, read: 10}") == 2
    text = text.replace(search_limit, f"          limit: {PAGE_SIZE}\n"
                        "        records: results")
    text = text.replace("timeout: {connect: 5, read: 10}", "timeout: {connect: 5, read: 1}")
    spec.write_text(text, encoding="utf-8")
    return project


def add_deals(apis: FakeApis) -> dict[str, dict[str, Any]]:
    """Add the sample deals and more won ones; return the won deals by id."""
    ids = apis.add_sample_deals()
    for number in range(EXTRA_WON_DEALS):
        ids.append(apis.crm.add_deal(
            dealname=f"Retainer {number + 1}", client_name=f"Client {number + 1:02d}",
            amount=f"{1000 + number * 250}.00", dealstage="closedwon",
            description=f"Monthly retainer {number + 1}.",
            project_start="2026-03-02", project_due="2026-06-26",
            owner_email="sam.lee@agency.example"))
    deals = [*SAMPLE_DEALS, *({"dealstage": "closedwon"},) * EXTRA_WON_DEALS]
    return {deal_id: apis.crm.deals[deal_id]["properties"]
            for deal_id, deal in zip(ids, deals) if deal["dealstage"] == "closedwon"}


def add_faults(apis: FakeApis) -> None:
    crm, asana = apis.crm, apis.asana
    crm.add_fault("rate_limit", SEARCH, seconds=0)
    crm.add_fault("expire_token", SEARCH, skip=2)  # the second page's first try
    crm.add_fault("server_error", CREATE_NOTE, times=2)
    crm.add_fault("rate_limit", CREATE_NOTE, ratio=0.2, times=None, seconds=0)
    # Applied, with the response sent after the 1 s read timeout: the notes
    # search finds it.
    crm.add_fault("timeout_after_apply", CREATE_NOTE, skip=4, seconds=1.5)
    asana.add_fault("rate_limit", CREATE_PROJECT, ratio=0.1, times=None, seconds=0)
    asana.add_fault("server_error", CREATE_PROJECT, skip=2)
    asana.add_fault("timeout_after_apply", CREATE_PROJECT, skip=5, seconds=1.5)
    asana.add_fault("server_error", LIST_PROJECTS)
    asana.add_fault("slow", LIST_PROJECTS, seconds=0.3)


def run_all(project: Path, state: StateStore) -> dict[str, FlowResult]:
    compiled = compile_project(project)
    assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
    results = PlanRunner(compiled.plan, project, state).run()
    return {result.flow: result for result in results}


def projects_tab(project: Path) -> dict[str, dict[str, Any]]:
    workbook = openpyxl.load_workbook(project / "out" / "closed-won-report.xlsx")
    rows = list(workbook["Projects"].iter_rows(values_only=True))
    header = rows[0]
    return {row[0]: dict(zip(header, row)) for row in rows[1:]}


def project_of(apis: FakeApis, deal_id: str) -> list[dict[str, Any]]:
    return [p for p in apis.asana.projects.values()
            if (p.get("external") or {}).get("gid") == deal_id]


def error_codes(result: FlowResult) -> list[tuple[str, str | None]]:
    return sorted((error["code"], error["record_key"]) for error in result.errors)


def test_closed_won_example_with_faults(tmp_path: Path, apis: FakeApis) -> None:
    project = copy_example(tmp_path)
    won = add_deals(apis)
    bad = next(deal_id for deal_id, deal in won.items()
               if deal["dealname"] == "Campaign launch")
    good = sorted(set(won) - {bad})
    add_faults(apis)
    state = StateStore(project / ".syncplan" / "state.db")

    first = run_all(project, state)
    handoff = first["deals_to_projects"]
    assert handoff.status == "succeeded", handoff.message
    assert handoff.read == len(won)
    assert error_codes(handoff) == [("dependency_missing", bad), ("http_400", bad)]
    assert handoff.created == 2 * len(good)
    for deal_id in good:
        assert len(project_of(apis, deal_id)) == 1
        assert len(apis.crm.notes_for(deal_id)) == 1
    assert project_of(apis, bad) == []
    assert len(apis.asana.projects) == len(good)
    assert len(apis.asana.tasks) == len(good)
    assert len(apis.crm.notes) == len(good)

    # Every fault did happen, and was survived.
    assert all(rule.fired >= 1 for rule in apis.crm.faults + apis.asana.faults)
    # One token for the read, one after it expired mid-read, one for the notes.
    assert apis.crm.token_requests == 3
    search_statuses = [entry.status for entry in apis.crm.requests(SEARCH)]
    assert search_statuses.count(429) == 1
    assert search_statuses.count(401) == 1
    assert search_statuses.count(200) == -(-len(won) // PAGE_SIZE)
    project_statuses = [entry.status for entry in apis.asana.requests(CREATE_PROJECT)]
    assert 429 in project_statuses
    assert 500 in project_statuses
    # The note whose response timed out was looked up, found and not resent.
    timed_out = [entry for entry in apis.crm.requests(CREATE_NOTE)
                 if entry.fault == "timeout_after_apply"]
    assert len(timed_out) == 1
    assert len(apis.crm.requests(SEARCH_NOTES)) >= 1

    report = first["projects_report"]
    assert report.status == "succeeded", report.message
    assert report.errors == []
    assert report.created == 2 * len(good)  # a row and a note per project
    rows = projects_tab(project)
    assert sorted(rows) == good
    acme = next(deal_id for deal_id in good if won[deal_id]["client_name"] == "Acme Retail")
    assert rows[acme]["Client"] == "Acme Retail"
    assert rows[acme]["Budget (GBP)"] == 48000
    assert rows[acme]["Project"] == "Acme Retail: Website rebuild"
    assert rows[acme]["Status"] == "not_set"
    assert rows[acme]["Project owner"] == "priya.shah@agency.example"
    assert rows[acme]["Link"] == project_of(apis, acme)[0]["permalink_url"]
    for deal_id in good:
        (note,) = apis.crm.notes_for(deal_id)
        link = project_of(apis, deal_id)[0]["permalink_url"]
        assert note["properties"]["hs_note_body"] == f"Delivery project: {link}"
        assert rows[deal_id]["Link"] == link

    # People work in the project tool; a search page repeats its cursor.
    acme_gid = project_of(apis, acme)[0]["gid"]
    apis.asana.set_status(acme_gid, "yellow")
    apis.asana.set_owner(acme_gid, "dana.wu@agency.example")
    apis.crm.clear_faults()
    apis.asana.clear_faults()
    apis.crm.add_fault("repeat_cursor", SEARCH, skip=1)
    second = run_all(project, state)
    handoff = second["deals_to_projects"]
    assert handoff.status == "succeeded", handoff.message
    assert ("http_pagination_loop", None) in error_codes(handoff)
    assert handoff.read < len(won)
    loop = next(e for e in handoff.errors if e["code"] == "http_pagination_loop")
    assert "which page 1 returned already" in loop["message"]
    assert handoff.created == 0
    assert second["projects_report"].created == 0

    apis.crm.clear_faults()
    third = run_all(project, state)
    handoff = third["deals_to_projects"]
    assert error_codes(handoff) == [("dependency_missing", bad), ("http_400", bad)]
    assert handoff.created == 0
    assert handoff.updated == 0
    assert handoff.unchanged == 2 * len(good)
    assert third["projects_report"].created == 0
    assert len(apis.asana.projects) == len(good)
    assert len(apis.asana.tasks) == len(good)
    assert len(apis.crm.notes) == len(good)
    rows = projects_tab(project)
    assert rows[acme]["Status"] == "at_risk"
    assert rows[acme]["Project owner"] == "dana.wu@agency.example"
    assert rows[acme]["Client"] == "Acme Retail"


def test_closed_won_owner_stays_with_tool(tmp_path: Path, apis: FakeApis) -> None:
    project = copy_example(tmp_path)
    won = add_deals(apis)
    state = StateStore(project / ".syncplan" / "state.db")
    run_all(project, state)
    deal_id = next(iter(sorted(won)))
    gid = project_of(apis, deal_id)[0]["gid"]
    apis.asana.set_owner(gid, "dana.wu@agency.example")
    apis.crm.update_deal(deal_id, amount="99000.00")
    second = run_all(project, state)
    assert second["deals_to_projects"].updated == 1
    updated = apis.asana.projects[gid]
    assert updated["notes"].startswith("Budget: GBP 99000.00")
    assert updated["owner"]["email"] == "dana.wu@agency.example"
    assert projects_tab(project)[deal_id]["Budget (GBP)"] == 99000


def test_closed_won_plan_ownership(tmp_path: Path) -> None:
    compiled = compile_project(EXAMPLE)
    assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
    assert compiled.diagnostics == []
    handoff = compiled.plan.flow("deals_to_projects")
    by_label = {f"{d.system}/{d.object}": d for d in handoff.destinations}
    assert list(by_label) == ["asana/projects", "asana/tasks"]
    written = {c.field for c in by_label["asana/projects"].columns}
    assert "status" not in written
    assert "project_owner" not in written
    report = compiled.plan.flow("projects_report")
    assert report.depends_on == ["deals_to_projects"]
    by_label = {f"{d.system}/{d.object}": d for d in report.destinations}
    assert list(by_label) == ["report/Projects", "crm/notes"]
    # The note names its deal by the key, which the CRM owns, and writes the
    # project tool's link.
    notes = by_label["crm/notes"]
    assert [c.field for c in notes.columns] == ["project_url"]
    assert notes.options["http"]["depends_on"] == []
    # HubSpot documents no idempotency key, so the note relies on a lookup.
    assert "idempotency_header" not in notes.options["http"]
    lookup = notes.options["http"]["lookup"]
    assert lookup["path"] == "/crm/v3/objects/notes/search"
    assert lookup["match"]["value"] == (
        notes.options["http"]["create"]["body"]["properties"]["hs_note_body"])


def test_slow_read_past_timeout_retried(tmp_path: Path, apis: FakeApis,
                                       caplog: pytest.LogCaptureFixture) -> None:
    project = copy_example(tmp_path)
    deal_ids = apis.add_sample_deals()
    won = [deal_id for deal_id, deal in zip(deal_ids, SAMPLE_DEALS)
           if deal["dealstage"] == "closedwon" and deal["dealname"] != "Campaign launch"]
    # The report's read of the projects gets its first response after 1.5 s,
    # past the 1 s read timeout. A GET is safe to resend, so it is retried.
    apis.asana.add_fault("slow", LIST_PROJECTS, seconds=1.5)
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    results = run_all(project, StateStore(project / ".syncplan" / "state.db"))
    report = results["projects_report"]
    assert report.status == "succeeded", report.message
    assert report.errors == []
    assert report.read == len(won)
    assert sorted(projects_tab(project)) == sorted(won)
    listed = apis.asana.requests(LIST_PROJECTS)
    assert [entry.fault for entry in listed] == ["slow", None]
    retried = [record.getMessage() for record in caplog.records
               if "failed with ReadTimeout; retrying" in record.getMessage()]
    assert len(retried) == 1
    assert retried[0].startswith(f"GET {apis.asana.api_url}/projects: attempt 1 of ")


def test_fake_servers_bind_loopback_only() -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.com"):
        for fake in (FakeCrm, FakeAsana, FakeServer):
            with pytest.raises(ValueError) as caught:
                fake(host)
            assert str(caught.value) == (f"the fake APIs bind to loopback only, not"
                                         f" {host!r}; use 127.0.0.1")
        with pytest.raises(ValueError):
            FakeApis(host)
    with FakeCrm("localhost") as crm:
        assert crm.url.startswith("http://localhost:")
        assert crm._server is not None
        assert crm._server.server_address[0] == "127.0.0.1"


def test_fake_crm_searches_notes_by_deal(apis: FakeApis) -> None:
    first, second = apis.crm.add_deal(dealname="A"), apis.crm.add_deal(dealname="B")
    session = requests.Session()
    token = session.post(apis.crm.url + "/oauth/v1/token", data={
        "grant_type": "refresh_token", "client_id": apis.crm_client_id,
        "client_secret": apis.crm_client_secret,
        "refresh_token": apis.crm_refresh_token}, timeout=5).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    for deal_id, body in ((first, "one"), (second, "two"), (first, "three")):
        created = session.post(apis.crm.url + "/crm/v3/objects/notes", json={
            "properties": {"hs_timestamp": "2026-01-01T00:00:00Z",
                           "hs_note_body": body},
            "associations": [{"to": {"id": deal_id}, "types": []}]}, timeout=5)
        assert created.status_code == 201

    def search(filters: list[dict[str, Any]]) -> requests.Response:
        return session.post(apis.crm.url + "/crm/v3/objects/notes/search", json={
            "filterGroups": [{"filters": filters}], "limit": 1}, timeout=5)

    by_deal = {"propertyName": "associations.deal", "operator": "EQ", "value": first}
    page = search([by_deal]).json()
    assert page["total"] == 2
    assert [note["properties"]["hs_note_body"] for note in page["results"]] == ["one"]
    assert "associated_deals" not in page["results"][0]
    assert page["paging"]["next"]["after"] == "1"
    body_three = {"propertyName": "hs_note_body", "operator": "EQ", "value": "three"}
    assert search([by_deal, body_three]).json()["total"] == 1
    rejected = search([dict(by_deal, operator="NEQ")])
    assert rejected.status_code == 400
    assert "takes operator EQ only" in rejected.json()["message"]
    session.close()


def test_demo_runs_twice_without_duplicates(tmp_path: Path) -> None:
    notes: list[str] = []
    report = run_closed_won(EXAMPLE, runs=2, folder=tmp_path, on_change=notes.append)
    first, second = report.runs
    assert [r.status for r in first + second] == ["succeeded"] * 4
    assert first[0].created == 8  # projects and tasks
    assert first[1].created == 8  # report rows and notes
    assert second[0].created == 0
    assert second[1].created == 0
    assert second[0].updated == 1
    assert second[1].updated == 1
    assert report.projects == 4
    assert report.notes == 4
    assert not report.temporary
    assert list(report.deliberate) == [deliberate_deal()]
    assert len(notes) == 2
    assert (report.folder / "out" / "closed-won-report.xlsx").is_file()


# --- the command ------------------------------------------------------------------

def demo_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``syncplan demo closed-won`` as a user would, in a process of its own."""
    script = Path(sys.executable).with_name("syncplan")
    command = [str(script)] if script.exists() else [sys.executable, "-m",
                                                     "sheets_addon"]
    completed = subprocess.run([*command, "demo", "closed-won", *map(str, args)],
                               capture_output=True, text=True, timeout=120,
                               check=False)
    assert "Traceback" not in completed.stdout + completed.stderr
    return completed


def deliberate_deal() -> str:
    """Return the id the fake CRM gives the sample deal with swapped dates."""
    index = next(i for i, deal in enumerate(SAMPLE_DEALS)
                 if deal["dealname"] == "Campaign launch")
    return str(1001 + index)


def test_demo_command_prints_errors_once() -> None:
    completed = demo_command()
    assert completed.returncode == 0, completed.stderr
    out, err = completed.stdout, completed.stderr
    assert "run 1 of 2:" in out
    assert "run 2 of 2:" in out
    # Each run's two record errors are printed once, under its table, and not
    # logged a second time.
    assert err.count("due_on: must be on or after start_on") == 2
    assert err.count("[dependency_missing]") == 2
    assert "WARNING" not in err
    deal_id = deliberate_deal()
    assert err.count(f"deal {deal_id} fails on purpose: 'Campaign launch' has its"
                     " due date 2026-04-01 before its start date 2026-04-30") == 1
    assert out.count("changed: ") == 2
    assert ("the fake project tool has 4 projects and 4 tasks, the fake CRM has 4"
            " notes") in out
    assert "was a temporary copy of the example and is deleted now" in out
    assert "run with --keep DIR to keep them" in out
    (wrote,) = {line for line in out.splitlines() if line.endswith(": report/Projects")}
    workbook = Path(wrote.removeprefix("wrote ").removesuffix(": report/Projects"))
    assert workbook.name == "closed-won-report.xlsx"
    assert not workbook.exists()


def test_demo_command_survives_faults() -> None:
    completed = demo_command("--faults", "--runs", "1")
    assert completed.returncode == 0, completed.stderr
    out, err = completed.stdout, completed.stderr
    assert "run 1 of 1:" in out
    assert "run 2 of" not in out
    # The retries and the lookups after dropped connections are logged.
    assert "failed with HTTP 429; retrying in 1.00 s (Retry-After)" in err
    assert "crm/notes: a create failed with ConnectionError and may have applied" in err
    assert "asana/projects: a create failed with ConnectionError" in err
    assert "the lookup found the record it made" in err
    assert ("the fake project tool has 4 projects and 4 tasks, the fake CRM has 4"
            " notes") in out
    assert err.count("due_on: must be on or after start_on") == 1
    assert "ambiguous_write" not in err


def test_demo_command_keeps_folder(tmp_path: Path) -> None:
    completed = demo_command("--keep", tmp_path / "kept", "--runs", "1")
    assert completed.returncode == 0, completed.stderr
    project = tmp_path / "kept" / "closed-won"
    assert f"the project, its report workbook and state are in {project}" in (
        completed.stdout)
    assert "temporary" not in completed.stdout
    assert (project / "out" / "closed-won-report.xlsx").is_file()
    assert (project / ".syncplan" / "state.db").is_file()


def test_demo_command_rejects_bad_example(tmp_path: Path) -> None:
    completed = demo_command("--example", tmp_path)
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"error: no closed-won example at"
                                       f" {str(tmp_path)!r}")



def test_demo_command_rejects_used_folder(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    (kept / "closed-won").mkdir(parents=True)
    (kept / "closed-won" / "notes.txt").write_text("an earlier demo\n", encoding="utf-8")

    completed = demo_command("--keep", kept, "--runs", "1")

    assert completed.returncode == 1
    assert completed.stderr.startswith(f"error: cannot keep the demo in {str(kept)!r}:"
                                       " the folder is not empty")
    assert "choose a new folder, or delete this one first" in completed.stderr
    assert "run 1 of" not in completed.stdout
    assert sorted(path.name for path in kept.rglob("*")) == ["closed-won", "notes.txt"]


def test_demo_command_keeps_empty_folder(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()

    completed = demo_command("--keep", kept, "--runs", "1")

    assert completed.returncode == 0, completed.stderr
    assert (kept / "closed-won" / ".syncplan" / "state.db").is_file()


def demo_result(flow: str, status: str = "succeeded",
                error_keys: tuple[str, ...] = ()) -> FlowResult:
    return FlowResult(flow=flow, run_id="r1", status=status, errors=[
        {"code": "remote_not_found", "record_key": key, "position": "x"}
        for key in error_keys])


def test_demo_report_problems() -> None:
    report = DemoReport(folder=Path("demo"), deliberate={"1005": "dates swapped"},
                        projects=4, expected_projects=4)
    report.runs = [[demo_result("deals", error_keys=("1005", "1005")),
                    demo_result("report")]]
    assert report.problems() == []

    report.runs.append([demo_result("deals", error_keys=("1005", "1001", "1002")),
                        demo_result("report", status="failed")])
    report.projects = 0

    assert report.problems() == [
        "flow 'deals' has 2 unexpected record error(s) in run 2 (first:"
        " remote_not_found at '1001')",
        "flow 'report' failed in run 2",
        "the fake project tool has 0 projects instead of 4"]


def test_demo_command_fails_on_unexpected_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from sheets_addon import cli as cli_module
    from sheets_addon.demo import closed_won

    def reject_project_creates(apis: FakeApis) -> None:
        apis.asana.add_fault("server_error", CREATE_PROJECT, skip=3, times=None)

    monkeypatch.setattr(closed_won, "inject_demo_faults", reject_project_creates)

    done = CliRunner().invoke(cli_module.cli, ["demo", "closed-won", "--faults",
                                               "--runs", "1"])

    assert done.exit_code == 1, done.output
    assert ("error: the demo did not go as designed: flow 'deals_to_projects' has"
            in done.stderr)
    assert ("error: the demo did not go as designed: the fake project tool has 3"
            " projects instead of 4") in done.stderr
