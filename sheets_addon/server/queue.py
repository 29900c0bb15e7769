"""The worker pool: runs queued jobs off the request threads, with leases.

Every process that serves a project starts one ``WorkerPool``. Its threads claim
queued jobs from the shared ``jobs`` table (``ServerStore.claim``), run them
with ``PlanRunner``, and record the outcome. A maintenance thread renews the
leases of this process's running jobs every ``lease_seconds / 3`` and marks
interrupted any running job whose lease ran out, because the process that held
it was killed or hung. A job claimed by a process of this host that no longer
exists is marked interrupted at once, so a restarted server need not wait for
the lease. An interrupted run can be retried through the API; it is never
started again by itself, because it may have written part of its output.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.plan import Plan
from runtime.runner import PlanRunner, RunFailed
from runtime.state import StateStore
from sheets_addon.server.store import Job, ServerStore

logger = logging.getLogger(__name__)

INTERRUPTED_MESSAGE = ("the server stopped while this run was in progress; retry"
                       " the run to start it again")


@dataclass(frozen=True)
class Outcome:
    """The final status, counts and message of a job."""

    status: str
    counts: dict[str, Any]
    message: str | None


class RunExecutor:
    """Run one job of a plan: a full run of its flow, or a retry."""

    def __init__(self, plan: Plan, root: Path, state: StateStore) -> None:
        self.plan = plan
        self.root = root
        self.state = state

    def __call__(self, job: Job) -> Outcome:
        try:
            flow = self.plan.flow(job.flow)
        except KeyError:
            return Outcome("failed", {}, f"flow {job.flow!r} is not in the spec this"
                           " server compiled; restart the server after changing"
                           " the spec")
        runner = PlanRunner(self.plan, self.root, self.state)
        try:
            if job.kind == "retry" and job.retry_of is not None:
                result = runner.retry(job.retry_of, job.error_ids,
                                      new_run_id=job.run_id)
            else:
                result = runner.run_flow(flow, run_id=job.run_id)
        except RunFailed as exc:
            return Outcome("failed", {}, str(exc))
        return Outcome(result.status, result.counts(), result.message)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerPool:
    """Threads that claim and run jobs; one pool per server process."""

    def __init__(self, store: ServerStore, state: StateStore,
                 execute: Callable[[Job], Outcome], *, workers: int = 2,
                 lease_seconds: float = 30.0, poll_seconds: float = 1.0) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers!r} is invalid; start at least 1")
        self.store = store
        self.state = state
        self.execute = execute
        self.workers = workers
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.host = socket.gethostname()
        self.prefix = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Condition()
        self._wake_ups = 0  # notify() calls no idle worker has taken yet
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, str] = {}  # run id -> worker name
        self._running_lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self.recover()
        for index in range(self.workers):
            name = f"{self.prefix}/w{index}"
            thread = threading.Thread(target=self._work, args=(name,),
                                      name=f"syncplan-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._maintain, name="syncplan-leases",
                                  daemon=True)
        keeper.start()
        self._threads.append(keeper)
        logger.info("worker pool %s started with %d worker(s), lease %.0f s",
                    self.prefix, self.workers, self.lease_seconds)

    def stop(self, wait_seconds: float = 10.0, *, abandon: bool = False) -> None:
        """Stop claiming jobs and wait for the running ones.

        Runs still going after ``wait_seconds`` are marked interrupted, unless
        ``abandon`` is set: then their leases simply stop being renewed, as when
        the process is killed, and another process marks them interrupted later.
        """
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if abandon:
            logger.warning("worker pool %s abandoned its running jobs", self.prefix)
            return
        for thread in self._threads:
            thread.join(timeout=wait_seconds)
        with self._running_lock:
            left = list(self._running)
        for run_id in self.store.interrupt(left, INTERRUPTED_MESSAGE):
            self._interrupt_stored_run(run_id)
            logger.warning("run %s interrupted by the server shutdown", run_id)
        logger.info("worker pool %s stopped", self.prefix)

    def notify(self) -> None:
        """Wake one idle worker, because a job was queued or may run now.

        One is enough: a worker that claims a job wakes the next (see
        ``_work``), so a burst of runnable jobs still reaches every idle worker,
        while one queued job costs one claim and not one per worker. A call
        that finds no worker waiting is kept, so the next worker to go idle
        looks again at once instead of sleeping ``poll_seconds``.
        """
        with self._wake:
            self._wake_ups = min(self._wake_ups + 1, self.workers)
            self._wake.notify()

    # --- recovery ---------------------------------------------------------

    def recover(self) -> list[str]:
        """Mark interrupted the running jobs whose owner is gone; return their ids."""
        orphaned = {job.run_id for job in self.store.expired_leases()}
        for job in self.store.jobs("running"):
            if job.claimed_by and self._owner_is_dead(job.claimed_by):
                orphaned.add(job.run_id)
        done = self.store.interrupt(sorted(orphaned), INTERRUPTED_MESSAGE)
        for run_id in done:
            self._interrupt_stored_run(run_id)
            logger.warning("run %s marked interrupted: its server process stopped"
                           " during the run", run_id)
        return done

    def _owner_is_dead(self, claimed_by: str) -> bool:
        host, _, rest = claimed_by.partition(":")
        pid_text = rest.partition(":")[0]
        if host != self.host or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        return pid != os.getpid() and not _process_alive(pid)

    def _interrupt_stored_run(self, run_id: str) -> None:
        stored = self.state.run(run_id)
        if stored is not None and stored["status"] == "running":
            finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            self.state.finish_run(run_id, "interrupted", finished, stored["counts"],
                                  INTERRUPTED_MESSAGE)

    # --- threads ----------------------------------------------------------

    def _maintain(self) -> None:
        interval = max(0.2, self.lease_seconds / 3)
        while not self._stopping.wait(interval):
            try:
                self.store.renew_leases(self.prefix, self.lease_seconds)
                self.recover()
            except Exception:  # the next round tries again
                logger.exception("lease upkeep of worker pool %s failed", self.prefix)

    def _work(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim(name, self.lease_seconds)
            except Exception:
                logger.exception("worker %s cannot claim a job", name)
                job = None
            if job is None:
                with self._wake:
                    if not self._wake_ups:
                        self._wake.wait(self.poll_seconds)
                    self._wake_ups = max(0, self._wake_ups - 1)
                continue
            self.notify()  # another queued job may be runnable too
            self._run(name, job)

    def _run(self, name: str, job: Job) -> None:
        with self._running_lock:
            self._running[job.run_id] = name
        logger.info("run %s of flow %s started by %s (%s, requested by %s)",
                    job.run_id, job.flow, name, job.kind, job.requested_by)
        try:
            outcome = self.execute(job)
        except Exception:
            logger.exception("run %s of flow %s crashed", job.run_id, job.flow)
            outcome = Outcome("failed", {}, f"internal error in run {job.run_id};"
                              " the server log has the details")
            self._fail_stored_run(job.run_id, outcome.message)
        finally:
            with self._running_lock:
                self._running.pop(job.run_id, None)
        if self.store.finish(job.run_id, name, outcome.status, outcome.counts,
                             outcome.message):
            logger.info("run %s of flow %s %s: %s", job.run_id, job.flow,
                        outcome.status, outcome.counts)
        else:
            logger.warning("run %s of flow %s ended %s after its lease was lost;"
                           " it stays marked interrupted", job.run_id, job.flow,
                           outcome.status)
        self.notify()  # a job waiting for this flow or destination may go now

    def _fail_stored_run(self, run_id: str, message: str | None) -> None:
        stored = self.state.run(run_id)
        if stored is not None and stored["status"] == "running":
            finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            self.state.finish_run(run_id, "failed", finished, stored["counts"],
                                  message)
