"""The backend's JSON API over real HTTP on loopback, authenticated by API keys."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from sheets_addon.server import create_app
from sheets_addon.server.openapi import openapi_document
from support import LiveServer, open_gate, server_env, write_server_project

FINAL = ("succeeded", "failed", "interrupted")


class Client:
    """A requests session aimed at one live backend with one API key."""

    def __init__(self, server: LiveServer, key: str, root: Path, backend: Any) -> None:
        self.server = server
        self.key = key
        self.root = root
        self.backend = backend
        self.session = requests.Session()
        self.session.headers["X-Api-Key"] = key

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.server.url(path), timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.server.url(path), timeout=10, **kwargs)

    def wait(self, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/api/v1/runs/{run_id}").json()["run"]
            if run["status"] in FINAL:
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not end within {timeout} s")

    def job_rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / ".syncplan" / "state.db") as db:
            return db.execute("SELECT run_id, flow, status FROM jobs ORDER BY seq"
                              ).fetchall()


def start_backend(root: Path, **options: Any) -> tuple[LiveServer, Any, str]:
    app = create_app(root, dev_mode=True, poll_seconds=0.2, **options)
    backend = app.extensions["syncplan"]
    _record, key = backend.store.create_api_key("tests")
    return LiveServer(app).start(), backend, key


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    for name, value in server_env().items():
        monkeypatch.setenv(name, value)
    root = write_server_project(tmp_path / "project")
    server, backend, key = start_backend(root)
    try:
        yield Client(server, key, root, backend)
    finally:
        server.stop()
        open_gate(root)
        backend.close(wait_seconds=5)


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    document = openapi_document()
    registry = Registry().with_resource("urn:openapi",
                                        DRAFT202012.create_resource(document))
    schema = {"$ref": f"urn:openapi#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


# --- health and the OpenAPI document ------------------------------------------------


def test_healthz_answers_ok(client: Client) -> None:
    response = requests.get(client.server.url("/healthz"), timeout=5)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_document_is_valid_openapi_31(client: Client) -> None:
    response = requests.get(client.server.url("/api/v1/openapi.json"), timeout=5)

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate_openapi(document)
    assert {"/flows", "/flows/{flow_id}/runs", "/runs/{run_id}",
            "/runs/{run_id}/errors", "/runs/{run_id}/retry",
            "/hooks/{system}"} <= set(document["paths"])


def test_answers_match_openapi_schemas(client: Client) -> None:
    started = client.post("/api/v1/flows/rows/runs")
    run = client.wait(started.json()["run"]["id"])
    flows = client.get("/api/v1/flows").json()
    errors = client.get(f"/api/v1/runs/{run['id']}/errors").json()
    missing = client.get("/api/v1/runs/nope").json()

    schema_validator("RunAnswer").validate(started.json())
    schema_validator("RunAnswer").validate({"run": run})
    for flow in flows["flows"]:
        schema_validator("Flow").validate(flow)
    schema_validator("ErrorPage").validate(errors)
    schema_validator("Error").validate(missing)


# --- flows and runs ------------------------------------------------------------------


def test_list_flows_shows_every_flow_to_api_keys(client: Client) -> None:
    response = client.get("/api/v1/flows")

    assert response.status_code == 200
    flows = {flow["id"]: flow for flow in response.json()["flows"]}
    assert set(flows) == {"rows", "private", "slow", "deal_changes",
                          "any_crm_event", "hook_deals"}
    assert flows["rows"]["description"] == "Rows for the team."
    assert flows["rows"]["trigger"] == {"kind": "manual"}
    assert flows["deal_changes"]["trigger"] == {
        "kind": "webhook", "system": "crm", "event": "deal.propertyChange"}
    assert flows["rows"]["last_run"] is None


def test_list_flows_includes_last_run(client: Client) -> None:
    run_id = client.post("/api/v1/flows/rows/runs").json()["run"]["id"]
    client.wait(run_id)

    flows = {flow["id"]: flow for flow in client.get("/api/v1/flows").json()["flows"]}

    assert flows["rows"]["last_run"]["id"] == run_id
    assert flows["rows"]["last_run"]["status"] == "succeeded"
    assert flows["private"]["last_run"] is None


def test_start_run_queues_and_completes(client: Client) -> None:
    response = client.post("/api/v1/flows/rows/runs")

    assert response.status_code == 202
    queued = response.json()["run"]
    assert queued["flow"] == "rows"
    assert queued["status"] in ("queued", "running")
    assert "reused" not in response.json()
    run = client.wait(queued["id"])
    assert run["status"] == "succeeded"
    assert run["counts"]["read"] == 3
    assert run["counts"]["created"] == 2
    assert run["counts"]["failed"] == 1
    assert run["started_at"] is not None
    assert run["finished_at"] >= run["started_at"]
    assert (client.root / "out" / "report.xlsx").is_file()


def test_start_run_reuses_active_run(client: Client) -> None:
    first = client.post("/api/v1/flows/slow/runs")
    second = client.post("/api/v1/flows/slow/runs")

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["reused"] is True
    assert second.json()["run"]["id"] == first.json()["run"]["id"]
    assert len([row for row in client.job_rows() if row[1] == "slow"]) == 1


def test_start_run_twenty_concurrent_posts_make_one_job(client: Client) -> None:
    def post(_: int) -> requests.Response:
        return requests.post(client.server.url("/api/v1/flows/slow/runs"),
                             headers={"X-Api-Key": client.key}, timeout=10)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(202) == 1
    assert statuses.count(200) == 19
    assert len({response.json()["run"]["id"] for response in responses}) == 1
    assert len([row for row in client.job_rows() if row[1] == "slow"]) == 1


def test_start_run_unknown_flow_is_404(client: Client) -> None:
    response = client.post("/api/v1/flows/nope/runs")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "'nope'" in response.json()["error"]["message"]
    assert client.job_rows() == []


def test_start_run_body_checks(client: Client) -> None:
    cases = [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}},
         400, "invalid_json"),
        ({"json": {"unexpected": 1}}, 400, "invalid_body"),
        ({"data": b"a=1", "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type"),
    ]
    for kwargs, status, code in cases:
        response = client.post("/api/v1/flows/rows/runs", **kwargs)
        assert response.status_code == status, kwargs
        assert response.json()["error"]["code"] == code, kwargs
    assert client.job_rows() == []
    assert client.post("/api/v1/flows/rows/runs", json={}).status_code == 202


def test_body_over_one_mebibyte_is_413(client: Client) -> None:
    response = client.post("/api/v1/flows/rows/runs", data=b"x" * (1024 * 1024 + 1),
                           headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert client.job_rows() == []


def test_wrong_method_is_405_json(client: Client) -> None:
    response = client.session.delete(client.server.url("/api/v1/flows/rows/runs"),
                                     timeout=5)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_unknown_path_is_404_json(client: Client) -> None:
    response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_get_run_unknown_is_404(client: Client) -> None:
    response = client.get("/api/v1/runs/doesnotexist")

    assert response.status_code == 404
    assert "'doesnotexist'" in response.json()["error"]["message"]


# --- errors and retry ----------------------------------------------------------------


def test_run_errors_pages(client: Client) -> None:
    run = client.wait(client.post("/api/v1/flows/rows/runs").json()["run"]["id"])

    first = client.get(f"/api/v1/runs/{run['id']}/errors?page=1&per_page=1").json()
    second = client.get(f"/api/v1/runs/{run['id']}/errors?page=2&per_page=1").json()

    assert first["total"] == 1
    assert first["page"] == 1
    assert first["per_page"] == 1
    assert len(first["errors"]) == 1
    error = first["errors"][0]
    assert set(error) == {"id", "record_key", "field", "code", "message", "raw",
                          "position"}
    assert error["field"] == "id"
    assert error["raw"] == "x"
    assert error["position"] == "rows.csv:4"
    assert second["errors"] == []


def test_run_errors_bad_paging_is_400(client: Client) -> None:
    run = client.wait(client.post("/api/v1/flows/rows/runs").json()["run"]["id"])

    for query in ("page=0", "per_page=501", "page=abc"):
        response = client.get(f"/api/v1/runs/{run['id']}/errors?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "bad_request"


def test_retry_all_errors_runs_retry(client: Client) -> None:
    original = client.wait(client.post("/api/v1/flows/rows/runs").json()["run"]["id"])

    response = client.post(f"/api/v1/runs/{original['id']}/retry")

    assert response.status_code == 202
    retry = client.wait(response.json()["run"]["id"])
    assert retry["retry_of"] == original["id"]
    assert retry["status"] == "succeeded"
    assert retry["counts"]["read"] == 1  # only the failed record, not the file
    assert retry["counts"]["failed"] == 1


def test_retry_chosen_error_ids(client: Client) -> None:
    original = client.wait(client.post("/api/v1/flows/rows/runs").json()["run"]["id"])
    error_id = client.get(f"/api/v1/runs/{original['id']}/errors").json()[
        "errors"][0]["id"]

    response = client.post(f"/api/v1/runs/{original['id']}/retry",
                           json={"error_ids": [error_id]})

    assert response.status_code == 202
    retry = client.wait(response.json()["run"]["id"])
    assert retry["counts"]["read"] == 1


def test_retry_unknown_error_id_is_400(client: Client) -> None:
    original = client.wait(client.post("/api/v1/flows/rows/runs").json()["run"]["id"])
    before = client.job_rows()

    response = client.post(f"/api/v1/runs/{original['id']}/retry",
                           json={"error_ids": ["nope"]})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_error_id"
    assert client.job_rows() == before


def test_retry_rejects_bad_bodies(client: Client) -> None:
    original = client.wait(client.post("/api/v1/flows/rows/runs").json()["run"]["id"])

    for body in ({"error_ids": []}, {"error_ids": "abc"}, {"other": 1}):
        response = client.post(f"/api/v1/runs/{original['id']}/retry", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_body", body


def test_retry_active_run_is_409(client: Client) -> None:
    run_id = client.post("/api/v1/flows/slow/runs").json()["run"]["id"]

    response = client.post(f"/api/v1/runs/{run_id}/retry")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_active"


def test_retry_while_flow_busy_is_409(client: Client) -> None:
    run_id = client.post("/api/v1/flows/slow/runs").json()["run"]["id"]
    assert open_gate_when_waiting(client.root)
    finished = client.wait(run_id)
    client.post("/api/v1/flows/slow/runs")  # blocks on the gate again

    response = client.post(f"/api/v1/runs/{finished['id']}/retry")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "flow_busy"


def test_retry_unknown_run_is_404(client: Client) -> None:
    response = client.post("/api/v1/runs/nope/retry")

    assert response.status_code == 404


def open_gate_when_waiting(root: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if open_gate(root):
            return True
        time.sleep(0.05)
    return False


# --- rate limits, failures and logs ----------------------------------------------------


def test_rate_limit_answers_429(tmp_path: Path) -> None:
    root = write_server_project(tmp_path / "project", gate=False)
    server, backend, key = start_backend(root, rate_limit_burst=3,
                                         rate_limit_per_second=0.5)
    try:
        statuses = [requests.get(server.url("/api/v1/flows"),
                                 headers={"X-Api-Key": key}, timeout=5)
                    for _ in range(4)]
    finally:
        server.stop()
        backend.close()

    assert [response.status_code for response in statuses] == [200, 200, 200, 429]
    limited = statuses[-1]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 2


def test_internal_error_is_500_without_details(client: Client,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture
                                               ) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(client.backend.store, "last_runs", broken)
    with caplog.at_level(logging.ERROR, logger="sheets_addon"):
        response = client.get("/api/v1/flows")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert response.headers["X-Request-Id"] in response.json()["error"]["message"]
    assert "hunter2" in caplog.text  # the log keeps the details for operators


def test_logs_name_runs_but_never_keys(client: Client,
                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        run_id = client.post("/api/v1/flows/rows/runs").json()["run"]["id"]
        client.wait(run_id)
        retry_id = client.post(f"/api/v1/runs/{run_id}/retry").json()["run"]["id"]
        client.wait(retry_id)
        client.session.headers["X-Api-Key"] = client.key + "x"
        client.get("/api/v1/flows")

    assert f"run {run_id} of flow rows queued" in caplog.text
    assert f"run {retry_id} of flow rows queued" in caplog.text
    assert f"retry run {run_id}" in caplog.text
    secret_part = client.key.rsplit("_", 1)[1]
    assert secret_part not in caplog.text
    assert client.key not in caplog.text


def test_run_started_by_cli_is_visible(client: Client) -> None:
    from compiler import compile_project
    from runtime.runner import PlanRunner

    plan = compile_project(client.root).plan
    assert plan is not None
    result = PlanRunner(plan, client.root, client.backend.state).run_flow(
        plan.flow("private"), run_id="cli-run-1")

    response = client.get("/api/v1/runs/cli-run-1")

    assert result.status == "succeeded"
    assert response.status_code == 200
    assert response.json()["run"]["status"] == "succeeded"
    assert response.json()["run"]["trigger"] == "cli"
    assert response.json()["run"]["counts"]["created"] == 2


def run_from_cli(client: Client, flow: str, run_id: str,
                 now: dt.datetime | None = None) -> None:
    from compiler import compile_project
    from runtime.runner import PlanRunner

    plan = compile_project(client.root).plan
    assert plan is not None
    result = PlanRunner(plan, client.root, client.backend.state, now=now).run_flow(
        plan.flow(flow), run_id=run_id)
    assert result.status == "succeeded"


def last_runs(client: Client) -> dict[str, Any]:
    return {flow["id"]: flow["last_run"]
            for flow in client.get("/api/v1/flows").json()["flows"]}


def test_list_flows_last_run_from_cli(client: Client) -> None:
    run_from_cli(client, "private", "cli-only")

    last = last_runs(client)

    assert last["private"]["id"] == "cli-only"
    assert last["private"]["trigger"] == "cli"
    assert last["private"]["status"] == "succeeded"
    assert last["private"]["counts"]["created"] == 2
    assert last["rows"] is None
    schema_validator("Run").validate(last["private"])


def test_list_flows_last_run_is_latest(client: Client) -> None:
    # The runtime stores start times to the second, so the CLI runs are
    # placed a minute before and after the server's run.
    now = dt.datetime.now(dt.timezone.utc)
    run_from_cli(client, "private", "cli-earlier", now - dt.timedelta(minutes=1))
    server_run = client.post("/api/v1/flows/private/runs").json()["run"]["id"]
    client.wait(server_run)
    after_server = last_runs(client)["private"]["id"]
    run_from_cli(client, "private", "cli-later", now + dt.timedelta(minutes=1))

    assert after_server == server_run
    assert last_runs(client)["private"]["id"] == "cli-later"


def test_serve_without_client_id_is_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from sheets_addon.cli import cli

    monkeypatch.delenv("SYNCPLAN_OAUTH_CLIENT_ID", raising=False)
    root = write_server_project(tmp_path / "project", gate=False)

    result = CliRunner().invoke(cli, ["serve", str(root), "--port", "0"])

    assert result.exit_code == 2
    assert "--client-id" in result.stderr
    assert "SYNCPLAN_OAUTH_CLIENT_ID" in result.stderr
    assert "--dev" in result.stderr
    assert not (root / ".syncplan").exists()
