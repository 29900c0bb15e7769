"""The server's tables in the state store's SQLite file: jobs, API keys, webhook events.

The runtime's ``StateStore`` owns ``runs`` and ``errors``; the server keeps its
own tables beside them in the same file, so one file contains a project's whole
state and every server process on that file shares one queue.

- ``jobs``: one row per run the server queued. ``status`` is queued, running,
  succeeded, failed or interrupted. Two unique partial indexes allow at most one
  queued and at most one running job per flow, so SQLite itself stops a flow
  from running twice at once, across threads and processes. A job is claimed by
  one worker with a lease (``claimed_by``, ``lease_expires``); a lease that is
  not renewed in time marks the job interrupted.
- ``api_keys``: server-to-server callers. Only the SHA-256 of each key's secret
  part is stored; the key itself is shown once, when it is created.
- ``webhook_events``: the event ids received per system, unique, so a delivery
  repeated by the vendor starts no second run. Ids older than the retention
  window (7 days by default) are deleted, at most once an hour, while new
  events are recorded; an id repeated after that starts a run again.

Every change runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's
write lock first, so the read-then-write steps below are atomic across
processes. Reads run outside transactions on each thread's own connection (see
``connections.py``). A read that finds a flow's active job answers without the
write lock; finding none, the step reads again under it before inserting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sheets_addon.server.connections import ThreadConnections

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "interrupted")
COUNT_NAMES = ("read", "filtered", "created", "updated", "unchanged", "deleted",
               "failed", "seconds")
API_KEY_PREFIX = "spk"
WEBHOOK_RETENTION_SECONDS = 7 * 24 * 3600.0
PRUNE_INTERVAL_SECONDS = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    flow TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    retry_of TEXT,
    error_ids TEXT,
    resources TEXT NOT NULL DEFAULT '[]',
    requested_by TEXT NOT NULL,
    trigger TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    claimed_by TEXT,
    lease_expires REAL,
    counts TEXT,
    message TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_queued_per_flow
    ON jobs (flow) WHERE status = 'queued';
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_running_per_flow
    ON jobs (flow) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_by_flow ON jobs (flow, seq);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS webhook_events (
    system TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT,
    received_at TEXT NOT NULL,
    run_ids TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (system, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_events_by_time ON webhook_events (received_at);
"""

_JOB_COLUMNS = ("seq", "run_id", "flow", "kind", "status", "retry_of", "error_ids",
                "resources", "requested_by", "trigger", "queued_at", "started_at",
                "finished_at", "claimed_by", "lease_expires", "counts", "message")
_SELECT_JOB = f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs"
_SELECT_STORED_RUN = ("SELECT run_id, flow, status, started, finished, counts, message"
                      " FROM runs")


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _iso_time(posix: float) -> str:
    # The same format as utc_now, so stored times compare as strings.
    return dt.datetime.fromtimestamp(posix, dt.timezone.utc).isoformat(
        timespec="milliseconds")


@dataclass(frozen=True)
class Job:
    """One queued, running or finished run as the server tracks it."""

    seq: int
    run_id: str
    flow: str
    kind: str
    """run (a full run), retry (failed records of ``retry_of``) or rerun (a full
    run that retries an interrupted or failed ``retry_of``)."""
    status: str
    retry_of: str | None
    error_ids: list[str] | None
    resources: list[str]
    """Destination systems the run writes; two runs sharing one never overlap."""
    requested_by: str
    trigger: str
    queued_at: str
    started_at: str | None
    finished_at: str | None
    claimed_by: str | None
    lease_expires: float | None
    counts: dict[str, Any]
    message: str | None

    def as_run(self) -> dict[str, Any]:
        """Return the RUN object of the JSON API."""
        return {"id": self.run_id, "flow": self.flow, "status": self.status,
                "counts": full_counts(self.counts), "queued_at": self.queued_at,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "message": self.message, "retry_of": self.retry_of,
                "trigger": self.trigger}


@dataclass(frozen=True)
class JobRequest:
    """A request to queue a run of ``flow``, or a retry of one of its runs."""

    flow: str
    resources: Sequence[str]
    requested_by: str
    trigger: str = "api"
    kind: str = "run"
    retry_of: str | None = None
    error_ids: Sequence[str] | None = None


@dataclass(frozen=True)
class ApiKey:
    """An API key's record; the secret itself is never stored."""

    key_id: str
    name: str
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class Event:
    """One webhook event, recorded once per system by its id."""

    event_id: str
    event_type: str | None


def full_counts(counts: dict[str, Any] | None) -> dict[str, Any]:
    """Return every count the API reports, 0 where the run has none yet."""
    counts = counts or {}
    return {name: counts.get(name, 0) for name in COUNT_NAMES}


def _job(row: Sequence[Any]) -> Job:
    values = dict(zip(_JOB_COLUMNS, row))
    values["error_ids"] = (json.loads(values["error_ids"])
                           if values["error_ids"] is not None else None)
    values["resources"] = json.loads(values["resources"] or "[]")
    values["counts"] = json.loads(values["counts"] or "{}")
    return Job(**values)


class FlowBusy(Exception):
    """A job of the flow is queued or running, so another cannot be queued now."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"flow {job.flow!r} already has run {job.run_id!r}"
                         f" {job.status}")
        self.job = job


class ServerStore:
    """The server's tables, through one SQLite connection per thread."""

    def __init__(self, path: Path | str, *,
                 webhook_retention_seconds: float = WEBHOOK_RETENTION_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        """Open the store; ``clock`` returns the POSIX time for webhook events."""
        if webhook_retention_seconds <= 0:
            raise ValueError(f"webhook_retention_seconds={webhook_retention_seconds!r}"
                             " is invalid; give a positive number of seconds")
        self.webhook_retention_seconds = webhook_retention_seconds
        self._clock = clock
        self._next_prune = 0.0
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        db = self._connections.get()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)

    def close(self) -> None:
        self._connections.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Return a ``BEGIN IMMEDIATE`` transaction on this thread's connection."""
        return self._connections.write()

    def _read(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._connections.read(query, args)

    # --- jobs: queueing ---------------------------------------------------

    def enqueue(self, request: JobRequest, *, reuse_running: bool = True
                ) -> tuple[Job, bool]:
        """Queue a job unless the flow has an active one; return (job, reused).

        With ``reuse_running`` false a flow that is only running (nothing queued)
        gets a follow-up job, which starts when the running one ends: a webhook
        event that arrives mid-run must not be lost to a run that already read
        its source.
        """
        # Most requests for a busy flow get its active job back, so look for
        # one without the write lock first; _enqueue_in checks again under it.
        active = self._reusable(self._connections.get(), request.flow,
                                reuse_running)
        if active is not None:
            return active, True
        with self.transaction() as db:
            return self._enqueue_in(db, request, reuse_running)

    def enqueue_retry(self, request: JobRequest) -> Job:
        """Queue a retry; raise ``FlowBusy`` while the flow has an active job."""
        with self.transaction() as db:
            active = self._active_jobs(db, request.flow)
            if active:
                raise FlowBusy(active[0])
            job, _reused = self._enqueue_in(db, request, True)
            return job

    def _reusable(self, db: sqlite3.Connection, flow: str,
                  reuse_running: bool) -> Job | None:
        """Return the flow's queued job, else its running one if ``reuse_running``."""
        active = self._active_jobs(db, flow)
        queued = [job for job in active if job.status == "queued"]
        if queued:
            return queued[0]
        if active and reuse_running:
            return active[0]
        return None

    def _enqueue_in(self, db: sqlite3.Connection, request: JobRequest,
                    reuse_running: bool) -> tuple[Job, bool]:
        active = self._reusable(db, request.flow, reuse_running)
        if active is not None:
            return active, True
        run_id = uuid.uuid4().hex[:12]
        db.execute(
            "INSERT INTO jobs (run_id, flow, kind, status, retry_of, error_ids,"
            " resources, requested_by, trigger, queued_at)"
            " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
            (run_id, request.flow, request.kind, request.retry_of,
             json.dumps(list(request.error_ids))
             if request.error_ids is not None else None,
             json.dumps(sorted(set(request.resources))), request.requested_by,
             request.trigger, utc_now()))
        job = self._job_in(db, run_id)
        assert job is not None
        return job, False

    def _active_jobs(self, db: sqlite3.Connection, flow: str) -> list[Job]:
        rows = db.execute(f"{_SELECT_JOB} WHERE flow = ? AND status IN"
                          " ('queued', 'running') ORDER BY seq", (flow,)).fetchall()
        return [_job(row) for row in rows]

    def _job_in(self, db: sqlite3.Connection, run_id: str) -> Job | None:
        row = db.execute(f"{_SELECT_JOB} WHERE run_id = ?", (run_id,)).fetchone()
        return _job(row) if row else None

    # --- jobs: reading ----------------------------------------------------

    def job(self, run_id: str) -> Job | None:
        rows = self._read(f"{_SELECT_JOB} WHERE run_id = ?", (run_id,))
        return _job(rows[0]) if rows else None

    def last_runs(self, flows: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Return the RUN object of the latest run of each flow that has one.

        A flow's latest run is its latest job, unless the runtime's ``runs``
        table records a run no job tracks (one started from the command line)
        that started later.
        """
        has_runs = bool(self._read("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                   " AND name = 'runs'"))
        found: dict[str, dict[str, Any]] = {}
        for flow in flows:
            rows = self._read(f"{_SELECT_JOB} WHERE flow = ? ORDER BY seq DESC"
                              " LIMIT 1", (flow,))
            latest = _job(rows[0]).as_run() if rows else None
            untracked = self._last_untracked_run(flow) if has_runs else None
            if untracked is not None and (latest is None or _later(
                    untracked["started_at"],
                    latest["started_at"] or latest["queued_at"])):
                latest = untracked
            if latest is not None:
                found[flow] = latest
        return found

    def _last_untracked_run(self, flow: str) -> dict[str, Any] | None:
        rows = self._read(f"{_SELECT_STORED_RUN} WHERE flow = ? AND NOT EXISTS"
                          " (SELECT 1 FROM jobs WHERE jobs.run_id = runs.run_id)"
                          " ORDER BY started DESC LIMIT 1", (flow,))
        return _stored_run(rows[0]) if rows else None

    def jobs(self, status: str | None = None) -> list[Job]:
        if status is None:
            rows = self._read(f"{_SELECT_JOB} ORDER BY seq")
        else:
            rows = self._read(f"{_SELECT_JOB} WHERE status = ? ORDER BY seq",
                              (status,))
        return [_job(row) for row in rows]

    def count_jobs(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM jobs")[0][0])

    # --- jobs: workers ----------------------------------------------------

    def claim(self, worker: str, lease_seconds: float) -> Job | None:
        """Mark the oldest runnable queued job running for ``worker``; return it.

        A job is runnable when its flow has no running job and no running job
        writes one of its destination systems.
        """
        # Idle workers poll, so take the write lock only when a job is queued.
        if not self._read("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1"):
            return None
        with self.transaction() as db:
            running = db.execute("SELECT flow, resources FROM jobs"
                                 " WHERE status = 'running'").fetchall()
            busy_flows = {flow for flow, _ in running}
            busy_resources = {name for _, resources in running
                              for name in json.loads(resources or "[]")}
            for row in db.execute(f"{_SELECT_JOB} WHERE status = 'queued'"
                                  " ORDER BY seq").fetchall():
                job = _job(row)
                if job.flow in busy_flows or busy_resources & set(job.resources):
                    continue
                started = utc_now()
                db.execute("UPDATE jobs SET status = 'running', started_at = ?,"
                           " claimed_by = ?, lease_expires = ? WHERE run_id = ?",
                           (started, worker, time.time() + lease_seconds,
                            job.run_id))
                return self._job_in(db, job.run_id)
        return None

    def renew_leases(self, worker_prefix: str, lease_seconds: float) -> int:
        """Extend the leases of every running job claimed by this process."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_expires = ? WHERE status = 'running'"
                " AND claimed_by LIKE ? ESCAPE '\\'",
                (time.time() + lease_seconds, _like_prefix(worker_prefix)))
            return cursor.rowcount

    def finish(self, run_id: str, worker: str, status: str,
               counts: dict[str, Any] | None, message: str | None) -> bool:
        """Record the end of a job; return False when its lease was lost."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, counts = ?,"
                " message = ?, lease_expires = NULL WHERE run_id = ? AND"
                " claimed_by = ? AND status = 'running'",
                (status, utc_now(), json.dumps(counts or {}, sort_keys=True),
                 message, run_id, worker))
            return cursor.rowcount == 1

    def interrupt(self, run_ids: Iterable[str], message: str) -> list[str]:
        """Mark the given running jobs interrupted; return those that were running."""
        done = []
        with self.transaction() as db:
            for run_id in run_ids:
                cursor = db.execute(
                    "UPDATE jobs SET status = 'interrupted', finished_at = ?,"
                    " message = ?, lease_expires = NULL WHERE run_id = ? AND"
                    " status = 'running'", (utc_now(), message, run_id))
                if cursor.rowcount:
                    done.append(run_id)
        return done

    def expired_leases(self, now: float | None = None) -> list[Job]:
        """Return the running jobs whose lease ran out."""
        rows = self._read(f"{_SELECT_JOB} WHERE status = 'running' AND"
                          " lease_expires < ?", (now or time.time(),))
        return [_job(row) for row in rows]

    # --- API keys ---------------------------------------------------------

    def create_api_key(self, name: str) -> tuple[ApiKey, str]:
        """Create a key; return its record and the key, which is never shown again."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = ApiKey(key_id, name, utc_now(), None)
        with self.transaction() as db:
            db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)",
                       (key_id, name, _sha256(secret), record.created_at))
        return record, f"{API_KEY_PREFIX}_{key_id}_{secret}"

    def api_keys(self) -> list[ApiKey]:
        rows = self._read("SELECT key_id, name, created_at, revoked_at FROM api_keys"
                          " ORDER BY created_at, key_id")
        return [ApiKey(*row) for row in rows]

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key by id; return False when no active key has that id."""
        with self.transaction() as db:
            cursor = db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?"
                                " AND revoked_at IS NULL", (utc_now(), key_id))
            return cursor.rowcount == 1

    def check_api_key(self, presented: str) -> ApiKey | None:
        """Return the active key ``presented`` matches, or None.

        The key id part selects the row; the secret part is compared by hash in
        constant time, so the response time reveals nothing about the secret.
        """
        prefix, _, rest = presented.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != API_KEY_PREFIX or not key_id or not secret:
            return None
        rows = self._read("SELECT key_id, name, created_at, revoked_at, secret_sha256"
                          " FROM api_keys WHERE key_id = ?", (key_id,))
        if not rows:
            return None
        *fields, stored_hash = rows[0]
        if not hmac.compare_digest(stored_hash, _sha256(secret)):
            return None
        record = ApiKey(*fields)
        return record if record.revoked_at is None else None

    # --- webhook events ---------------------------------------------------

    def record_events(self, system: str, events: Sequence[Event],
                      requests_by_type: dict[str | None, list[JobRequest]]
                      ) -> tuple[list[Event], list[Job]]:
        """Store new event ids and queue the runs they start, in one transaction.

        ``requests_by_type`` maps an event type to the jobs it starts. Returns the
        events that were new and the jobs (queued or reused) they started.
        """
        fresh: list[Event] = []
        started: dict[str, Job] = {}
        now = self._clock()
        received = _iso_time(now)
        with self.transaction() as db:
            if now >= self._next_prune:
                self._prune_events(db, now)
                self._next_prune = now + PRUNE_INTERVAL_SECONDS
            for event in events:
                cursor = db.execute("INSERT OR IGNORE INTO webhook_events (system,"
                                    " event_id, event_type, received_at)"
                                    " VALUES (?, ?, ?, ?)",
                                    (system, event.event_id, event.event_type,
                                     received))
                if not cursor.rowcount:
                    continue
                fresh.append(event)
                run_ids = []
                for request in requests_by_type.get(event.event_type, []):
                    if request.flow not in started:
                        job, _reused = self._enqueue_in(db, request, False)
                        started[request.flow] = job
                    run_ids.append(started[request.flow].run_id)
                db.execute("UPDATE webhook_events SET run_ids = ? WHERE system = ?"
                           " AND event_id = ?",
                           (json.dumps(run_ids), system, event.event_id))
        return fresh, list(started.values())

    def _prune_events(self, db: sqlite3.Connection, now: float) -> None:
        cutoff = _iso_time(now - self.webhook_retention_seconds)
        cursor = db.execute("DELETE FROM webhook_events WHERE received_at < ?",
                            (cutoff,))
        if cursor.rowcount:
            logger.info("deleted %d webhook event id(s) received before %s",
                        cursor.rowcount, cutoff)

    def event_count(self, system: str) -> int:
        return int(self._read("SELECT COUNT(*) FROM webhook_events WHERE system = ?",
                              (system,))[0][0])

    # --- the runtime's tables, read only ------------------------------------

    def stored_run(self, run_id: str) -> dict[str, Any] | None:
        """Return a run that the runtime recorded but no job tracks (a CLI run)."""
        rows = self._read(f"{_SELECT_STORED_RUN} WHERE run_id = ?", (run_id,))
        return _stored_run(rows[0]) if rows else None

    def error_page(self, run_id: str, page: int, per_page: int
                   ) -> tuple[list[dict[str, Any]], int]:
        """Return one page of a run's error records and the total count."""
        total = int(self._read("SELECT COUNT(*) FROM errors WHERE run_id = ?",
                               (run_id,))[0][0])
        rows = self._read("SELECT error_id, record_key, field, code, message, raw,"
                          " position FROM errors WHERE run_id = ? ORDER BY error_id"
                          " LIMIT ? OFFSET ?",
                          (run_id, per_page, (page - 1) * per_page))
        names = ("id", "record_key", "field", "code", "message", "raw", "position")
        return [dict(zip(names, row)) for row in rows], total

    def error_ids(self, run_id: str) -> set[str]:
        return {row[0] for row in self._read("SELECT error_id FROM errors WHERE"
                                             " run_id = ?", (run_id,))}


def _stored_run(row: Sequence[Any]) -> dict[str, Any]:
    run_id, flow, status, started, finished, counts, message = row
    return {"id": run_id, "flow": flow, "status": status,
            "counts": full_counts(json.loads(counts or "{}")),
            "queued_at": started, "started_at": started,
            "finished_at": finished, "message": message, "retry_of": None,
            "trigger": "cli"}


def _later(first: str | None, second: str | None) -> bool:
    """Return whether ISO 8601 time ``first`` is after ``second``.

    An unreadable or missing ``first`` is never later, and anything readable is
    later than an unreadable ``second``.
    """
    first_moment = _parse_time(first)
    second_moment = _parse_time(second)
    if first_moment is None:
        return False
    if second_moment is None:
        return True
    return first_moment > second_moment


def _parse_time(text: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text or "")
    except ValueError:
        return None
    # The stores write UTC, so a time without a zone is UTC too.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
