"""SQLite connections of one process to the state file: one per thread, one writer at a time.

Each thread gets its own connection, so reads need no lock: in WAL mode they
see the last committed data and never wait for a writer. Writes run in
``BEGIN IMMEDIATE`` transactions, which take SQLite's write lock first. Within
a process they also take a Python lock first. A thread waiting on that lock
wakes as soon as it is released, while one waiting in SQLite's default busy
handler sleeps between tries, 1, 2, 5 and on up to 100 ms each
(``sqliteDefaultBusyCallback`` in SQLite's ``main.c``). Across processes that
busy handler does the waiting, for up to 30 s.

Connections of threads that have ended are closed when the next thread opens
one, so servers that start a thread per request (werkzeug's) do not pile them
up.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_SECONDS = 30.0


class StoreClosed(sqlite3.ProgrammingError):
    """The store was closed; no connection is opened any more."""


class ThreadConnections:
    """Per-thread connections to one SQLite file in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._open: dict[threading.Thread, sqlite3.Connection] = {}
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        with self._registry_lock:
            if self._closed:
                raise StoreClosed(f"the store at {str(self.path)!r} is closed")
            self._close_dead_threads()
            # check_same_thread is off only so close() and the sweep above may
            # close another thread's connection; each is used by one thread.
            db = sqlite3.connect(str(self.path), check_same_thread=False,
                                 isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
            db.execute("PRAGMA synchronous=NORMAL")
            self._open[threading.current_thread()] = db
        self._local.db = db
        return db

    def read(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.get().execute(query, args).fetchall()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run the block in a ``BEGIN IMMEDIATE`` transaction; roll back on error."""
        db = self.get()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every connection; later calls of ``get`` raise ``StoreClosed``."""
        with self._registry_lock:
            self._closed = True
            connections = list(self._open.values())
            self._open.clear()
        with self._write_lock:  # let a running transaction end first
            for db in connections:
                db.close()

    def _close_dead_threads(self) -> None:
        for thread, db in list(self._open.items()):
            if not thread.is_alive():
                db.close()
                del self._open[thread]
