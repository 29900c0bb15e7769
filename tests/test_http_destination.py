"""The http destination writer, run through the compiler and the runner against the
fake CRM and project tool on loopback."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from compiler import compile_project
from compiler.plan import Plan, SystemPlan
from runtime.destinations import WriteContext
from runtime.destinations.http import HttpWriter, idempotency_value
from runtime.http import BucketRegistry
from runtime.references import resolve
from runtime.runner import FlowResult, PlanRunner
from runtime.sources import read_source
from runtime.sources.base import SourceContext, SourceRecord
from runtime.sources.http import reader
from runtime.state import StateStore
from sheets_addon.demo.fake_apis import FakeApis
from sheets_addon.demo.fake_server import Call, Reply

DEALS = [
    {"client": "Acme Retail", "title": "Website rebuild", "amount": "48000.00",
     "start": "2026-02-02", "due": "2026-05-29", "owner": "priya@agency.example"},
    {"client": "Northwind", "title": "Brand refresh", "amount": "18500.50",
     "start": "2026-02-09", "due": "2026-03-20", "owner": "tom@agency.example"},
    {"client": "Globex", "title": "SEO retainer", "amount": "9000",
     "start": "2026-01-05", "due": "2026-03-31", "owner": "sam@agency.example"},
]

PROJECT_BODY = {
    "data": {
        "workspace": "${env:ASANA_WORKSPACE}",
        "name": "{{ record.client }}: {{ record.title }}",
        "notes": "Budget {{ record.amount }}",
        "start_on": "{{ record.start }}",
        "due_on": "{{ record.due }}",
        "owner": "{{ record.owner }}",
        "external": {"gid": "{{ record.deal_id }}", "data": "crm-deal"},
    }
}
UPDATE_BODY = {"data": {"name": "{{ record.client }}: {{ record.title }}",
                        "notes": "Budget {{ record.amount }}",
                        "start_on": "{{ record.start }}", "due_on": "{{ record.due }}"}}
LOOKUP = {"method": "GET", "path": "/projects",
          "query": {"workspace": "${env:ASANA_WORKSPACE}", "limit": 2,
                    "opt_fields": "external"},
          "records": "data", "match": {"field": "external.gid",
                                       "value": "{{ record.deal_id }}"},
          "id": "gid", "next": "next_page.offset", "param": "offset"}
PROJECTS = {
    "system": "asana", "object": "projects", "mode": "upsert",
    "http": {"create": {"method": "POST", "path": "/projects", "body": PROJECT_BODY},
             "update": {"method": "PUT", "path": "/projects/{{ id }}",
                        "body": UPDATE_BODY},
             "id": "data.gid", "lookup": LOOKUP},
}
NOTES = {
    "system": "crm", "object": "notes", "mode": "create", "idempotency_key": "deal_id",
    "http": {"create": {"path": "/crm/v3/objects/notes", "body": {
        "properties": {"hs_timestamp": "{{ now }}",
                       "hs_note_body": "Project {{ written['asana/projects'] }}"},
        "associations": [{"to": {"id": "{{ record.deal_id }}"},
                          "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                     "associationTypeId": 214}]}]}},
             "id": "id", "idempotency_header": "Idempotency-Key"},
}
CREATE_PROJECT = "POST /api/1.0/projects"
UPDATE_PROJECT = "PUT /api/1.0/projects/{gid}"
LIST_PROJECTS = "GET /api/1.0/projects"
CREATE_NOTE = "POST /crm/v3/objects/notes"
FAST_RETRY = {"attempts": 4, "base_seconds": 0.01, "max_seconds": 0.05}


@pytest.fixture
def apis(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeApis() as fakes:
        for name, value in fakes.environment().items():
            monkeypatch.setenv(name, value)
        yield fakes


class Project:
    """A spec project in a temporary folder, with its deals file and state store."""

    def __init__(self, root: Path, apis: FakeApis, destinations: list[dict[str, Any]],
                 *, read_timeout: float = 5.0, retry: dict[str, Any] | None = None,
                 deals: list[dict[str, Any]] | None = None) -> None:
        self.root = root
        self.apis = apis
        self.deals = [dict(deal, deal_id=apis.crm.add_deal(dealname=deal["title"]))
                      for deal in copy.deepcopy(deals or DEALS)]
        self.write_deals()
        spec = _spec(destinations, read_timeout, retry or FAST_RETRY)
        (root / "syncplan.yaml").write_text(yaml.safe_dump(spec, sort_keys=False),
                                            encoding="utf-8")
        self.state = StateStore(root / "state.db")

    def write_deals(self) -> None:
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        (data / "deals.json").write_text(json.dumps(self.deals), encoding="utf-8")

    def run(self, *, dry_run: bool = False) -> FlowResult:
        compiled = compile_project(self.root)
        assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
        results = PlanRunner(compiled.plan, self.root, self.state,
                             dry_run=dry_run).run()
        assert len(results) == 1
        assert results[0].status == "succeeded", results[0].message
        return results[0]


def _spec(destinations: list[dict[str, Any]], read_timeout: float,
          retry: dict[str, Any]) -> dict[str, Any]:
    timeout = {"connect": 2, "read": read_timeout}
    return {
        "version": 1,
        "project": "http-destination-test",
        "systems": {
            "deals": {"kind": "json", "path": "data/deals.json"},
            "asana": {"kind": "http", "base_url": "${env:ASANA_BASE_URL}",
                      "timeout": timeout,
                      "auth": {"type": "bearer", "token": "${env:ASANA_TOKEN}"}},
            "crm": {"kind": "http", "base_url": "${env:CRM_BASE_URL}",
                    "timeout": timeout,
                    "auth": {"type": "oauth2_refresh_token",
                             "token_url": "${env:CRM_BASE_URL}/oauth/v1/token",
                             "client_id": "${env:CRM_CLIENT_ID}",
                             "client_secret": "${env:CRM_CLIENT_SECRET}",
                             "refresh_token": "${env:CRM_REFRESH_TOKEN}"}},
        },
        "entities": {"deal": {"key": "deal_id", "fields": {
            "deal_id": {"type": "string", "owner": "deals", "required": True},
            "client": {"type": "string", "owner": "deals"},
            "title": {"type": "string", "owner": "deals"},
            "amount": {"type": "money", "owner": "deals", "currency": "GBP"},
            "start": {"type": "date", "owner": "deals"},
            "due": {"type": "date", "owner": "deals"},
            "owner": {"type": "email", "owner": "deals"},
        }}},
        "flows": {"handoff": {
            "source": {"system": "deals"},
            "map": {"entity": "deal", "fields": {name: name for name in (
                "deal_id", "client", "title", "amount", "start", "due", "owner")}},
            "destinations": destinations,
            "on_error": {"retry": retry},
        }},
    }


def codes(result: FlowResult) -> list[str]:
    return sorted(error["code"] for error in result.errors)


def projects_of(apis: FakeApis, deal_id: str) -> list[dict[str, Any]]:
    return [project for project in apis.asana.projects.values()
            if (project.get("external") or {}).get("gid") == deal_id]


# --- create, update, upsert ------------------------------------------------------

def test_upsert_creates_then_updates_only_changed(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS])
    first = project.run()
    assert first.created == 3
    assert first.updated == 0
    assert first.errors == []
    assert len(apis.asana.projects) == 3
    project.deals[1]["amount"] = "19999.00"
    project.write_deals()
    second = project.run()
    assert second.created == 0
    assert second.updated == 1
    assert second.unchanged == 2
    assert len(apis.asana.projects) == 3
    assert len(apis.asana.requests(UPDATE_PROJECT)) == 1
    changed = projects_of(apis, project.deals[1]["deal_id"])[0]
    assert changed["notes"] == "Budget 19999.00"


def test_upsert_body_keeps_types(tmp_path: Path, apis: FakeApis) -> None:
    captured: list[Any] = []

    def echo(call: Call) -> Reply:
        captured.append(call.body)
        return Reply(201, {"data": {"gid": f"echo-{len(captured)}"}})

    apis.asana.route("POST", "/api/1.0/echo", echo)
    destination = {"system": "asana", "object": "echo", "mode": "create",
                   "idempotency_key": "deal_id",
                   "http": {"create": {"path": "/echo", "body": {
                       "amount": "{{ record.amount }}", "start": "{{ record.start }}",
                       "label": "{{ record.client }} {{ record.amount }}",
                       "fixed": 3, "flag": True}}, "id": "data.gid"}}
    Project(tmp_path, apis, [destination]).run()
    assert captured[0] == {"amount": 48000, "start": "2026-02-02",
                           "label": "Acme Retail 48000.00", "fixed": 3, "flag": True}
    assert captured[1]["amount"] == 18500.5


def test_create_mode_leaves_mapped_records(tmp_path: Path, apis: FakeApis) -> None:
    destination = dict(PROJECTS, mode="create", idempotency_key="deal_id")
    project = Project(tmp_path, apis, [destination])
    assert project.run().created == 3
    project.deals[0]["title"] = "Renamed"
    project.write_deals()
    second = project.run()
    assert second.created == 0
    assert second.unchanged == 3
    assert apis.asana.requests(UPDATE_PROJECT) == []


def test_update_mode_reports_unmapped_keys(tmp_path: Path, apis: FakeApis) -> None:
    http = {key: value for key, value in PROJECTS["http"].items()
            if key not in ("create", "id", "lookup")}
    destination = dict(PROJECTS, mode="update", http=http)
    result = Project(tmp_path, apis, [destination]).run()
    assert codes(result) == ["key_not_found"] * 3
    assert result.updated == 0
    assert apis.asana.requests(UPDATE_PROJECT) == []


def test_update_mode_lookup_maps_existing(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS])
    project.run()
    http = {key: value for key, value in PROJECTS["http"].items()
            if key not in ("create", "id")}
    (tmp_path / "state.db").unlink()
    project.state = StateStore(tmp_path / "fresh-state.db")
    project.deals[2]["title"] = "SEO retainer, year two"
    project.write_deals()
    spec = _spec([dict(PROJECTS, mode="update", http=http)], 5.0, FAST_RETRY)
    (tmp_path / "syncplan.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    result = project.run()
    assert result.errors == []
    assert result.updated == 3  # no hashes in the new state file yet
    assert len(apis.asana.projects) == 3
    renamed = projects_of(apis, project.deals[2]["deal_id"])[0]
    assert renamed["name"] == "Globex: SEO retainer, year two"


# --- id map and unchanged detection --------------------------------------------------

def test_id_map_survives_reopened_state(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS])
    project.run()
    project.state.close()
    reopened = StateStore(tmp_path / "state.db")
    ids = reopened.remote_ids("asana", "projects")
    assert sorted(ids) == sorted(deal["deal_id"] for deal in project.deals)
    for deal in project.deals:
        assert projects_of(apis, deal["deal_id"])[0]["gid"] == ids[deal["deal_id"]]
    project.state = reopened
    second = project.run()
    assert second.created == 0
    assert second.unchanged == 3


def test_unchanged_records_send_nothing(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS])
    project.run()
    before = len(apis.asana.requests())
    second = project.run()
    assert second.unchanged == 3
    assert len(apis.asana.requests()) == before


def test_changed_template_sends_update(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS])
    project.run()
    changed = copy.deepcopy(PROJECTS)
    changed["http"]["update"]["body"]["data"]["notes"] = "Budget GBP {{ record.amount }}"
    spec = _spec([changed], 5.0, FAST_RETRY)
    (tmp_path / "syncplan.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    second = project.run()
    assert second.updated == 3
    assert all(p["notes"].startswith("Budget GBP ") for p in apis.asana.projects.values())


def test_dry_run_sends_no_write(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS, NOTES])
    preview = project.run(dry_run=True)
    assert [(p.destination, p.created) for p in preview.previews] == [
        ("asana/projects", 3), ("crm/notes", 3)]
    assert preview.errors == []
    assert apis.asana.requests() == []
    assert apis.crm.requests(CREATE_NOTE) == []
    assert project.state.remote_ids("asana", "projects") == {}


# --- duplicates after ambiguous failures ----------------------------------------------

def test_idempotency_header_replay_makes_one_note(tmp_path: Path, apis: FakeApis) -> None:
    apis.crm.add_fault("drop_after_apply", CREATE_NOTE)
    project = Project(tmp_path, apis, [PROJECTS, NOTES])
    result = project.run()
    assert result.errors == []
    posts = apis.crm.requests(CREATE_NOTE)
    assert len(posts) == 4  # the dropped one, its resend, two more deals
    assert posts[0].fault == "drop_after_apply"
    first_deal = project.deals[0]["deal_id"]
    assert len(apis.crm.notes_for(first_deal)) == 1
    assert len(apis.crm.notes) == 3


def test_idempotency_value_stable_per_record() -> None:
    first = idempotency_value("handoff", "crm/notes", "1001")
    assert first == idempotency_value("handoff", "crm/notes", "1001")
    assert first != idempotency_value("handoff", "crm/notes", "1002")
    assert first != idempotency_value("other_flow", "crm/notes", "1001")
    assert first.startswith("syncplan-")


def test_timed_out_create_looked_up_not_resent(tmp_path: Path, apis: FakeApis) -> None:
    apis.asana.add_fault("timeout_after_apply", CREATE_PROJECT, skip=1, seconds=1.5)
    project = Project(tmp_path, apis, [PROJECTS], read_timeout=0.5)
    result = project.run()
    assert result.errors == []
    assert result.created == 3
    assert len(apis.asana.requests(CREATE_PROJECT)) == 3  # the timed-out one not resent
    assert len(apis.asana.requests(LIST_PROJECTS)) >= 1
    for deal in project.deals:
        assert len(projects_of(apis, deal["deal_id"])) == 1
    ids = project.state.remote_ids("asana", "projects")
    timed_out = project.deals[1]["deal_id"]
    assert ids[timed_out] == projects_of(apis, timed_out)[0]["gid"]
    assert project.run().created == 0


def test_failed_lookup_retried_before_next_create(tmp_path: Path,
                                                  apis: FakeApis) -> None:
    apis.asana.add_fault("timeout_after_apply", CREATE_PROJECT, seconds=1.5)
    apis.asana.add_fault("server_error", LIST_PROJECTS, times=None)
    project = Project(tmp_path, apis, [PROJECTS], read_timeout=0.5)
    first = project.run()
    assert codes(first) == ["lookup_failed"]
    assert first.errors[0]["record_key"] == project.deals[0]["deal_id"]
    assert len(apis.asana.projects) == 3  # the timed-out create did apply
    apis.asana.clear_faults()
    second = project.run()
    assert second.errors == []
    assert second.created == 0
    for deal in project.deals:
        assert len(projects_of(apis, deal["deal_id"])) == 1
    assert len(project.state.remote_ids("asana", "projects")) == 3


class _Crash(BaseException):
    """Stands for the process dying: nothing in syncplan catches it."""


def test_crash_before_id_stored_looked_up(tmp_path: Path, apis: FakeApis,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any) -> None:
        raise _Crash("the process died after the create applied")

    project = Project(tmp_path, apis, [PROJECTS])
    stores_id = StateStore.set_remote_id
    monkeypatch.setattr(StateStore, "set_remote_id", crash)
    compiled = compile_project(tmp_path)
    assert compiled.plan is not None
    with pytest.raises(_Crash):
        PlanRunner(compiled.plan, tmp_path, project.state).run()
    monkeypatch.setattr(StateStore, "set_remote_id", stores_id)
    assert len(apis.asana.projects) == 1  # applied, and its id never stored
    project.state.close()
    project.state = StateStore(tmp_path / "state.db")

    result = project.run()
    assert result.errors == []
    assert result.created == 2
    assert result.updated == 1  # the adopted record, whose last update is unknown
    assert len(apis.asana.requests(CREATE_PROJECT)) == 3  # not 4
    assert len(apis.asana.requests(LIST_PROJECTS)) == 1  # only the crashed key
    for deal in project.deals:
        assert len(projects_of(apis, deal["deal_id"])) == 1
    assert len(project.state.remote_ids("asana", "projects")) == 3


def _syncplan_command() -> list[str]:
    script = Path(sys.executable).with_name("syncplan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sheets_addon"]


def test_killed_process_rerun_looks_up(tmp_path: Path, apis: FakeApis) -> None:
    """The server applies the first create, then kills the client before responding."""
    project = Project(tmp_path, apis, [PROJECTS])
    project.state.close()
    client: dict[str, subprocess.Popen[str]] = {}
    index = next(i for i, route in enumerate(apis.asana.routes)
                 if route[2] == CREATE_PROJECT)
    method, pattern, name, create = apis.asana.routes[index]

    def create_then_kill(call: Call) -> Reply:
        reply = create(call)
        process = client.pop("process", None)
        if process is not None:
            os.kill(process.pid, signal.SIGKILL)
        return reply

    apis.asana.routes[index] = (method, pattern, name, create_then_kill)
    with apis.asana.lock:  # the create takes this lock, so it waits for the Popen
        client["process"] = subprocess.Popen(
            [*_syncplan_command(), "run", str(tmp_path), "--state",
             str(tmp_path / "state.db")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process = client["process"]
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert len(apis.asana.projects) == 1

    project.state = StateStore(tmp_path / "state.db")
    result = project.run()
    assert result.errors == []
    assert len(apis.asana.requests(CREATE_PROJECT)) == 3
    assert len(apis.asana.requests(LIST_PROJECTS)) == 1
    for deal in project.deals:
        assert len(projects_of(apis, deal["deal_id"])) == 1


def test_rejected_create_clears_pending(tmp_path: Path, apis: FakeApis) -> None:
    deals = copy.deepcopy(DEALS)
    deals[1]["due"] = "2026-01-01"  # the project tool rejects it with a 400
    project = Project(tmp_path, apis, [PROJECTS], deals=deals)
    assert codes(project.run()) == ["http_400"]
    second = project.run()
    assert codes(second) == ["http_400"]
    # A create that the API rejected is not looked up before it is sent again.
    assert apis.asana.requests(LIST_PROJECTS) == []


def test_ambiguous_create_without_safeguard_reported(tmp_path: Path,
                                                     apis: FakeApis) -> None:
    http = {key: value for key, value in PROJECTS["http"].items() if key != "lookup"}
    apis.asana.add_fault("drop_after_apply", CREATE_PROJECT)
    result = Project(tmp_path, apis, [dict(PROJECTS, http=http)]).run()
    assert codes(result) == ["ambiguous_write"]
    message = result.errors[0]["message"]
    assert message.startswith(f"POST {apis.asana.api_url}/projects may have created"
                              " the record in asana/projects: it failed with"
                              " ConnectionError after the request was sent")
    assert "If the record is there, delete it before the next run" in message
    assert "on_ambiguous" not in message
    assert result.created == 2


# --- write-back ---------------------------------------------------------------

def test_write_back_once_over_three_runs(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS, NOTES])
    results = [project.run() for _ in range(3)]
    assert [r.created for r in results] == [6, 0, 0]
    assert [r.unchanged for r in results] == [0, 6, 6]
    for deal in project.deals:
        notes = apis.crm.notes_for(deal["deal_id"])
        assert len(notes) == 1
        gid = projects_of(apis, deal["deal_id"])[0]["gid"]
        assert notes[0]["properties"]["hs_note_body"] == f"Project {gid}"
    assert len(apis.crm.requests(CREATE_NOTE)) == 3


def test_write_back_waits_for_failed_project(tmp_path: Path, apis: FakeApis) -> None:
    deals = copy.deepcopy(DEALS)
    deals[0]["due"] = "2026-01-01"  # before its start: the project tool rejects it
    project = Project(tmp_path, apis, [PROJECTS, NOTES], deals=deals)
    first = project.run()
    assert codes(first) == ["dependency_missing", "http_400"]
    assert apis.crm.notes_for(project.deals[0]["deal_id"]) == []
    project.deals[0]["due"] = "2026-06-30"
    project.write_deals()
    second = project.run()
    assert second.errors == []
    assert second.created == 2
    assert len(apis.crm.notes_for(project.deals[0]["deal_id"])) == 1


# --- errors, retries, auth ----------------------------------------------------------

def test_429_and_500_are_retried(tmp_path: Path, apis: FakeApis) -> None:
    apis.asana.add_fault("rate_limit", CREATE_PROJECT, times=2, seconds=0)
    apis.asana.add_fault("server_error", CREATE_PROJECT, skip=2, times=1)
    apis.crm.add_fault("server_error", CREATE_NOTE, times=2)
    project = Project(tmp_path, apis, [PROJECTS, NOTES])
    result = project.run()
    assert result.errors == []
    assert result.created == 6
    statuses = [entry.status for entry in apis.asana.requests(CREATE_PROJECT)]
    assert statuses.count(429) == 2
    assert statuses.count(500) == 1
    assert statuses.count(201) == 3
    assert len(apis.asana.projects) == 3
    assert len(apis.crm.notes) == 3


def test_slow_update_past_timeout_retried(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS], read_timeout=0.5)
    project.run()
    apis.asana.add_fault("slow", UPDATE_PROJECT, seconds=0.8)
    project.deals[0]["amount"] = "50000.00"
    project.write_deals()
    result = project.run()
    assert result.errors == []
    assert result.updated == 1
    # A PUT is idempotent, so the one whose response came too late is resent.
    assert [e.fault for e in apis.asana.requests(UPDATE_PROJECT)] == ["slow", None]
    assert projects_of(apis, project.deals[0]["deal_id"])[0]["notes"] == (
        "Budget 50000.00")


def test_slow_update_always_reported(tmp_path: Path, apis: FakeApis) -> None:
    project = Project(tmp_path, apis, [PROJECTS], read_timeout=0.5,
                      deals=[dict(DEALS[0])])
    project.run()
    apis.asana.add_fault("slow", UPDATE_PROJECT, seconds=0.8, times=None)
    project.deals[0]["amount"] = "50000.00"
    project.write_deals()
    result = project.run()
    assert codes(result) == ["request_failed"]
    message = result.errors[0]["message"]
    assert f"PUT {apis.asana.api_url}/projects/" in message
    assert "ReadTimeout" in message
    assert result.updated == 0
    assert len(apis.asana.requests(UPDATE_PROJECT)) == FAST_RETRY["attempts"]
    # The update was not recorded as sent, so the next run sends it again.
    apis.asana.clear_faults()
    assert project.run().updated == 1


def test_4xx_becomes_error_record(tmp_path: Path, apis: FakeApis) -> None:
    deals = copy.deepcopy(DEALS)
    deals[1]["due"] = "2026-01-01"
    result = Project(tmp_path, apis, [PROJECTS], deals=deals).run()
    assert codes(result) == ["http_400"]
    error = result.errors[0]
    assert "due_on: must be on or after start_on" in error["message"]
    assert error["position"] == "asana/projects"
    assert result.created == 2
    assert len(apis.asana.projects) == 2


def test_outage_stops_writing_after_three(tmp_path: Path, apis: FakeApis) -> None:
    apis.asana.add_fault("rate_limit", CREATE_PROJECT, times=None, seconds=0)
    deals = [dict(DEALS[0], title=f"Deal {n}") for n in range(5)]
    project = Project(tmp_path, apis, [PROJECTS], deals=deals,
                      retry={"attempts": 2, "base_seconds": 0.01, "max_seconds": 0.01})
    result = project.run()
    assert codes(result) == ["not_sent"] * 2 + ["request_failed"] * 3
    assert len(apis.asana.requests(CREATE_PROJECT)) == 6


def test_expired_token_refreshed_once(tmp_path: Path, apis: FakeApis) -> None:
    apis.crm.add_fault("expire_token", CREATE_NOTE, skip=1)
    project = Project(tmp_path, apis, [PROJECTS, NOTES])
    result = project.run()
    assert result.errors == []
    assert apis.crm.token_requests == 2
    assert [e.status for e in apis.crm.requests(CREATE_NOTE)] == [201, 401, 201, 201]
    assert len(apis.crm.notes) == 3


def test_rejected_credentials_fail_destination(tmp_path: Path, apis: FakeApis,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASANA_TOKEN", "not-the-token")
    project = Project(tmp_path, apis, [PROJECTS])
    compiled = compile_project(tmp_path)
    assert compiled.plan is not None
    result = PlanRunner(compiled.plan, tmp_path, project.state).run()[0]
    assert result.status == "failed"
    assert "returned HTTP 401" in (result.message or "")
    assert len(apis.asana.requests(CREATE_PROJECT)) == 1


def test_request_to_other_host_not_sent(tmp_path: Path, apis: FakeApis) -> None:
    elsewhere = {"system": "asana", "object": "elsewhere", "mode": "create",
                 "idempotency_key": "deal_id",
                 "http": {"create": {"path": apis.crm.url + "/crm/v3/objects/notes",
                                     "body": {"x": "{{ record.title }}"}},
                          "id": "id"}}
    encoded = copy.deepcopy(PROJECTS)
    encoded["http"]["create"]["path"] = "/projects/{{ key }}"
    encoded["object"] = "encoded"
    apis.asana.route("POST", "/api/1.0/projects/{key}",
                     lambda call: Reply(201, {"data": {"gid": call.params["key"]}}))
    deals = [dict(DEALS[0])]
    result = Project(tmp_path, apis, [elsewhere, encoded], deals=deals).run()
    assert codes(result) == ["host_not_allowed"]
    assert "is not on the origin of `base_url`" in result.errors[0]["message"]
    assert apis.crm.requests(CREATE_NOTE) == []
    assert result.created == 1


def test_path_values_percent_encoded(tmp_path: Path, apis: FakeApis) -> None:
    seen: list[str] = []

    def record_path(call: Call) -> Reply:
        seen.append(call.path)
        return Reply(201, {"data": {"gid": "g1"}})

    apis.asana.route("POST", "/api/1.0/items/{key}", record_path)
    destination = {"system": "asana", "object": "items", "mode": "create",
                   "idempotency_key": "deal_id",
                   "http": {"create": {"path": "/items/{{ key }}", "body": {}},
                            "id": "data.gid"}}
    project = Project(tmp_path, apis, [destination], deals=[dict(DEALS[0])])
    project.deals[0]["deal_id"] = "../../crm/v3/objects/notes"
    project.write_deals()
    result = project.run()
    assert result.errors == []
    assert seen == ["/api/1.0/items/..%2F..%2Fcrm%2Fv3%2Fobjects%2Fnotes"]


def test_token_never_logged(tmp_path: Path, apis: FakeApis,
                            caplog: pytest.LogCaptureFixture) -> None:
    def echo_auth(call: Call) -> Reply:
        return Reply(422, {"message": f"bad request from {call.headers['authorization']}"})

    apis.asana.route("POST", "/api/1.0/echo", echo_auth)
    apis.asana.add_fault("rate_limit", CREATE_PROJECT, times=1, seconds=0)
    echo = {"system": "asana", "object": "echo", "mode": "create",
            "idempotency_key": "deal_id",
            "http": {"create": {"path": "/echo", "body": {}}, "id": "data.gid"}}
    caplog.set_level(logging.DEBUG)
    project = Project(tmp_path, apis, [PROJECTS, echo, NOTES])
    result = project.run()
    assert codes(result) == ["http_422"] * 3
    assert "Bearer ***" in result.errors[0]["message"]
    secrets = [apis.asana_token, apis.crm_client_secret, apis.crm_refresh_token,
               *apis.crm.access_tokens]
    stored = json.dumps(project.state.errors(result.run_id))
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in json.dumps(result.errors)
        assert secret not in stored
    assert "retrying" in caplog.text


# --- rate limit ---------------------------------------------------------------

class FakeClock:
    """A monotonic clock that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _kickoff_project(root: Path) -> Plan:
    """Compile a flow that reads the projects of the fake project tool and writes
    a kick-off task to each, so one system (2 requests a second) is read and written.
    """
    spec = {
        "version": 1,
        "project": "shared-budget",
        "systems": {"asana": {
            "kind": "http", "base_url": "${env:ASANA_BASE_URL}",
            "auth": {"type": "bearer", "token": "${env:ASANA_TOKEN}"},
            "rate_limit": {"requests": 2, "per": "second"},
            "streams": {"projects": {
                "path": "/projects",
                "query": {"workspace": "${env:ASANA_WORKSPACE}", "limit": 1},
                "records": "data",
                "pagination": {"type": "cursor", "next": "next_page.offset",
                               "param": "offset"},
                "fields": {"gid": "string", "name": "string"}}}}},
        "entities": {"project": {"key": "gid", "fields": {
            "gid": {"type": "string", "owner": "asana", "required": True},
            "name": {"type": "string", "owner": "asana"}}}},
        "flows": {"kickoff": {
            "source": {"system": "asana", "stream": "projects"},
            "map": {"entity": "project", "fields": {"gid": "gid", "name": "name"}},
            "destinations": [{
                "system": "asana", "object": "tasks", "mode": "create",
                "idempotency_key": "gid",
                "http": {"create": {"path": "/tasks", "body": {"data": {
                    "name": "Kick-off", "projects": ["{{ record.gid }}"]}}},
                    "id": "data.gid"}}]}},
    }
    (root / "syncplan.yaml").write_text(yaml.safe_dump(spec, sort_keys=False),
                                        encoding="utf-8")
    compiled = compile_project(root)
    assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
    return compiled.plan


def _resolved(system: SystemPlan, root: Path) -> SystemPlan:
    settings = {name: resolve(value, root) if isinstance(value, str) else value
                for name, value in system.settings.items()}
    return system.model_copy(update={"settings": settings})


def _write_kickoffs(plan: Plan, root: Path, gids: list[str],
                    options: dict[str, Any]) -> int:
    """Write one kick-off task per project gid; return how many were created."""
    flow = plan.flow("kickoff")
    system = _resolved(plan.systems["asana"], root)
    records = [(gid, {"gid": gid}) for gid in gids]
    context = WriteContext(root=root, run_id="run-1", now=dt.datetime.now(dt.UTC),
                           state=StateStore(":memory:"), options=options)
    written = HttpWriter(system, root).write(flow, flow.destinations[0], records,
                                             context)
    assert written.problems == []
    return written.created


def _add_projects(apis: FakeApis, count: int) -> list[str]:
    client = requests.Session()
    gids = []
    for number in range(count):
        response = client.post(
            apis.asana.api_url + "/projects",
            json={"data": {"name": f"Project {number}",
                           "workspace": apis.asana.workspace}},
            headers={"Authorization": f"Bearer {apis.asana_token}"}, timeout=5)
        gids.append(response.json()["data"]["gid"])
    client.close()
    return gids


def test_destination_bucket_paces_writes(tmp_path: Path, apis: FakeApis,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    registry = BucketRegistry(clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(BucketRegistry, "shared", staticmethod(lambda: registry))
    plan = _kickoff_project(tmp_path)
    gids = _add_projects(apis, 4)
    # No http_buckets option: the destination takes its bucket from the shared
    # registry, at 2 requests a second, so 0.5 s between requests.
    assert _write_kickoffs(plan, tmp_path, gids, {}) == 4
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert len(registry) == 1


def test_reads_and_writes_share_budget(tmp_path: Path, apis: FakeApis) -> None:
    clock = FakeClock()
    registry = BucketRegistry(clock=clock, sleep=clock.sleep)
    plan = _kickoff_project(tmp_path)
    _add_projects(apis, 3)
    options = {"http_buckets": registry}
    context = SourceContext(base_dir=tmp_path, now=dt.datetime.now(dt.UTC),
                            options=dict(options))
    items = list(read_source(_resolved(plan.systems["asana"], tmp_path), "projects",
                             context))
    gids = [item.data["gid"] for item in items if isinstance(item, SourceRecord)]
    assert len(gids) == 3
    assert len(apis.asana.requests("GET /api/1.0/projects")) == 3  # one per page
    assert _write_kickoffs(plan, tmp_path, gids, dict(options)) == 3
    # Six requests through one bucket: five waits. Two buckets would wait four.
    assert clock.sleeps == [0.5] * 5
    assert len(registry) == 1


def test_source_uses_shared_registry() -> None:
    assert reader._BUCKETS is BucketRegistry.shared()


# --- the compiler ---------------------------------------------------------------

def _diagnostics(tmp_path: Path, destination: dict[str, Any]) -> list[tuple[str, str]]:
    spec = _spec([destination], 5.0, FAST_RETRY)
    spec["systems"]["sheet"] = {"kind": "sheets", "spreadsheet": "out/report.xlsx"}
    (tmp_path / "syncplan.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "deals.json").write_text("[]", encoding="utf-8")
    result = compile_project(tmp_path)
    return sorted((d.code, d.message) for d in result.diagnostics)


@pytest.mark.parametrize(("change", "code", "text"), [
    ({"system": "sheet"}, "E105", "has 'http' settings, but system 'sheet'"),
    ({"mode": "append"}, "E104", "mode 'append' is not supported"),
    ({"http": {"create": PROJECTS["http"]["create"], "id": "data.gid"}}, "E103",
     "needs 'http.update'"),
    ({"fields": ["deal_id", "title"]}, "E403", "reads record.client"),
    ({"http": dict(PROJECTS["http"], create=dict(
        PROJECTS["http"]["create"], headers={"Authorization": "Bearer abc123"}))},
     "E501", "'Authorization' in the headers"),
    ({"http": dict(PROJECTS["http"], create=dict(
        PROJECTS["http"]["create"], body={"name": "{{ written['crm/deals'] }}"}))},
     "E105", "written['crm/deals'] names no destination"),
    ({"http": dict(PROJECTS["http"], create=dict(
        PROJECTS["http"]["create"], body={"name": "{{ recrd.title }}"}))},
     "E403", "unknown variable 'recrd'"),
])
def test_compiler_rejects_bad_http_destination(tmp_path: Path, change: dict[str, Any],
                                               code: str, text: str) -> None:
    destination = {**PROJECTS, **change}
    found = _diagnostics(tmp_path, destination)
    assert any(c == code and text in message for c, message in found), found


def test_compiler_lowers_http_options(tmp_path: Path) -> None:
    spec = _spec([PROJECTS, NOTES], 5.0, FAST_RETRY)
    (tmp_path / "syncplan.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "deals.json").write_text("[]", encoding="utf-8")
    result = compile_project(tmp_path)
    assert result.plan is not None, [d.to_text() for d in result.diagnostics]
    projects, notes = result.plan.flow("handoff").destinations
    assert projects.options["http"]["create"]["method"] == "POST"
    assert projects.options["http"]["update"]["method"] == "PUT"
    assert projects.options["http"]["depends_on"] == []
    assert notes.options["http"]["depends_on"] == ["asana/projects"]
    assert notes.options["http"]["create"]["method"] == "POST"
    assert [c.field for c in projects.columns] == [
        "deal_id", "client", "title", "amount", "start", "due", "owner"]
    assert [c.field for c in notes.columns] == ["deal_id"]
    assert notes.key == ["deal_id"]
