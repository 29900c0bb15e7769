"""The server store under contention: reads without the write lock, wake-ups of workers.

A second SQLite connection that holds the write lock plays the part of another
server process in the middle of a write. The store's busy timeout is cut to a
fraction of a second, so a step that wrongly waits for that lock fails with
"database is locked" instead of hanging.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sheets_addon.server import connections
from sheets_addon.server.connections import StoreClosed
from sheets_addon.server.queue import Outcome, WorkerPool
from sheets_addon.server.store import Job, JobRequest, ServerStore


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerStore]:
    monkeypatch.setattr(connections, "BUSY_TIMEOUT_SECONDS", 0.2)
    opened = ServerStore(tmp_path / "state.db")
    yield opened
    opened.close()


@pytest.fixture()
def other_writer(store: ServerStore) -> Iterator[sqlite3.Connection]:
    """A connection holding SQLite's write lock on the store's file, like another process."""
    db = sqlite3.connect(store.path, isolation_level=None, timeout=0.2)
    yield db
    if db.in_transaction:
        db.execute("ROLLBACK")
    db.close()


def test_enqueue_reuses_without_write_lock(store: ServerStore,
                                           other_writer: sqlite3.Connection) -> None:
    first, _ = store.enqueue(JobRequest("deals", ["sheet"], "test"))
    other_writer.execute("BEGIN IMMEDIATE")

    again, reused = store.enqueue(JobRequest("deals", ["sheet"], "test"))

    assert reused is True
    assert again.run_id == first.run_id


def test_enqueue_new_job_needs_write_lock(store: ServerStore,
                                          other_writer: sqlite3.Connection) -> None:
    other_writer.execute("BEGIN IMMEDIATE")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.enqueue(JobRequest("deals", ["sheet"], "test"))
    other_writer.execute("ROLLBACK")
    job, reused = store.enqueue(JobRequest("deals", ["sheet"], "test"))

    assert reused is False
    assert store.jobs() == [job]


def test_enqueue_rechecks_under_write_lock(store: ServerStore,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process queues a job between the read and the write lock.
    first, _ = store.enqueue(JobRequest("deals", ["sheet"], "test"))
    monkeypatch.setattr(store, "_reusable",
                        _miss_once(store._reusable))  # type: ignore[attr-defined]

    again, reused = store.enqueue(JobRequest("deals", ["sheet"], "test"))

    assert reused is True
    assert again.run_id == first.run_id
    assert store.count_jobs() == 1


def _miss_once(reusable: Any) -> Any:
    calls = []

    def patched(*args: Any) -> Job | None:
        calls.append(args)
        return None if len(calls) == 1 else reusable(*args)

    return patched


def test_idle_claim_needs_no_write_lock(store: ServerStore,
                                        other_writer: sqlite3.Connection) -> None:
    other_writer.execute("BEGIN IMMEDIATE")

    assert store.claim("w", 60) is None


def test_reads_not_blocked_by_own_writer(store: ServerStore) -> None:
    job, _ = store.enqueue(JobRequest("deals", ["sheet"], "test"))
    in_transaction = threading.Event()
    read_done = threading.Event()
    found: list[Job | None] = []
    read_during_write: list[bool] = []

    def write() -> None:
        with store.transaction():
            in_transaction.set()
            read_during_write.append(read_done.wait(5))

    def read() -> None:
        in_transaction.wait(5)
        found.append(store.job(job.run_id))
        read_done.set()

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert read_during_write == [True]
    assert found == [job]


def test_connections_of_ended_threads_closed(store: ServerStore) -> None:
    def read() -> None:
        store.jobs()

    for _ in range(5):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()

    # Each new thread closed the connection of the one before; the last one's
    # waits for the next thread, beside this thread's own.
    open_threads = list(store._connections._open)  # type: ignore[attr-defined]
    assert len(open_threads) == 2
    assert threading.current_thread() in open_threads


def test_closed_store_opens_nothing(tmp_path: Path) -> None:
    store = ServerStore(tmp_path / "state.db")
    store.close()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            store.jobs()
        except BaseException as exc:  # noqa: BLE001 (recorded for the assert)
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()

    assert len(errors) == 1
    assert isinstance(errors[0], StoreClosed)


# --- waking workers -------------------------------------------------------------------


class BlockingExecutor:
    """Runs jobs by waiting for ``release``; records which jobs started."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, job: Job) -> Outcome:
        with self._lock:
            self.started.append(job.run_id)
        self.release.wait(30)
        return Outcome("succeeded", {}, None)


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_one_notify_reaches_every_idle_worker(tmp_path: Path) -> None:
    store = ServerStore(tmp_path / "state.db")
    executor = BlockingExecutor()
    # A poll far longer than the test: only notify() can start the jobs.
    pool = WorkerPool(store, state=None, execute=executor,  # type: ignore[arg-type]
                      workers=3, poll_seconds=600)
    pool.start()
    try:
        time.sleep(0.3)  # the workers find nothing and go idle
        jobs = [store.enqueue(JobRequest(flow, [flow], "test"))[0]
                for flow in ("a", "b", "c")]
        pool.notify()
        all_started = wait_until(lambda: len(executor.started) == 3)
    finally:
        executor.release.set()
        pool.stop(wait_seconds=5)
        store.close()

    assert all_started
    assert sorted(executor.started) == sorted(job.run_id for job in jobs)
