"""The Errors and Runs tabs that every spreadsheet destination gets.

The Errors tab is shared by all flows that write to the spreadsheet. Each flow syncs
only its own rows, in mirror mode: a new error gets a row, an error that still
occurs keeps its row, and an error that no longer occurs loses its row. A kept row
keeps its First run, Time and Retry cells, while its other cells follow the latest
occurrence. Rows of other flows are never touched. Error ids are computed by the
runtime and must be stable across runs, or every run would replace every row.

The Runs tab gets one row per run, keyed by run id, so writing the same run twice
(a retry after a failed commit) does not add a second row.

Both functions apply their edits to the backend without committing it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from compiler.plan.models import ColumnPlan
from runtime.sheets.base import ChangeSet, SheetBackend
from runtime.sheets.engine import (
    SHEETS_MAX_CELL_CHARS,
    RowProblem,
    TabSync,
    canonical_key,
    find_columns,
    plan_tab_sync,
)

logger = logging.getLogger(__name__)

ERRORS_TAB = "Errors"
RUNS_TAB = "Runs"

ERRORS_COLUMNS = [
    ColumnPlan(field="error_id", header="Error ID"),
    ColumnPlan(field="flow", header="Flow"),
    ColumnPlan(field="first_run", header="First run"),
    ColumnPlan(field="time", header="Time"),
    ColumnPlan(field="record_key", header="Record key"),
    ColumnPlan(field="field", header="Field"),
    ColumnPlan(field="code", header="Code"),
    ColumnPlan(field="message", header="Message"),
    ColumnPlan(field="raw_value", header="Raw value"),
    ColumnPlan(field="retry", header="Retry"),
    ColumnPlan(field="position", header="Where"),
]
ERRORS_FIELD_TYPES = {
    "error_id": "string",
    "flow": "string",
    "first_run": "string",
    "time": "datetime",
    "record_key": "string",
    "field": "string",
    "code": "string",
    "message": "string",
    "raw_value": "string",
    "position": "string",
    "retry": "boolean",
}
# Written when an error first gets its row, then left to people: the row records
# when the error first occurred, and people tick Retry.
ERRORS_CREATE_ONLY_FIELDS = frozenset({"first_run", "time", "retry"})
# People tick Retry, so the column is a checkbox column where the backend has them.
ERRORS_CHECKBOX_FIELDS = frozenset({"retry"})
_ERROR_TEXT_FIELDS = (
    "error_id",
    "first_run",
    "record_key",
    "field",
    "code",
    "message",
    "raw_value",
    "position",
)

RUNS_COLUMNS = [
    ColumnPlan(field="run_id", header="Run ID"),
    ColumnPlan(field="flow", header="Flow"),
    ColumnPlan(field="started", header="Started"),
    ColumnPlan(field="finished", header="Finished"),
    ColumnPlan(field="status", header="Status"),
    ColumnPlan(field="read", header="Read"),
    ColumnPlan(field="created", header="Created"),
    ColumnPlan(field="updated", header="Updated"),
    ColumnPlan(field="unchanged", header="Unchanged"),
    ColumnPlan(field="deleted", header="Deleted"),
    ColumnPlan(field="failed", header="Failed"),
    ColumnPlan(field="seconds", header="Seconds"),
    ColumnPlan(field="message", header="Message"),
]
RUNS_FIELD_TYPES = {
    "run_id": "string",
    "flow": "string",
    "started": "datetime",
    "finished": "datetime",
    "status": "string",
    "read": "integer",
    "created": "integer",
    "updated": "integer",
    "unchanged": "integer",
    "deleted": "integer",
    "failed": "integer",
    "seconds": "decimal",
    "message": "string",
}
_RUN_COUNT_FIELDS = ("read", "created", "updated", "unchanged", "deleted", "failed")

TRUNCATION_MARKER = " [truncated: {length} characters in total]"


def truncate_text(text: str, max_chars: int = SHEETS_MAX_CELL_CHARS) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, ending with a marker if cut."""
    if len(text) <= max_chars:
        return text

    marker = TRUNCATION_MARKER.format(length=len(text))
    return text[: max(0, max_chars - len(marker))] + marker


def sync_errors_tab(
    backend: SheetBackend,
    flow_id: str,
    errors: Sequence[Mapping[str, Any]],
    owned_keys: Collection[str],
    *,
    timezone: str = "UTC",
) -> TabSync:
    """Make the flow's rows of the Errors tab match ``errors``.

    Each error is a mapping with ``error_id`` (required), ``first_run``, ``time``
    (an aware datetime), ``record_key``, ``field``, ``code``, ``message`` and
    ``raw_value`` (or ``raw``, the name ``RowProblem`` uses). A row belongs to the
    flow when its Flow cell names the flow, or when its Flow cell is blank and its
    id is in ``owned_keys`` (the ids this flow wrote before). Only such rows are
    deleted. An error whose id is on another flow's row is reported and not
    written.
    """
    max_chars = getattr(backend, "max_cell_chars", SHEETS_MAX_CELL_CHARS)
    records = [_error_record(flow_id, error, max_chars) for error in errors]
    grid = backend.read_tab(ERRORS_TAB)
    own_rows, other_rows = _error_ids_by_owner(grid.rows if grid else [], flow_id)

    conflicts = [r for r in records if r["error_id"] in other_rows]
    records = [r for r in records if r["error_id"] not in other_rows]
    flow_keys = (own_rows | set(owned_keys)) - other_rows

    outcome = plan_tab_sync(
        grid,
        records,
        ERRORS_COLUMNS,
        ERRORS_FIELD_TYPES,
        mode="mirror",
        key=["error_id"],
        owned_keys=flow_keys,
        timezone=timezone,
        create_only_fields=ERRORS_CREATE_ONLY_FIELDS,
        checkbox_fields=ERRORS_CHECKBOX_FIELDS,
        max_cell_chars=max_chars,
    )
    outcome.errors.extend(_conflict_problem(record, flow_id) for record in conflicts)
    _apply(backend, ERRORS_TAB, grid is None, outcome)
    return outcome


def _error_record(
    flow_id: str, error: Mapping[str, Any], max_chars: int
) -> dict[str, Any]:
    if not error.get("error_id"):
        raise ValueError(
            f"Error {dict(error)!r} has no 'error_id'; compute a stable id for every"
            " error before syncing the Errors tab."
        )

    record: dict[str, Any] = {
        "flow": flow_id,
        "time": error.get("time"),
        "retry": False,
    }
    for name in _ERROR_TEXT_FIELDS:
        value = error.get(name)
        if name == "raw_value" and value is None:
            value = error.get("raw")
        record[name] = None if value is None else truncate_text(str(value), max_chars)
    return record


def _error_ids_by_owner(
    rows: list[list[Any]], flow_id: str
) -> tuple[set[str], set[str]]:
    """Return the error ids on this flow's rows and those on other flows' rows."""
    if not rows:
        return set(), set()

    id_position, flow_position = find_columns(rows[0], ERRORS_COLUMNS[:2])
    if id_position is None or flow_position is None:
        return set(), set()

    own: set[str] = set()
    other: set[str] = set()
    for row in rows[1:]:
        error_id = canonical_key([row[id_position]], ["string"])
        if error_id is None:
            continue
        owner = canonical_key([row[flow_position]], ["string"])
        if owner == flow_id.strip():
            own.add(error_id)
        elif owner is not None:
            other.add(error_id)

    return own, other


def _conflict_problem(record: Mapping[str, Any], flow_id: str) -> RowProblem:
    return RowProblem(
        key=record["error_id"],
        field="error_id",
        code="error_id_conflict",
        message=(
            f"Error id {record['error_id']!r} of flow {flow_id!r} is already on another"
            " flow's row of the Errors tab, so it was not written. Error ids must be"
            " unique across flows; include the flow id when computing them."
        ),
        raw=record["error_id"],
    )


def report_tabs_growth(error_count: int) -> dict[str, tuple[int, int]]:
    """Return at most how many rows the Errors and Runs tabs gain in a run, and their widths.

    ``error_count`` is the number of error rows the run will write. A tab that
    does not exist yet also gains its header row, which the counts include.
    """
    return {
        ERRORS_TAB: (error_count + 1, len(ERRORS_COLUMNS)),
        RUNS_TAB: (2, len(RUNS_COLUMNS)),
    }


def check_run_limits(
    backend: SheetBackend, writes: Mapping[str, ChangeSet], error_count: int
) -> None:
    """Check a run's planned writes to one spreadsheet before any of them is applied.

    ``writes`` maps each data tab of the spreadsheet to its planned change set.
    The Errors and Runs tabs are counted with ``report_tabs_growth``. Raises the
    backend's ``LimitExceeded`` when the writes together would break a limit, so
    that the run can write none of them and report why.
    """
    backend.check_limits(writes, report_tabs_growth(error_count))


def append_run_row(
    backend: SheetBackend, run: Mapping[str, Any], *, timezone: str = "UTC"
) -> TabSync:
    """Add the run's row to the Runs tab unless a row with its run id exists.

    ``run`` contains ``run_id`` (required), ``flow``, ``started`` and ``finished``
    (aware datetimes), ``status``, the counts ``read``, ``created``, ``updated``,
    ``unchanged``, ``deleted`` and ``failed``, and ``seconds``. When ``seconds`` is
    missing it is computed from ``started`` and ``finished``.
    """
    record = _run_record(run)
    grid = backend.read_tab(RUNS_TAB)
    outcome = plan_tab_sync(
        grid,
        [record],
        RUNS_COLUMNS,
        RUNS_FIELD_TYPES,
        mode="create",
        key=["run_id"],
        timezone=timezone,
        max_cell_chars=getattr(backend, "max_cell_chars", SHEETS_MAX_CELL_CHARS),
    )
    _apply(backend, RUNS_TAB, grid is None, outcome)
    return outcome


def _run_record(run: Mapping[str, Any]) -> dict[str, Any]:
    if not run.get("run_id"):
        raise ValueError(f"Run {dict(run)!r} has no 'run_id'; pass the id of the run.")

    record = {column.field: run.get(column.field) for column in RUNS_COLUMNS}
    record["run_id"] = str(run["run_id"])
    for name in _RUN_COUNT_FIELDS:
        record[name] = int(record[name] or 0)
    if record["seconds"] is None:
        record["seconds"] = _elapsed_seconds(record["started"], record["finished"])
    return record


def _elapsed_seconds(started: Any, finished: Any) -> Decimal | None:
    if not (isinstance(started, dt.datetime) and isinstance(finished, dt.datetime)):
        return None

    seconds = (finished - started).total_seconds()
    return Decimal(str(round(seconds, 3)))


def _apply(
    backend: SheetBackend, tab: str, tab_missing: bool, outcome: TabSync
) -> None:
    for problem in outcome.errors:
        logger.warning("Tab %r: %s", tab, problem.message)
    if outcome.changes.is_empty() and not tab_missing:
        return

    backend.apply(tab, outcome.changes)
    logger.info(
        "Wrote tab %r in %s: %d created, %d updated, %d deleted",
        tab,
        backend.location(),
        outcome.created,
        outcome.updated,
        outcome.deleted,
    )
