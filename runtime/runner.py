"""Run the flows of a plan: extract, map, load each destination, record the run.

A run is one flow executed from one plan. Its steps:

1. read the source (a system's stream, or the canonical records of an entity);
2. filter, aggregate and map the records into canonical entity records
   (``runtime.pipeline``), collecting error records;
3. write the destinations: first every spreadsheet destination is read and
   planned through the sheet engine, then each spreadsheet's planned writes are
   checked against its limits together, then applied; then the other
   destinations (http) are written, in the flow's order. The Errors and Runs
   tabs of every spreadsheet the flow writes come last;
4. commit each spreadsheet, then store the canonical records, the written keys,
   the error records and the run's counts in the state store.

A spreadsheet's limits (Google Sheets: 10 million cells across all tabs;
.xlsx: Excel's rows and columns per worksheet) are checked for all the flow's
writes to it at once, Errors and Runs tabs included, before the first write.
When they would be passed, no data tab of that spreadsheet is written: each of
its destinations with changes gets a ``limit_exceeded`` error record, the
run's warnings and message say so, the written keys of those tabs stay as they
were, and the Errors and Runs tabs are still written. A single value over the
cell's text limit is an error record of its row, found while planning.

A failure of the run itself (a source that cannot be read, a spreadsheet that
cannot be saved) marks the run ``failed`` and is reported; it never loses the
error records collected so far, and the other flows still run. A file that
cannot be parsed at all (a ``SourceError`` of scope ``"source"``: invalid
JSON, not a calendar, no CSV header) fails the run in the same way as a
missing file, with its error record kept.

A record missing from a run is taken as gone from the source only when the run
saw the whole source. The rule, for ``mirror`` destinations and for the
canonical records stored for the entity:

- When the read did not cover the whole source (``SourceContext.incomplete``:
  a stream that stopped early, a read from a stored incremental cursor, a
  retry), or when some input failed before its key was known (a broken source
  row, a failed filter, a record whose key field failed: ``MappedBatch.unkeyed``),
  mirror deletes nothing in that run. A warning of the run gives the reason.
  The stored records are then updated with the records read, and the others
  are kept.
- Otherwise mirror deletes the rows of keys that are gone, except the keys of
  records that failed mapping (``MappedBatch.failed``): their rows stay as
  they were, and their stored records keep their previous values. A failed
  record without a value for a mirror destination's key makes that
  destination delete nothing, with a warning.

The incremental cursor moves only when every destination wrote every record
of the run. A write problem of any destination (an http create that failed
after its retries, a key column missing from a tab, a spreadsheet whose limits
rejected the run's writes) keeps the stored cursor,
so the next run reads those records again. Records that failed mapping do not
hold it back, because their error records keep the source record for
``retry``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from compiler.plan import FlowPlan, Plan, SystemPlan
from runtime.destinations import WRITERS, WriteContext, destination_label
from runtime.http import flow_retry_policy
from runtime.mapping import MappingProblem
from runtime.pipeline import ErrorRecord, FlowPipeline, MappedBatch, aggregate
from runtime.references import UnresolvedReference, resolve
from runtime.sheets.base import BackendError, LimitExceeded, SheetBackend
from runtime.sheets.engine import TabSync, canonical_key, plan_tab_sync, serial_as
from runtime.sheets.tabs import append_run_row, check_run_limits, sync_errors_tab
from runtime.sheets.xlsx import XlsxBackend
from runtime.sources import read_source
from runtime.sources.base import SourceContext, SourceError, SourceUnavailable
from runtime.state import StateStore
from runtime.values import FieldPlanError, from_json_value, to_json_value

logger = logging.getLogger(__name__)

# The attribute of this module's log records that the run summary repeats: a
# command that prints the summary may drop them. Its value is ``failed``,
# ``warning`` or ``runs_tab``; ``SUMMARY_CAUSE`` contains the message shown.
SUMMARY_MARK = "syncplan_summary"
SUMMARY_CAUSE = "syncplan_cause"

BACKEND_ENTRY_POINTS = "syncplan.sheet_backends"
DEFAULT_WINDOW_DAYS = 60


class RunFailed(Exception):
    """The run of a flow cannot go on; the message says why and what to do."""


@dataclass
class Preview:
    """What a sync of one destination would change (or changed)."""

    destination: str
    created: int
    updated: int
    unchanged: int
    deleted: int
    changed_cells: list[tuple[str, Any, Any]]


PREVIEW_CELLS = 10


def _changed_cells(grid: Any, sync: Any) -> list[tuple[str, Any, Any]]:
    """Return the first changed cells as (A1 cell, old value, new value).

    A backend that reads date cells as serial numbers (Google Sheets) gives the
    old value as a number, shown as the type of the new value.
    """
    rows = grid.rows if grid is not None else []
    shown = []
    for (row, column), new in sorted(sync.changes.cells.items())[:PREVIEW_CELLS]:
        old = rows[row][column] if row < len(rows) and column < len(rows[row]) else None
        shown.append((f"{_column_letters(column)}{row + 1}", serial_as(old, new), new))
    return shown


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


@dataclass
class PlannedTab:
    """One spreadsheet destination, read and planned but not written yet."""

    destination: Any
    system: SystemPlan
    backend: SheetBackend
    sync: TabSync
    # The keys of the rows syncplan owned in the tab before the run.
    owned: set[str]
    # The keys of records that failed mapping, whose rows mirror keeps.
    protected: set[str]
    # Whether the run's counts include this tab's changes, which a failed save
    # takes back out.
    counted: bool = False

    @property
    def label(self) -> str:
        return f"{self.system.id}/{self.destination.object}"


@dataclass
class FlowResult:
    """The summary of one run of one flow."""

    flow: str
    run_id: str
    status: str = "running"
    read: int = 0
    filtered: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    seconds: float = 0.0
    message: str | None = None
    destinations: list[str] = field(default_factory=list)
    # The entries of ``destinations`` whose data this run created, updated or
    # deleted; the Errors and Runs tabs do not count.
    changed: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    previews: list[Preview] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wrote_spreadsheet: bool = False

    def counts(self) -> dict[str, Any]:
        return {"read": self.read, "filtered": self.filtered, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged,
                "deleted": self.deleted, "failed": self.failed,
                "seconds": round(self.seconds, 3)}


def _uncount_unsaved(planned: list[PlannedTab], saved: set[str],
                     result: FlowResult) -> None:
    """Take the changes of tabs whose spreadsheet was not saved out of the counts.

    A failed save writes nothing, so the run must not report those rows as
    created, updated or deleted.
    """
    for tab in planned:
        if tab.counted and tab.system.id not in saved:
            result.created -= tab.sync.created
            result.updated -= tab.sync.updated
            result.deleted -= tab.sync.deleted
            tab.counted = False


def _cursor_order(value: Any) -> tuple[int, Any]:
    """Order cursor values: numbers numerically, anything else as text.

    Stored cursors are text, so "10" from the store must still rank above 9.
    """
    text = str(value)
    try:
        return (0, Decimal(text))
    except ArithmeticError:
        return (1, text)


def json_key(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


class PlanRunner:
    """Runs the flows of one plan against one project folder and state store."""

    def __init__(self, plan: Plan, root: Path, state: StateStore, *,
                 now: dt.datetime | None = None,
                 progress: Callable[[str, int], None] | None = None,
                 dry_run: bool = False) -> None:
        self.plan = plan
        self.root = root
        self.state = state
        self.now = now
        self.progress = progress
        self.dry_run = dry_run
        self._backends: dict[str, SheetBackend] = {}
        # A dry run stores nothing, so the records of its earlier flows are kept
        # here (entity -> flow -> key -> record) for the lookups and entity
        # sources of its later flows.
        self._dry_records: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self._retry_input: tuple[list[tuple[dict[str, Any], str]],
                                 list[dict[str, Any]]] | None = None
        self._source_options: dict[str, Any] = {}
        # Per run: the run summary's warnings, and the reasons the read did not
        # cover the whole source (see the module docstring).
        self._warnings: list[str] = []
        self._incomplete: list[str] = []
        # Per run: the spreadsheets (by system id) whose backend raised the
        # error that failed the run.
        self._failed_spreadsheets: set[str] = set()

    # --- public -----------------------------------------------------------

    def run(self, flow_ids: list[str] | None = None) -> list[FlowResult]:
        """Run the given flows (all by default) in plan order."""
        wanted = set(flow_ids) if flow_ids else None
        results = []
        for flow in self.plan.flows:
            if wanted is None or flow.id in wanted:
                results.append(self.run_flow(flow))
        return results

    def retry(self, run_id: str, error_ids: list[str] | None = None,
              new_run_id: str | None = None) -> FlowResult:
        """Run the failed records of a run again: all of them, or those given.

        The source is not read again: each error kept the source record it came
        from, and those records go through the flow once more. Destinations in
        ``mirror`` mode are written as ``upsert``, because a retry carries only
        some records and must not delete the others. The Errors tab keeps the
        run's other open errors. An error that kept no record (a broken source
        file, a problem with a sheet) can only be retried by a full run, which is
        what happens when one of those is selected.
        """
        original = self.state.run(run_id)
        if original is None:
            raise RunFailed(f"no run {run_id!r} in the state store; list the runs of"
                            " the flow and pick one of their ids")
        flow = self.plan.flow(original["flow"])
        stored = self.state.error_records(run_id)
        wanted = set(error_ids) if error_ids else {row["error_id"] for row in stored}
        unknown = wanted - {row["error_id"] for row in stored}
        if unknown:
            raise RunFailed(f"run {run_id!r} has no error {sorted(unknown)[0]!r}; take"
                            " the ids from its errors")
        chosen = [row for row in stored if row["error_id"] in wanted]
        if any(row["record"] is None for row in chosen):
            return self.run_flow(flow, new_run_id)
        records: dict[str, tuple[dict[str, Any], str]] = {}
        for row in chosen:  # one record may have failed on several fields
            key = json_key(row["record"])
            records.setdefault(key, (row["record"], row["position"] or "retry"))
        kept_errors = [row for row in stored if row["error_id"] not in wanted]
        retry_flow = flow.model_copy(update={"destinations": [
            d.model_copy(update={"mode": "upsert"}) if d.mode == "mirror" else d
            for d in flow.destinations]})
        self._retry_input = (list(records.values()), kept_errors)
        try:
            return self.run_flow(retry_flow, new_run_id)
        finally:
            self._retry_input = None

    def run_flow(self, flow: FlowPlan, run_id: str | None = None) -> FlowResult:
        run_id = run_id or uuid.uuid4().hex[:12]
        started = self.now or _now()
        result = FlowResult(flow=flow.id, run_id=run_id)
        clock = time.perf_counter()
        if not self.dry_run:
            self.state.start_run(run_id, flow.id, _iso(started), self.plan.spec_hash)
        logger.info("run %s of flow %s started%s", run_id, flow.id,
                    " (dry run)" if self.dry_run else "")
        batch = MappedBatch()
        try:
            self._execute(flow, run_id, started, batch, result)
            result.status = "succeeded"
        except (RunFailed, SourceUnavailable, UnresolvedReference, BackendError,
                FieldPlanError, OSError) as exc:
            # FieldPlanError: a field setting the compiler cannot check without
            # the runtime's converters, such as a default of the wrong type.
            result.status = "failed"
            result.message = str(exc)
            logger.error("run %s of flow %s failed: %s", run_id, flow.id, exc,
                         extra={SUMMARY_MARK: "failed", SUMMARY_CAUSE: str(exc)})
        except BaseException as exc:  # a bug or an interrupt: never leave it running
            if not self.dry_run:
                self.state.finish_run(run_id, "failed", _iso(_now()), result.counts(),
                                      f"{type(exc).__name__}: {exc}")
            raise
        result.seconds = time.perf_counter() - clock
        result.warnings = list(self._warnings)
        rows = [error.as_row() for error in batch.errors]
        result.errors = rows
        result.failed = len(rows)
        result.read = batch.read
        result.filtered = batch.filtered
        if result.status == "failed" and not self.dry_run:
            self._report_failed_run(flow, run_id, started, result, clock)
        finished = _now() if self.now is None else self.now
        if not self.dry_run:
            self.state.add_errors(run_id, flow.id, rows, _iso(finished))
            self.state.finish_run(run_id, result.status, _iso(finished),
                                  result.counts(), result.message)
        logger.info("run %s of flow %s %s: %s", run_id, flow.id, result.status,
                    result.counts())
        return result

    # --- steps ------------------------------------------------------------

    def _execute(self, flow: FlowPlan, run_id: str, started: dt.datetime,
                 batch: MappedBatch, result: FlowResult) -> None:
        clock = time.perf_counter()
        self._source_options = {}
        self._warnings = []
        self._incomplete = []
        self._failed_spreadsheets = set()
        if self._retry_input is not None:
            self._incomplete.append("a retry carries only the records it retries")
        context = {"flow": {"id": flow.id}, "run": {"id": run_id},
                   "now": started}
        lookups = {entity: list(self._entity_records(entity))
                   for entity in self._lookup_entities(flow)}
        pipeline = FlowPipeline(self.plan, flow, context, lookups)
        items = self._source_items(flow, started, batch)
        source_count = None
        if flow.aggregate is not None:
            groups, source_count = self._aggregated(flow, items, pipeline, batch)
            items = iter(groups)
        reporter = None
        if self.progress is not None:
            progress = self.progress

            def reporter(count: int) -> None:
                progress(flow.id, count)

        pipeline.map_records(items, batch, reporter)
        if source_count is not None:
            batch.read = source_count
        self._warnings.extend(pipeline.missing_field_warnings())
        records = list(batch.records.values())

        touched: dict[str, SheetBackend] = {}
        written: list[tuple[str, str, set[str]]] = []
        earlier: dict[str, dict[str, str]] = {}
        errors_before_writes = len(batch.errors)
        # Plan every spreadsheet destination, so that each spreadsheet's limits are
        # checked for all of the run's writes before the first of them.
        planned: list[PlannedTab] = []
        for destination in flow.destinations:
            system = self.plan.systems[destination.system]
            if system.kind != "sheets":
                continue
            with self._spreadsheet_steps(system.id):
                backend = self._backend(system)
                touched[system.id] = backend
                planned.append(self._plan_destination(flow, destination, system,
                                                      backend, records, batch, result))
            result.destinations.append(f"{destination.system}/{destination.object}"
                                       f" ({backend.location()})")
        rejected = self._check_limits(flow, planned, batch, result)
        if self.dry_run:
            self._add_dry_run_problems(flow, planned, rejected, batch)
        else:
            for tab in planned:
                with self._spreadsheet_steps(tab.system.id):
                    if tab.system.id in rejected:
                        keys = self._reject_destination(flow, tab,
                                                        rejected[tab.system.id], batch,
                                                        result)
                    else:
                        keys = self._apply_destination(flow, tab, batch, result)
                written.append((tab.system.id, tab.destination.object, keys))
        for destination in flow.destinations:
            system = self.plan.systems[destination.system]
            if system.kind != "sheets":
                self._write_other(flow, destination, system, run_id, started, batch,
                                  result, earlier)
        write_failures = len(batch.errors) - errors_before_writes
        entity = self.plan.entity(flow.map.entity)
        if self.dry_run:
            result.read = batch.read
            result.filtered = batch.filtered
            self._dry_records.setdefault(entity.id, {})[flow.id] = \
                self._records_to_store(flow, batch)
            return
        finished = _now() if self.now is None else self.now
        result.read = batch.read
        result.filtered = batch.filtered
        result.failed = len(batch.errors)
        result.seconds = time.perf_counter() - clock
        result.wrote_spreadsheet = bool(touched)
        saved: set[str] = set()
        for system_id, backend in sorted(touched.items()):
            try:
                with self._spreadsheet_steps(system_id):
                    self._write_report_tabs(flow, run_id, started, finished,
                                            system_id, backend, batch, result)
                    backend.commit()
            except BackendError as exc:
                _uncount_unsaved(planned, saved, result)
                raise RunFailed(f"system {system_id!r}: {exc}") from exc
            except OSError as exc:
                _uncount_unsaved(planned, saved, result)
                raise RunFailed(f"cannot save the spreadsheet of system {system_id!r}"
                                f" at {backend.location()}: {exc}") from exc
            saved.add(system_id)
        # Only what is saved counts as written, so mirror never deletes a row that
        # a failed save left behind unrecorded.
        for system_id, object_name, keys in written:
            self.state.set_written_keys(system_id, object_name, keys)
        self._store_cursor(flow, write_failures)
        self.state.replace_records(entity.id, flow.id, (
            (key, {name: to_json_value(value) for name, value in record.items()})
            for key, record in self._records_to_store(flow, batch).items()))

    def _store_cursor(self, flow: FlowPlan, write_failures: int) -> None:
        """Store the incremental cursor, unless a record failed to write.

        It runs only once every destination committed, so a failed save is read
        again on the next run too.
        """
        cursor = self._source_options.get("cursor_out", {}).get("value")
        if cursor is None or self._retry_input is not None:
            return
        stream = flow.source.stream or ""
        if write_failures:
            stored = self._source_options.get("cursor")
            self._warnings.append(
                f"the cursor of stream {stream!r} stays at {stored!r} instead of"
                f" moving to {str(cursor)!r}, because {write_failures} write(s) to"
                " the destinations failed; the next run reads those records again")
            return
        self.state.set_cursor(flow.id, stream, str(cursor))

    def _records_to_store(self, flow: FlowPlan,
                          batch: MappedBatch) -> dict[str, dict[str, Any]]:
        """Return the entity records to store for this flow after the run, by key.

        A run that saw the whole source replaces the flow's records, except that
        a key whose record failed mapping keeps its previous record. Any other
        run updates the records it read and keeps the rest (module docstring).
        """
        whole = not self._incomplete and not batch.unkeyed
        if whole and not batch.failed:
            return dict(batch.records)
        previous = self._previous_records(flow)
        if not whole:
            return {**previous, **batch.records}
        kept = dict(batch.records)
        for key in batch.failed:
            if key not in kept and key in previous:
                kept[key] = previous[key]
        return kept

    def _previous_records(self, flow: FlowPlan) -> dict[str, dict[str, Any]]:
        """Return the records this flow stored for its entity before the run."""
        entity = self.plan.entity(flow.map.entity)
        overlay = self._dry_records.get(entity.id, {})
        if flow.id in overlay:
            return dict(overlay[flow.id])
        types = {f.name: f.type for f in entity.fields}
        return {key: {name: from_json_value(types[name], value) if name in types
                      else value for name, value in stored.items()}
                for key, stored in self.state.flow_records(entity.id, flow.id).items()}

    def _lookup_entities(self, flow: FlowPlan) -> set[str]:
        return {m.source.lookup.entity for m in flow.map.fields
                if m.source.lookup is not None}

    def _entity_records(self, entity_id: str) -> Iterator[dict[str, Any]]:
        entity = self.plan.entity(entity_id)
        types = {f.name: f.type for f in entity.fields}
        overlay = self._dry_records.get(entity_id, {})
        for stored in self.state.records(entity_id, exclude_flows=overlay):
            yield {name: from_json_value(types[name], value) if name in types
                   else value for name, value in stored.items()}
        for records in overlay.values():
            yield from records.values()

    def _source_items(self, flow: FlowPlan, started: dt.datetime,
                      batch: MappedBatch) -> Iterator[tuple[Mapping[str, Any], str]]:
        source = flow.source
        if self._retry_input is not None:
            yield from self._retry_input[0]
            return
        if source.entity is not None:
            for index, record in enumerate(self._entity_records(source.entity)):
                yield record, f"{source.entity}[{index}]"
            return
        system = self._resolved_system(self.plan.systems[source.system or ""])
        context = self._source_context(flow, system, started)
        # An http stream applies the cursor itself (dotted paths, equal values
        # kept) and moves it only when it read to the end, so the runner filters
        # file sources only.
        cursor_field = source.cursor if system.kind != "http" else None
        previous = context.options.get("cursor") if cursor_field else None
        if previous is not None:
            context.incomplete.append(
                f"system {system.id!r} was read incrementally: records whose"
                f" {cursor_field!r} is not above the stored cursor {previous!r} were"
                " skipped")
        highest: Any = None
        for item in read_source(system, source.stream or "", context):
            if isinstance(item, SourceError):
                self._source_error(flow, system, item, batch)
                continue
            if cursor_field is not None:
                value = item.data.get(cursor_field)
                if value is not None and previous is not None and \
                        _cursor_order(value) <= _cursor_order(previous):
                    batch.read += 1  # read, but an earlier run already took it
                    batch.filtered += 1
                    continue
                if value is not None and (highest is None or
                                          _cursor_order(value) > _cursor_order(highest)):
                    highest = value
            yield item.data, item.position
        out = context.options["cursor_out"]
        if highest is not None and "value" not in out:
            out["value"] = highest

    def _source_error(self, flow: FlowPlan, system: SystemPlan, item: SourceError,
                      batch: MappedBatch) -> None:
        """Keep a reader's error record; fail the run when the source is unusable."""
        error = ErrorRecord(flow.id, item.code, item.message, item.key, item.field,
                            item.raw, item.position)
        batch.errors.append(error)
        if item.scope == "source":
            raise RunFailed(f"source {system.id!r} cannot be read, so nothing was"
                            f" written or deleted ({item.code} at {item.position}):"
                            f" {item.message}")
        if item.scope == "record":
            batch.unkeyed.append(error)

    def _aggregated(self, flow: FlowPlan, items: Iterator[tuple[Mapping[str, Any], str]],
                    pipeline: FlowPipeline, batch: MappedBatch
                    ) -> tuple[list[tuple[Mapping[str, Any], str]], int]:
        """Filter, then group the source records; return the groups and the count read."""
        kept = []
        count = 0
        for data, position in items:
            count += 1
            try:
                if pipeline.filter is not None and not pipeline.filter(data):
                    batch.filtered += 1
                    continue
            except MappingProblem as problem:
                error = ErrorRecord(flow.id, problem.code, problem.message,
                                    raw=problem.raw, position=position, record=data)
                batch.errors.append(error)
                batch.unkeyed.append(error)
                continue
            kept.append(data)
        pipeline.filter = None  # already applied to the records before grouping
        groups = [(group, f"group {index + 1}")
                  for index, group in enumerate(aggregate(kept, flow))]
        return groups, count

    def _source_context(self, flow: FlowPlan, system: SystemPlan,
                        started: dt.datetime) -> SourceContext:
        zone = zoneinfo.ZoneInfo(system.settings.get("timezone", "UTC"))
        window = flow.source.window
        start = started - dt.timedelta(days=DEFAULT_WINDOW_DAYS)
        end = started + dt.timedelta(days=DEFAULT_WINDOW_DAYS)
        if window is not None:
            if window.days_back is not None:
                start = started - dt.timedelta(days=window.days_back)
            if window.days_ahead is not None:
                end = started + dt.timedelta(days=window.days_ahead)
            if window.start is not None:
                start = dt.datetime.combine(dt.date.fromisoformat(window.start),
                                            dt.time(), zone)
            if window.end is not None:
                end = dt.datetime.combine(dt.date.fromisoformat(window.end),
                                          dt.time(), zone)
        options: dict[str, Any] = {"cursor_out": {}, "warnings": self._warnings}
        if flow.source.cursor is not None or system.kind == "http":
            options["cursor"] = self.state.cursor(flow.id, flow.source.stream or "")
        if flow.source.cursor is not None:
            options["cursor_field"] = flow.source.cursor
        if system.kind == "http":
            options["http_retry_policy"] = flow_retry_policy(flow.on_error.retry)
        self._source_options = options
        return SourceContext(base_dir=self.root, now=started, window_start=start,
                             window_end=end, options=options,
                             incomplete=self._incomplete)

    def _resolved_system(self, system: SystemPlan) -> SystemPlan:
        settings = {name: resolve(value, self.root) if isinstance(value, str) else value
                    for name, value in system.settings.items()}
        return system.model_copy(update={"settings": settings})

    # --- destinations -----------------------------------------------------

    @contextlib.contextmanager
    def _spreadsheet_steps(self, system_id: str) -> Iterator[None]:
        """Note the spreadsheet whose open, read, write or save fails the run.

        A rejection by the limits does not fail the run, so it is not noted.
        """
        try:
            yield
        except LimitExceeded:
            raise
        except (BackendError, OSError):
            self._failed_spreadsheets.add(system_id)
            raise

    def _backend(self, system: SystemPlan) -> SheetBackend:
        if system.id in self._backends:
            return self._backends[system.id]
        if system.kind != "sheets":
            raise RunFailed(f"system {system.id!r} of kind {system.kind!r} cannot be"
                            " written by this version of syncplan; write to a sheets"
                            " system")
        spreadsheet = resolve(str(system.settings["spreadsheet"]), self.root)
        if spreadsheet.lower().endswith(".xlsx"):
            path = Path(spreadsheet)
            backend: SheetBackend = XlsxBackend(path if path.is_absolute()
                                                else self.root / path)
        else:
            backend = self._plugin_backend(system, spreadsheet)
        self._backends[system.id] = backend
        return backend

    def _plugin_backend(self, system: SystemPlan, spreadsheet: str) -> SheetBackend:
        installed = entry_points(group=BACKEND_ENTRY_POINTS)
        for entry in installed:
            factory = entry.load()
            backend = factory(system, spreadsheet, self.root)
            if backend is not None:
                return backend
        if installed:
            raise RunFailed(
                f"system {system.id!r}: the spreadsheet {spreadsheet!r} is neither a"
                " path ending in .xlsx nor a Google spreadsheet id or URL; set it to"
                " a .xlsx path, such as out/report.xlsx, or to the id or URL of a"
                " Google spreadsheet")
        raise RunFailed(
            f"system {system.id!r}: {spreadsheet!r} is not a local .xlsx path, and no"
            " installed backend accepts it as a spreadsheet id or URL; give a path"
            " ending in .xlsx, or install the Google Sheets backend")

    def _plan_destination(self, flow: FlowPlan, destination: Any,
                          system: SystemPlan, backend: SheetBackend,
                          records: list[dict[str, Any]], batch: MappedBatch,
                          result: FlowResult) -> PlannedTab:
        """Read a destination's tab and plan its sync; add the preview to ``result``."""
        entity = self.plan.entity(flow.map.entity)
        types = {f.name: f.type for f in entity.fields}
        timezone = system.settings.get("timezone", "UTC")
        grid = backend.read_tab(destination.object)
        owned = self.state.written_keys(system.id, destination.object)
        mode = destination.mode
        protected: set[str] = set()
        if mode == "mirror":
            reason, protected = self._mirror_guard(destination, types, timezone, batch)
            if reason is not None:
                mode = "upsert"  # upsert is mirror without the deletions
                self._warnings.append(
                    f"{system.id}/{destination.object}: no rows were deleted in"
                    f" mirror mode, because {reason}; the next run that reads the"
                    " whole source deletes the rows that are gone")
        # A protected key's row is not deleted, and stays syncplan's row.
        sync = plan_tab_sync(grid, records, destination.columns, types,
                             mode=mode, key=destination.key,
                             owned_keys=owned - protected, timezone=timezone,
                             max_cell_chars=backend.max_cell_chars)
        tab = PlannedTab(destination, system, backend, sync, set(owned), protected)
        result.previews.append(Preview(tab.label, sync.created, sync.updated,
                                       sync.unchanged, sync.deleted,
                                       _changed_cells(grid, sync)))
        return tab

    def _check_limits(self, flow: FlowPlan, planned: list[PlannedTab],
                      batch: MappedBatch,
                      result: FlowResult) -> dict[str, LimitExceeded]:
        """Check each spreadsheet's planned writes at once; return rejections by system.

        The Errors tab is counted with every error row known so far. Errors of
        the http destinations, written later, are not known yet, and the Errors
        tab's own write checks them. A dry run checks too (it sends no request
        once the tabs are read), so that a preview warns of a rejection.
        """
        error_count = len(batch.errors) + sum(len(tab.sync.errors) for tab in planned)
        if self._retry_input is not None:
            error_count += len(self._retry_input[1])
        by_system: dict[str, list[PlannedTab]] = {}
        for tab in planned:
            by_system.setdefault(tab.system.id, []).append(tab)
        rejected: dict[str, LimitExceeded] = {}
        for system_id, tabs in by_system.items():
            writes = {tab.destination.object: tab.sync.changes for tab in tabs
                      if not tab.sync.changes.is_empty()}
            if not writes:
                continue
            try:
                with self._spreadsheet_steps(system_id):
                    check_run_limits(tabs[0].backend, writes, error_count=error_count)
            except LimitExceeded as exc:
                rejected[system_id] = exc
                self._report_rejection(flow, system_id, tabs[0].backend, list(writes),
                                       exc, result)
        return rejected

    def _add_dry_run_problems(self, flow: FlowPlan, planned: list[PlannedTab],
                              rejected: dict[str, LimitExceeded],
                              batch: MappedBatch) -> None:
        """Add the error records a real run would add for its planned tabs.

        They are the ones ``_apply_destination`` and ``_reject_destination``
        add, in the same order, so that a preview shows a missing key column
        or a rejected write with the same codes as the run.
        """
        for tab in planned:
            exc = rejected.get(tab.system.id)
            if exc is not None and not tab.sync.changes.is_empty():
                batch.errors.append(ErrorRecord(flow.id, exc.code, str(exc),
                                                position=tab.label))
            self._add_row_problems(flow, tab, batch)

    def _report_rejection(self, flow: FlowPlan, system_id: str, backend: SheetBackend,
                          tabs: list[str], exc: LimitExceeded,
                          result: FlowResult) -> None:
        """Report in the run's warnings and message that tabs were not written."""
        plural = len(tabs) > 1
        if self.dry_run:
            verb = "would not be written"
        else:
            verb = "were not written" if plural else "was not written"
        listed = ", ".join(repr(tab) for tab in tabs)
        text = (f"{system_id}: tab{'s' if plural else ''} {listed} of"
                f" {backend.location()} {verb}, because {exc}")
        self._warnings.append(text)
        if result.message is None:
            result.message = text
        logger.warning("flow %s: %s", flow.id, text,
                       extra={SUMMARY_MARK: "warning", SUMMARY_CAUSE: text})

    def _apply_destination(self, flow: FlowPlan, tab: PlannedTab, batch: MappedBatch,
                           result: FlowResult) -> set[str]:
        """Write a planned destination; return the keys of the rows syncplan owns."""
        sync = tab.sync
        if not sync.changes.is_empty():
            try:
                tab.backend.apply(tab.destination.object, sync.changes)
            except LimitExceeded as exc:
                # The run's check passed, so another writer grew the spreadsheet
                # in between, or a backend checks more than its check_limits does.
                self._report_rejection(flow, tab.system.id, tab.backend,
                                       [tab.destination.object], exc, result)
                return self._reject_destination(flow, tab, exc, batch, result)
            if sync.created or sync.updated or sync.deleted:
                result.changed.append(f"{tab.label} ({tab.backend.location()})")
        self._add_row_problems(flow, tab, batch)
        result.created += sync.created
        result.updated += sync.updated
        result.unchanged += sync.unchanged
        result.deleted += sync.deleted
        tab.counted = True
        return set(sync.written_keys) | (tab.protected & tab.owned)

    def _reject_destination(self, flow: FlowPlan, tab: PlannedTab, exc: LimitExceeded,
                            batch: MappedBatch, result: FlowResult) -> set[str]:
        """Record that a destination's writes were rejected; return the keys it owned.

        A tab without changes was not part of the rejected writes, so it counts
        as synced. The others keep their owned keys, so that the next mirror run
        deletes what this one would have.
        """
        if tab.sync.changes.is_empty():
            return self._apply_destination(flow, tab, batch, result)
        batch.errors.append(ErrorRecord(flow.id, exc.code, str(exc),
                                        position=tab.label))
        self._add_row_problems(flow, tab, batch)
        return set(tab.owned)

    def _add_row_problems(self, flow: FlowPlan, tab: PlannedTab,
                          batch: MappedBatch) -> None:
        for problem in tab.sync.errors:
            batch.errors.append(ErrorRecord(flow.id, problem.code, problem.message,
                                            problem.key, problem.field, problem.raw,
                                            tab.label, destination=tab.label))

    def _mirror_guard(self, destination: Any, types: dict[str, str], timezone: str,
                      batch: MappedBatch) -> tuple[str | None, set[str]]:
        """Return why a mirror destination must delete nothing, or the keys to keep.

        The keys to keep are the destination keys of the records that failed
        mapping; see the module docstring for the whole rule.
        """
        if self._incomplete:
            return ("the source was not read whole: " + "; ".join(self._incomplete),
                    set())
        if batch.unkeyed:
            first = batch.unkeyed[0]
            return (f"{len(batch.unkeyed)} input record(s) failed before their key"
                    f" was known (first: {first.code} at {first.position})", set())
        zone = zoneinfo.ZoneInfo(timezone)
        key_types = [types[name] for name in destination.key]
        protected = set()
        for failed_key, values in batch.failed.items():
            key = canonical_key([values.get(name) for name in destination.key],
                                key_types, zone)
            if key is None:
                return (f"the record {failed_key!r} failed without a value for the"
                        f" destination key {list(destination.key)!r}", set())
            protected.add(key)
        return None, protected

    def _write_other(self, flow: FlowPlan, destination: Any, system: SystemPlan,
                     run_id: str, started: dt.datetime, batch: MappedBatch,
                     result: FlowResult, earlier: dict[str, dict[str, str]]) -> None:
        """Write a destination that is not a spreadsheet through its kind's writer."""
        factory = WRITERS.get(system.kind)
        if factory is None:
            raise RunFailed(f"system {system.id!r} of kind {system.kind!r} cannot be"
                            " written by this version of syncplan")
        context = WriteContext(root=self.root, run_id=run_id, now=started,
                               state=self.state, earlier=earlier,
                               dry_run=self.dry_run)
        written = factory(self._resolved_system(system), self.root).write(
            flow, destination, list(batch.records.items()), context)
        for problem in written.problems:
            label = destination_label(destination)
            batch.errors.append(ErrorRecord(flow.id, problem.code, problem.message,
                                            problem.key, problem.field, problem.raw,
                                            label, destination=label))
        earlier[destination_label(destination)] = written.ids
        result.previews.append(Preview(destination_label(destination),
                                       written.created, written.updated,
                                       written.unchanged, written.deleted, []))
        result.created += written.created
        result.updated += written.updated
        result.unchanged += written.unchanged
        result.deleted += written.deleted
        shown = f"{destination_label(destination)} ({written.location or system.id})"
        result.destinations.append(shown)
        if not self.dry_run and (written.created or written.updated or written.deleted):
            result.changed.append(shown)

    def _report_failed_run(self, flow: FlowPlan, run_id: str, started: dt.datetime,
                           result: FlowResult, clock_started: float) -> None:
        """Add a failed run's row to the Runs tab of each spreadsheet it writes.

        The run failed, so this is best effort: a spreadsheet that cannot be opened
        or saved is skipped with a warning. A spreadsheet whose error failed the
        run is not tried again, because its requests have just used up their
        retries, and another series would double the wait for the same error.
        """
        finished = _now() if self.now is None else self.now
        for system_id in sorted({d.system for d in flow.destinations}):
            system = self.plan.systems[system_id]
            if system.kind != "sheets":
                continue
            if system_id in self._failed_spreadsheets:
                logger.warning("run %s of flow %s: the Runs tab of %s was not"
                               " updated, because the run failed on that"
                               " spreadsheet: %s", run_id, flow.id, system_id,
                               result.message,
                               extra={SUMMARY_MARK: "runs_tab",
                                      SUMMARY_CAUSE: str(result.message)})
                continue
            try:
                backend = self._backend(system)
                zone = system.settings.get("timezone", "UTC")
                append_run_row(backend, {
                    "run_id": run_id, "flow": flow.id, "started": started,
                    "finished": finished, "status": "failed",
                    **{k: v for k, v in result.counts().items() if k != "filtered"},
                    "seconds": round(time.perf_counter() - clock_started, 3),
                    "message": result.message,
                }, timezone=zone)
                backend.commit()
            except (RunFailed, BackendError, UnresolvedReference, OSError) as exc:
                logger.warning("run %s of flow %s: the Runs tab of %s was not"
                               " updated: %s", run_id, flow.id, system_id, exc,
                               extra={SUMMARY_MARK: "runs_tab",
                                      SUMMARY_CAUSE: str(exc)})

    def _write_report_tabs(self, flow: FlowPlan, run_id: str, started: dt.datetime,
                           finished: dt.datetime, system_id: str, backend: SheetBackend,
                           batch: MappedBatch, result: FlowResult) -> None:
        rows = [error.as_row() for error in batch.errors]
        if self._retry_input is not None:
            # The errors this retry did not touch stay open in the Errors tab.
            rows += self._retry_input[1]
        first_seen = self.state.first_seen(flow.id, [row["error_id"] for row in rows])
        error_rows = [{**row, "first_run": first_seen.get(row["error_id"], run_id),
                       "time": started} for row in rows]
        zone = self.plan.systems[system_id].settings.get("timezone", "UTC")
        sync_errors_tab(backend, flow.id, error_rows, (), timezone=zone)
        append_run_row(backend, {
            "run_id": run_id, "flow": flow.id, "started": started,
            "finished": finished, "status": "succeeded",
            **{k: v for k, v in result.counts().items() if k != "filtered"},
            "seconds": round(result.seconds, 3), "message": result.message,
        }, timezone=zone)
