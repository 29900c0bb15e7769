"""The state store: runs, error records, cursors, canonical records, written keys.

SQLite by default, one file per project (``.syncplan/state.db`` under the project
root unless ``--state`` says otherwise). Every write happens inside a transaction
so a crash leaves either the old state or the new one.

Tables:

- ``runs``: one row per run of a flow, with its status and counts.
- ``errors``: every error record of every run, never deleted. ``error_id`` is
  stable for the same problem of the same record, so a problem that repeats on
  every run is one error, seen again, not a new one each time.
- ``cursors``: the incremental cursor of each flow and stream.
- ``records``: the canonical records each flow produced, as JSON, read by lookups
  and by flows whose source is an entity.
- ``written_keys``: the keys of rows syncplan wrote to each destination object;
  ``mirror`` deletes only rows whose key is here.
- ``id_map``: for destinations that name records by their own ids (REST APIs),
  the id each source key was created as, so a rerun updates instead of creating.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    plan_hash TEXT NOT NULL,
    counts TEXT NOT NULL DEFAULT '{}',
    message TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, started);
CREATE TABLE IF NOT EXISTS errors (
    run_id TEXT NOT NULL,
    error_id TEXT NOT NULL,
    flow TEXT NOT NULL,
    record_key TEXT,
    field TEXT,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    raw TEXT,
    position TEXT,
    record TEXT,
    created TEXT NOT NULL,
    PRIMARY KEY (run_id, error_id)
);
CREATE INDEX IF NOT EXISTS errors_by_flow ON errors (flow, error_id);
CREATE TABLE IF NOT EXISTS cursors (
    flow TEXT NOT NULL,
    stream TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (flow, stream)
);
CREATE TABLE IF NOT EXISTS records (
    entity TEXT NOT NULL,
    record_key TEXT NOT NULL,
    flow TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (entity, flow, record_key)
);
CREATE TABLE IF NOT EXISTS id_map (
    system TEXT NOT NULL,
    object TEXT NOT NULL,
    record_key TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    PRIMARY KEY (system, object, record_key)
);
CREATE TABLE IF NOT EXISTS written_keys (
    system TEXT NOT NULL,
    object TEXT NOT NULL,
    record_key TEXT NOT NULL,
    PRIMARY KEY (system, object, record_key)
);
"""


class StateStore:
    """A SQLite state store; safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- runs -------------------------------------------------------------

    def start_run(self, run_id: str, flow: str, started: str, plan_hash: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO runs (run_id, flow, status, started, plan_hash)"
                       " VALUES (?, ?, 'running', ?, ?)",
                       (run_id, flow, started, plan_hash))

    def finish_run(self, run_id: str, status: str, finished: str,
                   counts: Mapping[str, Any], message: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status = ?, finished = ?, counts = ?,"
                       " message = ? WHERE run_id = ?",
                       (status, finished, json.dumps(dict(counts), sort_keys=True),
                        message, run_id))

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT run_id, flow, status, started, finished,"
                                   " plan_hash, counts, message FROM runs"
                                   " WHERE run_id = ?", (run_id,)).fetchone()
        return _run_row(row) if row else None

    def runs(self, flow: str | None = None) -> list[dict[str, Any]]:
        query = ("SELECT run_id, flow, status, started, finished, plan_hash, counts,"
                 " message FROM runs")
        args: tuple[Any, ...] = ()
        if flow is not None:
            query += " WHERE flow = ?"
            args = (flow,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY started, run_id", args)
            return [_run_row(row) for row in rows.fetchall()]

    # --- errors -----------------------------------------------------------

    def add_errors(self, run_id: str, flow: str, errors: Iterable[Mapping[str, Any]],
                   created: str) -> None:
        rows = [(run_id, e["error_id"], flow, e.get("record_key"), e.get("field"),
                 e["code"], e["message"], e.get("raw"), e.get("position"),
                 json.dumps(e["record"], sort_keys=True, default=str)
                 if e.get("record") is not None else None, created)
                for e in errors]
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO errors VALUES"
                           " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def errors(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT error_id, flow, record_key, field, code, message, raw,"
                " position, created FROM errors WHERE run_id = ? ORDER BY error_id",
                (run_id,)).fetchall()
        names = ("error_id", "flow", "record_key", "field", "code", "message", "raw",
                 "position", "created")
        return [dict(zip(names, row)) for row in rows]

    def error_records(self, run_id: str) -> list[dict[str, Any]]:
        """Return a run's error rows with the source record each one kept."""
        with self._lock:
            rows = self._db.execute(
                "SELECT error_id, record_key, field, code, message, raw, position,"
                " record FROM errors WHERE run_id = ? ORDER BY error_id",
                (run_id,)).fetchall()
        names = ("error_id", "record_key", "field", "code", "message", "raw",
                 "position", "record")
        found = [dict(zip(names, row)) for row in rows]
        for row in found:
            row["record"] = json.loads(row["record"]) if row["record"] else None
        return found

    def first_seen(self, flow: str, error_ids: Iterable[str]) -> dict[str, str]:
        """Return the first run id in which each error id was recorded."""
        ids = list(error_ids)
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT e.error_id, e.run_id FROM errors e JOIN runs r"
                    f" ON r.run_id = e.run_id WHERE e.flow = ? AND e.error_id IN"
                    f" ({marks}) ORDER BY r.started DESC", (flow, *chunk))
                for error_id, run_id in rows:
                    found[error_id] = run_id
        return found

    # --- cursors ----------------------------------------------------------

    def cursor(self, flow: str, stream: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cursors WHERE flow = ? AND"
                                   " stream = ?", (flow, stream)).fetchone()
        return row[0] if row else None

    def set_cursor(self, flow: str, stream: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
                       (flow, stream, value))

    # --- canonical records ------------------------------------------------

    def replace_records(self, entity: str, flow: str,
                        records: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Replace every record ``flow`` produced for ``entity`` by ``records``."""
        rows = [(entity, key, flow, json.dumps(data, sort_keys=True))
                for key, data in records]
        with self.transaction() as db:
            db.execute("DELETE FROM records WHERE entity = ? AND flow = ?",
                       (entity, flow))
            db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)", rows)

    def flow_records(self, entity: str, flow: str) -> dict[str, dict[str, Any]]:
        """Return the records ``flow`` stored for ``entity`` by key, as JSON values."""
        with self._lock:
            rows = self._db.execute("SELECT record_key, data FROM records WHERE"
                                    " entity = ? AND flow = ?",
                                    (entity, flow)).fetchall()
        return {key: json.loads(data) for key, data in rows}

    def records(self, entity: str, exclude_flows: Iterable[str] = ()
                ) -> Iterator[dict[str, Any]]:
        """Yield the stored canonical records of an entity, as JSON values."""
        skipped = set(exclude_flows)
        with self._lock:
            rows = self._db.execute("SELECT flow, data FROM records WHERE entity = ?"
                                    " ORDER BY flow, record_key", (entity,)).fetchall()
        for flow, data in rows:
            if flow not in skipped:
                yield json.loads(data)

    # --- id map -----------------------------------------------------------

    def remote_ids(self, system: str, object_name: str) -> dict[str, str]:
        """Return source key -> remote id for one destination object."""
        with self._lock:
            rows = self._db.execute("SELECT record_key, remote_id FROM id_map WHERE"
                                    " system = ? AND object = ?",
                                    (system, object_name)).fetchall()
        return dict(rows)

    def set_remote_id(self, system: str, object_name: str, key: str,
                      remote_id: str) -> None:
        """Record the remote id of one key; called as soon as a create succeeds."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO id_map VALUES (?, ?, ?, ?)",
                       (system, object_name, key, remote_id))

    # --- written keys -----------------------------------------------------

    def written_keys(self, system: str, object_name: str) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT record_key FROM written_keys WHERE"
                                    " system = ? AND object = ?",
                                    (system, object_name)).fetchall()
        return {row[0] for row in rows}

    def set_written_keys(self, system: str, object_name: str, keys: Iterable[str]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM written_keys WHERE system = ? AND object = ?",
                       (system, object_name))
            db.executemany("INSERT INTO written_keys VALUES (?, ?, ?)",
                           [(system, object_name, key) for key in sorted(set(keys))])


def _run_row(row: tuple[Any, ...]) -> dict[str, Any]:
    names = ("run_id", "flow", "status", "started", "finished", "plan_hash", "counts",
             "message")
    result = dict(zip(names, row))
    result["counts"] = json.loads(result["counts"] or "{}")
    return result
