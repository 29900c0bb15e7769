"""The durable job queue: restarts, leases, and two server processes on one store."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from sheets_addon.server import create_app
from sheets_addon.server.store import JobRequest, ServerStore
from support import LiveServer, open_gate, server_env, write_server_project

FINAL = ("succeeded", "failed", "interrupted")


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def job_status(state: Path, run_id: str) -> str | None:
    with sqlite3.connect(state) as db:
        row = db.execute("SELECT status FROM jobs WHERE run_id = ?",
                         (run_id,)).fetchone()
    return row[0] if row else None


def open_gate_when_waiting(root: Path) -> bool:
    return wait_for(lambda: open_gate(root), what="a run blocked on the gate")


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in server_env().items():
        monkeypatch.setenv(name, value)
    return write_server_project(tmp_path / "project")


def test_restart_marks_interrupted_and_resumes_queued(project: Path) -> None:
    state = project / ".syncplan" / "state.db"
    first_app = create_app(project, dev_mode=True, workers=1, lease_seconds=1.0,
                           poll_seconds=0.1)
    first = first_app.extensions["syncplan"]
    _record, key = first.store.create_api_key("tests")
    headers = {"X-Api-Key": key}
    server = LiveServer(first_app).start()
    slow = requests.post(server.url("/api/v1/flows/slow/runs"), headers=headers,
                         timeout=10).json()["run"]["id"]
    wait_for(lambda: job_status(state, slow) == "running", what="slow running")
    rows = requests.post(server.url("/api/v1/flows/rows/runs"), headers=headers,
                         timeout=10).json()["run"]["id"]
    assert job_status(state, rows) == "queued"  # the only worker is blocked

    server.stop()
    first.close(abandon=True)  # as if killed: leases stop being renewed
    second_app = create_app(project, dev_mode=True, workers=1, lease_seconds=1.0,
                            poll_seconds=0.1)
    second = second_app.extensions["syncplan"]
    server = LiveServer(second_app).start()
    try:
        wait_for(lambda: job_status(state, slow) == "interrupted",
                 what="slow interrupted")
        wait_for(lambda: job_status(state, rows) == "succeeded", what="rows resumed")
        assert open_gate(project)  # let the abandoned thread of the first app end
        time.sleep(0.3)
        assert job_status(state, slow) == "interrupted"  # its late end is ignored

        retry = requests.post(server.url(f"/api/v1/runs/{slow}/retry"),
                              headers=headers, timeout=10)
        assert retry.status_code == 202
        retry_id = retry.json()["run"]["id"]
        assert retry.json()["run"]["retry_of"] == slow
        open_gate_when_waiting(project)
        wait_for(lambda: job_status(state, retry_id) == "succeeded",
                 what="retry of the interrupted run")
        interrupted = requests.get(server.url(f"/api/v1/runs/{slow}"),
                                   headers=headers, timeout=10).json()["run"]
    finally:
        server.stop()
        second.close(wait_seconds=5)
        first.store.close()
        first.state.close()

    assert interrupted["status"] == "interrupted"
    assert "retry" in interrupted["message"]
    with sqlite3.connect(state) as db:
        stored = db.execute("SELECT status FROM runs WHERE run_id = ?",
                            (slow,)).fetchone()
        runs_of_rows = db.execute("SELECT COUNT(*) FROM runs WHERE flow = 'rows'"
                                  ).fetchone()[0]
    assert runs_of_rows == 1  # the queued run ran once, after the restart
    assert stored is not None


def test_graceful_stop_marks_running_interrupted(project: Path) -> None:
    state = project / ".syncplan" / "state.db"
    app = create_app(project, dev_mode=True, workers=1, poll_seconds=0.1)
    backend = app.extensions["syncplan"]
    job, _ = backend.store.enqueue(JobRequest(flow="slow", resources=["gated_out"],
                                              requested_by="test"))
    backend.pool.notify()
    wait_for(lambda: job_status(state, job.run_id) == "running", what="running")

    backend.close(wait_seconds=0.2)

    # The worker thread stays blocked on the gate, as it would until the
    # process exits; releasing it would let it touch the closed store.
    assert job_status(state, job.run_id) == "interrupted"
    with sqlite3.connect(state) as db:
        message = db.execute("SELECT message FROM jobs WHERE run_id = ?",
                             (job.run_id,)).fetchone()[0]
    assert "retry" in message


def test_claim_skips_flows_and_destinations_in_use(tmp_path: Path) -> None:
    store = ServerStore(tmp_path / "state.db")
    first, _ = store.enqueue(JobRequest("a", ["sheet"], "test"))
    follow_up, reused = store.enqueue(JobRequest("a", ["sheet"], "test"),
                                      reuse_running=False)
    shares_sheet, _ = store.enqueue(JobRequest("b", ["sheet"], "test"))
    other, _ = store.enqueue(JobRequest("c", ["other"], "test"))

    claimed = [store.claim("w", 60), store.claim("w", 60), store.claim("w", 60)]
    store.close()

    assert reused is True  # a queued job is never doubled
    assert follow_up.run_id == first.run_id
    assert claimed[0] is not None and claimed[0].run_id == first.run_id
    assert claimed[1] is not None and claimed[1].run_id == other.run_id
    assert claimed[2] is None  # b waits for the sheet, whatever the order
    assert shares_sheet.status == "queued"


def test_unique_index_blocks_second_running_job(tmp_path: Path) -> None:
    store = ServerStore(tmp_path / "state.db")
    store.enqueue(JobRequest("a", [], "test"))
    store.claim("w", 60)
    store.close()

    with sqlite3.connect(tmp_path / "state.db") as db:
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO jobs (run_id, flow, kind, status, requested_by,"
                       " trigger, queued_at) VALUES ('x', 'a', 'run', 'running',"
                       " 't', 'api', '2024-01-01')")


# --- real server processes -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(project: Path, state: Path, port: int, *extra: str
                 ) -> subprocess.Popen[bytes]:
    env = {**os.environ, **server_env()}
    process = subprocess.Popen(
        [sys.executable, "-m", "sheets_addon", "serve", str(project), "--dev",
         "--port", str(port), "--state", str(state), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()}")
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz",
                                timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(ready, timeout=30, what=f"server on port {port}")
    return process


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


def create_key(state: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "sheets_addon", "keys", "create",
                             "--name", "tests", "--state", str(state)],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_two_processes_never_run_a_flow_twice(project: Path) -> None:
    state = project / ".syncplan" / "state.db"
    key = create_key(state)
    ports = [free_port(), free_port()]
    processes = [start_server(project, state, port) for port in ports]
    flows = ["rows", "private", "deal_changes", "any_crm_event", "hook_deals"]
    try:
        def fire(index: int) -> int:
            port = ports[index % 2]
            flow = flows[index % len(flows)]
            time.sleep((index // 10) * 0.15)
            return requests.post(f"http://127.0.0.1:{port}/api/v1/flows/{flow}/runs",
                                 headers={"X-Api-Key": key}, timeout=10).status_code

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            statuses = list(pool.map(fire, range(100)))

        def settled() -> bool:
            with sqlite3.connect(state) as db:
                active = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN"
                                    " ('queued', 'running')").fetchone()[0]
            return active == 0

        wait_for(settled, timeout=60, what="every job to end")
    finally:
        for process in processes:
            stop_server(process)

    with sqlite3.connect(state) as db:
        jobs = db.execute("SELECT run_id, flow, status, started_at, finished_at,"
                          " claimed_by, resources FROM jobs ORDER BY started_at"
                          ).fetchall()
        runs = db.execute("SELECT run_id, COUNT(*) FROM runs GROUP BY run_id"
                          ).fetchall()
    assert set(statuses) <= {200, 202}
    assert statuses.count(202) == len(jobs)
    assert all(status == "succeeded" for _, _, status, *_ in jobs)
    assert {run_id for run_id, _ in runs} == {job[0] for job in jobs}
    assert all(count == 1 for _, count in runs)  # no run executed twice
    processes_used = {claimed.rsplit("/", 1)[0] for *_, claimed, _ in jobs}
    assert len(processes_used) == 2  # both servers worked on the one queue
    for flow in flows:
        spans = [(job[3], job[4]) for job in jobs if job[1] == flow]
        for (_, previous_end), (start, _) in zip(spans, spans[1:]):
            assert start >= previous_end, flow
    crm_spans = sorted((job[3], job[4]) for job in jobs if "crm_out" in job[6])
    for (_, previous_end), (start, _) in zip(crm_spans, crm_spans[1:]):
        assert start >= previous_end  # one destination written by one run at a time


def test_killed_process_run_interrupted_on_restart(project: Path) -> None:
    state = project / ".syncplan" / "state.db"
    key = create_key(state)
    headers = {"X-Api-Key": key}
    port = free_port()
    first = start_server(project, state, port, "--workers", "1")
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        slow = requests.post(f"{base}/flows/slow/runs", headers=headers,
                             timeout=10).json()["run"]["id"]
        wait_for(lambda: job_status(state, slow) == "running", what="slow running")
        private = requests.post(f"{base}/flows/private/runs", headers=headers,
                                timeout=10).json()["run"]["id"]
        time.sleep(0.3)
        queued_before_kill = job_status(state, private)
        first.kill()  # SIGKILL: no cleanup at all
        first.wait()
    finally:
        stop_server(first)
    port = free_port()
    second = start_server(project, state, port)
    try:
        # The first process is gone, so the restart needs no lease timeout.
        wait_for(lambda: job_status(state, slow) == "interrupted", timeout=10,
                 what="slow interrupted")
        wait_for(lambda: job_status(state, private) == "succeeded", timeout=20,
                 what="queued run resumed")
    finally:
        stop_server(second)
        open_gate(project)

    assert queued_before_kill == "queued"
