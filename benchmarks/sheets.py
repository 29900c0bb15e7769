"""Benchmark syncing one large tab into Google Sheets, against two gspread baselines.

Usage::

    python benchmarks/sheets.py [--rows 100000] [--changed-percent 1] [--seed 7]
                                [--per-row-sample 2000] [--output FILE]

Everything runs against the local Sheets API v4 emulator (``sheets_addon.emulator``)
on loopback, in this process. Each method writes into a spreadsheet of its own,
which is deleted once the method is measured, so the emulator keeps at most one
large tab in memory at a time (plus the small per-row sample).

Scenarios, on the same generated records (10 columns: an id, a name, an email, a
city, an amount, a seat count, two dates, a status and a 20-40 character
description, all ASCII):

(a) first sync of a new tab: the tab does not exist yet;
(b) resync after ``--changed-percent`` of the rows changed. The changed rows are
    drawn by a ``random.Random`` seeded from ``--seed``. In a changed row every cell
    except the key (``id``) gets a different value.

Methods:

- syncplan: ``GoogleSheetsBackend.read_tab``, ``plan_tab_sync`` in upsert mode and
  ``GoogleSheetsBackend.apply``, each sync on a fresh backend, as a new run would,
  so each pays the properties read a run makes once;
- ``gspread_dataframe.set_with_dataframe``: a full rewrite of the tab in both
  scenarios (in (b) after opening the spreadsheet and the worksheet, two metadata
  requests);
- a per-row loop of ``Worksheet.update(values=[row], range_name=...)`` with plain
  gspread. In (b) it updates only the changed rows, whose row numbers it is given
  (it reads nothing). In (a) it writes the first ``--per-row-sample`` rows and the totals for
  every row are extrapolated linearly: they are estimates and are labeled so.

Figures: requests received by the emulator, bytes of the request bodies (what is
sent to the API), the largest request body, bytes of the response bodies, and
wall-clock seconds, of which the emulator spent the "emulator s" handling requests
(the emulator shares this process and its GIL).

"Bytes of the changed cells" is the size of the new values alone in (b): for each
changed row, ``json.dumps([[the new values of its changed cells]],
separators=(",", ":"))``, with numbers as JSON numbers and dates as serial day
numbers (days since 1899-12-30), summed over the changed rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import math
import os
import platform
import random
import resource
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

logger = logging.getLogger(__name__)

TAB = "Customers"
KEY = "id"
# Field name, plan type and header of each column, in sheet order.
COLUMNS = [
    ("id", "string", "Customer ID"),
    ("name", "string", "Name"),
    ("email", "email", "Email"),
    ("city", "string", "City"),
    ("amount", "decimal", "Amount"),
    ("seats", "integer", "Seats"),
    ("signed_on", "date", "Signed on"),
    ("renews_on", "date", "Renews on"),
    ("status", "string", "Status"),
    ("description", "string", "Description"),
]
FIELDS = [name for name, _type, _header in COLUMNS]
HEADERS = [header for _name, _type, header in COLUMNS]

FIRST_NAMES = ["Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Amelia",
               "Ethan", "Harper", "Mateo", "Sofia", "Aiden", "Chloe", "Elijah",
               "Grace", "Omar", "Priya", "Kenji", "Fatima", "Ines", "Tomas"]
LAST_NAMES = ["Smith", "Johnson", "Garcia", "Miller", "Davis", "Lopez", "Wilson",
              "Anderson", "Thomas", "Moore", "Martin", "Lee", "Clark", "Lewis",
              "Walker", "Young", "Allen", "Nguyen", "Patel", "Kowalski", "Okafor"]
DOMAINS = ["example.com", "mail.example.org", "agency.example", "corp.example.net"]
CITIES = ["London", "Paris", "New York", "Berlin", "Madrid", "Toronto", "Lisbon",
          "Dublin", "Amsterdam", "Chicago", "Austin", "Sydney", "Milan", "Oslo"]
STATUSES = ["active", "trial", "past_due", "cancelled", "paused"]
PLANS = ["Starter", "Team", "Business", "Enterprise", "Nonprofit"]
CHANNELS = ["a partner", "the website", "a sales call", "a referral", "an event"]
TERMS = ["monthly", "annual", "quarterly"]

EPOCH = dt.date(1899, 12, 30)
# The per-chunk allowance of the request target: the Google backend splits a
# request body at this size (its MAX_BODY_BYTES).
CHUNK_BYTES = 2_000_000
TARGET_BYTES_OVER_FLOOR = 1.2
TARGET_REWRITE_FACTOR = 50.0
# Google's default write quota per user and project, from
# https://developers.google.com/sheets/api/limits.
WRITE_QUOTA_PER_MINUTE = 60


# --- data --------------------------------------------------------------------


def _description(rng: random.Random) -> str:
    return f"{rng.choice(PLANS)} {rng.choice(TERMS)} via {rng.choice(CHANNELS)}"


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _email(name: str, number: int, rng: random.Random) -> str:
    first, last = name.split(" ")
    return f"{first}.{last}{number}@{rng.choice(DOMAINS)}".lower()


def generate_records(count: int, seed: int) -> list[dict[str, Any]]:
    """Return ``count`` canonical customer records, the same for the same seed."""
    rng = random.Random(seed)
    records = []
    for index in range(count):
        name = _name(rng)
        signed = dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(2500))
        records.append({
            "id": f"CUS-{index:07d}",
            "name": name,
            "email": _email(name, index, rng),
            "city": rng.choice(CITIES),
            "amount": Decimal(rng.randrange(1_000, 5_000_000)) / 100,
            "seats": rng.randrange(1, 500),
            "signed_on": signed,
            "renews_on": signed + dt.timedelta(days=365),
            "status": rng.choice(STATUSES),
            "description": _description(rng),
        })
    return records


def _different(rng: random.Random, old: Any, make: Callable[[], Any]) -> Any:
    for _attempt in range(100):
        new = make()
        if new != old:
            return new
    raise RuntimeError(f"could not draw a value different from {old!r}; widen the pool")


def change_record(record: dict[str, Any], rng: random.Random, index: int
                  ) -> dict[str, Any]:
    """Return a copy of ``record`` with every field but the key set to a new value."""
    name = _different(rng, record["name"], lambda: _name(rng))
    return {
        "id": record["id"],
        "name": name,
        # The offset gives the new address a number that no original address has.
        "email": _email(name, index + 10_000_000, rng),
        "city": _different(rng, record["city"], lambda: rng.choice(CITIES)),
        "amount": record["amount"] + Decimal(rng.randrange(1, 10_000)) / 100,
        "seats": record["seats"] + rng.randrange(1, 10),
        "signed_on": record["signed_on"] + dt.timedelta(days=rng.randrange(1, 30)),
        "renews_on": record["renews_on"] + dt.timedelta(days=rng.randrange(1, 30)),
        "status": _different(rng, record["status"], lambda: rng.choice(STATUSES)),
        "description": _different(rng, record["description"],
                                  lambda: _description(rng)),
    }


def change_records(records: list[dict[str, Any]], percent: float, seed: int
                   ) -> tuple[list[dict[str, Any]], list[int]]:
    """Return the records with ``percent`` of them changed, and the changed indexes."""
    rng = random.Random(seed + 1)
    count = round(len(records) * percent / 100)
    changed = sorted(rng.sample(range(len(records)), count))
    updated = list(records)
    for index in changed:
        updated[index] = change_record(records[index], rng, index)
    return updated, changed


def api_value(value: Any) -> Any:
    """Return a record value as the Sheets API carries it under RAW input."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date):
        return (value - EPOCH).days
    return value


def api_row(record: dict[str, Any]) -> list[Any]:
    return [api_value(record[name]) for name in FIELDS]


def changed_cells_bytes(records: list[dict[str, Any]], changed: list[int]) -> int:
    """Return the compact-JSON size of the changed cells, one 2-D array per row."""
    total = 0
    for index in changed:
        values = [api_value(records[index][name]) for name in FIELDS if name != KEY]
        total += len(json.dumps([values], separators=(",", ":")))
    return total


def dataframe_of(records: list[dict[str, Any]]) -> Any:
    """Return the records as a DataFrame a pandas user would hold.

    Amounts are floats and dates ``datetime.date``: ``set_with_dataframe`` sends
    dates as ISO text under USER_ENTERED, which Sheets stores as dates.
    """
    import pandas as pd

    rows = [[float(r[n]) if n == "amount" else r[n] for n in FIELDS] for r in records]
    return pd.DataFrame(rows, columns=HEADERS)


# --- measuring ---------------------------------------------------------------


@dataclass
class Measurement:
    """The traffic and time of one method in one scenario."""

    method: str
    requests: int
    writes: int
    request_bytes: int
    largest_request: int
    response_bytes: int
    seconds: float
    emulator_seconds: float
    kinds: dict[str, int] = field(default_factory=dict)
    estimate: bool = False
    phases: dict[str, float] = field(default_factory=dict)


@contextmanager
def measured(emulator: Any, method: str, sink: list[Measurement]
             ) -> Iterator[dict[str, float]]:
    """Time the block and collect the emulator's log of it into ``sink``.

    The yielded dict receives optional per-phase seconds.
    """
    gc.collect()
    emulator.reset_log()
    phases: dict[str, float] = {}
    started = time.perf_counter()
    yield phases
    seconds = time.perf_counter() - started
    records = emulator.log.records
    sink.append(Measurement(
        method=method,
        requests=len(records),
        writes=sum(1 for r in records if r.method != "GET"),
        request_bytes=sum(r.request_bytes for r in records),
        largest_request=max((r.request_bytes for r in records), default=0),
        response_bytes=sum(r.response_bytes for r in records),
        seconds=seconds,
        emulator_seconds=sum(r.duration_seconds for r in records),
        kinds=emulator.counts_by_kind(),
        phases=phases,
    ))
    failed = [r for r in records if r.status is None or r.status >= 400]
    if failed:
        raise RuntimeError(f"{method}: {len(failed)} request(s) failed, first:"
                           f" {failed[0].method} {failed[0].path} -> {failed[0].status}")


def sample_cells(emulator: Any, spreadsheet_id: str, rows: list[int]
                 ) -> list[tuple[Any, ...]]:
    """Return the stored values of the given data rows (0-based record indexes)."""
    sheet = emulator.spreadsheet(spreadsheet_id).sheet_by_title(TAB)
    cells = sheet.cells
    result = []
    for index in rows:
        values = []
        for column in range(len(FIELDS)):
            cell = cells.get((index + 1, column))
            value = None if cell is None else cell.value
            # Sheets stores every number as a double.
            values.append(float(value) if isinstance(value, int) else value)
        result.append(tuple(values))
    return result


def _syncplan_client(emulator: Any, spreadsheet_id: str) -> tuple[Any, Any]:
    from compiler.plan import RateLimit, SystemPlan
    from sheets_addon.google.session import build_client

    # A huge budget switches the pacing off: the benchmark measures traffic and
    # work, not the write quota.
    system = SystemPlan(id="report", kind="sheets", settings={},
                        rate_limit=RateLimit(requests=1_000_000, per_seconds=1))
    return build_client(system, spreadsheet_id, emulator=f"127.0.0.1:{emulator.port}")


def capture_value_writes(client: Any, bodies: list[bytes]) -> None:
    """Append the body of every ``values:batchUpdate`` the client sends to ``bodies``.

    It uses a response hook of the ``requests`` session, so the bytes are the ones
    that went on the wire.
    """
    def keep(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.url.split("?")[0].endswith("values:batchUpdate") and request.body:
            body = request.body
            bodies.append(body if isinstance(body, bytes) else body.encode("utf-8"))

    client.http_client.session.hooks["response"].append(keep)


def syncplan_sync(emulator: Any, spreadsheet_id: str, records: list[dict[str, Any]],
                  phases: dict[str, float], bodies: list[bytes] | None = None) -> Any:
    """Run one sync of the tab on a fresh backend, timing read, plan and apply.

    With ``bodies``, the values writes are captured into it.
    """
    from compiler.plan import ColumnPlan
    from runtime.sheets.engine import plan_tab_sync
    from sheets_addon.google.backend import GoogleSheetsBackend

    client, set_check = _syncplan_client(emulator, spreadsheet_id)
    if bodies is not None:
        capture_value_writes(client, bodies)
    backend = GoogleSheetsBackend(client, spreadsheet_id, ambiguity=set_check)
    columns = [ColumnPlan(field=name, header=header) for name, _t, header in COLUMNS]
    types = {name: field_type for name, field_type, _h in COLUMNS}
    started = time.perf_counter()
    grid = backend.read_tab(TAB)
    phases["read"] = time.perf_counter() - started
    started = time.perf_counter()
    sync = plan_tab_sync(grid, records, columns, types, mode="upsert", key=[KEY],
                         max_cell_chars=backend.max_cell_chars)
    phases["plan"] = time.perf_counter() - started
    del grid
    started = time.perf_counter()
    backend.apply(TAB, sync.changes)
    phases["apply"] = time.perf_counter() - started
    return sync


@dataclass
class MethodResult:
    """Both scenarios of one method and the cells it left in the changed rows."""

    first: Measurement
    resync: Measurement
    sample: list[tuple[Any, ...]]
    resync_bodies: list[bytes] = field(default_factory=list)


def body_breakdown(bodies: list[bytes]) -> dict[str, int]:
    """Split ``values:batchUpdate`` bodies into cell values, range strings and the rest.

    ``values`` is the compact JSON of every ``values`` array, ``ranges`` the
    characters of the A1 range strings and ``syntax`` everything else (keys,
    quotes, braces, commas and ``valueInputOption``).
    """
    values = ranges = total = count = 0
    for body in bodies:
        total += len(body)
        for item in json.loads(body)["data"]:
            count += 1
            ranges += len(item["range"].encode("utf-8"))
            values += len(json.dumps(item["values"], separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8"))
    return {"total": total, "values": values, "ranges": ranges,
            "syntax": total - values - ranges, "count": count}


def run_syncplan(emulator: Any, original: list[dict[str, Any]],
                 updated: list[dict[str, Any]], changed: list[int]) -> MethodResult:
    spreadsheet_id = emulator.create_spreadsheet("syncplan")
    first: list[Measurement] = []
    with measured(emulator, "syncplan", first) as phases:
        sync = syncplan_sync(emulator, spreadsheet_id, original, phases)
    if sync.created != len(original) or sync.errors:
        raise RuntimeError(f"first sync created {sync.created} rows of"
                           f" {len(original)}, errors {sync.errors[:3]!r}")
    resync: list[Measurement] = []
    bodies: list[bytes] = []
    with measured(emulator, "syncplan", resync) as phases:
        sync = syncplan_sync(emulator, spreadsheet_id, updated, phases, bodies)
    if sync.updated != len(changed) or sync.created or sync.errors:
        raise RuntimeError(f"resync updated {sync.updated} rows, expected"
                           f" {len(changed)}; created {sync.created},"
                           f" errors {sync.errors[:3]!r}")
    expected_cells = len(changed) * (len(FIELDS) - 1)
    if len(sync.changes.cells) != expected_cells:
        raise RuntimeError(f"resync changed {len(sync.changes.cells)} cells, expected"
                           f" {expected_cells}: every non-key cell of each changed row")
    sample = sample_cells(emulator, spreadsheet_id, changed[:50])
    emulator.gspread_client().del_spreadsheet(spreadsheet_id)
    return MethodResult(first[0], resync[0], sample, bodies)


def run_dataframe(emulator: Any, original: list[dict[str, Any]],
                  updated: list[dict[str, Any]], changed: list[int]) -> MethodResult:
    from gspread_dataframe import set_with_dataframe

    frames = dataframe_of(original), dataframe_of(updated)
    client = emulator.gspread_client()
    spreadsheet_id = emulator.create_spreadsheet("dataframe")
    first: list[Measurement] = []
    with measured(emulator, "set_with_dataframe", first):
        worksheet = client.open_by_key(spreadsheet_id).add_worksheet(TAB, rows=1,
                                                                     cols=1)
        set_with_dataframe(worksheet, frames[0])
    resync: list[Measurement] = []
    with measured(emulator, "set_with_dataframe", resync):
        worksheet = client.open_by_key(spreadsheet_id).worksheet(TAB)
        set_with_dataframe(worksheet, frames[1])
    sample = sample_cells(emulator, spreadsheet_id, changed[:50])
    client.del_spreadsheet(spreadsheet_id)
    return MethodResult(first[0], resync[0], sample)


def _row_range(index: int) -> str:
    from gspread.utils import rowcol_to_a1

    row = index + 2
    return f"A{row}:{rowcol_to_a1(row, len(FIELDS))}"


def run_per_row(emulator: Any, original: list[dict[str, Any]],
                updated: list[dict[str, Any]], changed: list[int], sample_rows: int
                ) -> MethodResult:
    client = emulator.gspread_client()
    spreadsheet_id = emulator.create_spreadsheet("per-row")
    spreadsheet = client.open_by_key(spreadsheet_id)
    sample_rows = min(sample_rows, len(original))
    first: list[Measurement] = []
    with measured(emulator, "per-row gspread", first):
        worksheet = spreadsheet.add_worksheet("Sample", rows=len(original) + 1,
                                              cols=len(FIELDS))
        worksheet.update(values=[HEADERS], range_name=_row_range(-1))
        for index in range(sample_rows):
            worksheet.update(values=[api_row(original[index])],
                             range_name=_row_range(index))
    estimate = extrapolate(first[0], sample_rows, len(original))

    # Setup, not measured: the tab gets the original rows before the resync.
    worksheet = spreadsheet.add_worksheet(TAB, rows=len(original) + 1,
                                          cols=len(FIELDS))
    worksheet.update(values=[HEADERS] + [api_row(r) for r in original],
                     range_name="A1")
    resync: list[Measurement] = []
    with measured(emulator, "per-row gspread", resync):
        for index in changed:
            worksheet.update(values=[api_row(updated[index])],
                             range_name=_row_range(index))
    sample = sample_cells(emulator, spreadsheet_id, changed[:50])
    client.del_spreadsheet(spreadsheet_id)
    return MethodResult(estimate, resync[0], sample)


def extrapolate(sample: Measurement, sample_rows: int, rows: int) -> Measurement:
    """Scale a per-row sample to every row: fixed requests stay, row requests scale.

    The sample is one ``add_worksheet``, one header write and one write per row, so
    only the per-row part is multiplied. Bytes and seconds scale with the row count,
    which assumes every row costs what the sampled rows cost on average.
    """
    factor = rows / sample_rows if sample_rows else 0.0
    fixed = sample.requests - sample_rows
    return Measurement(
        method=f"per-row gspread (estimate from {sample_rows:,} rows)",
        requests=fixed + rows,
        request_bytes=round(sample.request_bytes * factor),
        largest_request=sample.largest_request,
        response_bytes=round(sample.response_bytes * factor),
        seconds=sample.seconds * factor,
        emulator_seconds=sample.emulator_seconds * factor,
        kinds={kind: (count + rows - sample_rows if count >= sample_rows else count)
               for kind, count in sample.kinds.items()},
        writes=sample.writes + rows - sample_rows,
        estimate=True,
    )


# --- report ------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError as error:
        logger.warning("could not read /proc/cpuinfo: %s", error)
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()},"
            f" {platform.system()} {platform.release()}")


def _table(rows: list[Measurement]) -> list[str]:
    header = ("| method | requests | of which writes | request bytes | largest request"
              " | response bytes | seconds | emulator s |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in rows:
        prefix = "~" if m.estimate else ""
        lines.append(f"| {m.method} | {prefix}{m.requests:,} | {prefix}{m.writes:,}"
                     f" | {prefix}{m.request_bytes:,}"
                     f" | {m.largest_request:,} | {prefix}{m.response_bytes:,}"
                     f" | {prefix}{m.seconds:.2f} | {prefix}{m.emulator_seconds:.2f} |")
    return lines


def _quota_line(rows: list[Measurement]) -> str:
    minutes = ", ".join(f"{m.method} {m.writes / WRITE_QUOTA_PER_MINUTE:,.1f}"
                        for m in rows)
    return (f"Minutes of Google's default write quota ({WRITE_QUOTA_PER_MINUTE} write"
            f" requests per minute per user) these writes use up: {minutes}.")


def allowed_requests(m: Measurement) -> int:
    """Return the request target: 3, plus one per 2 MB chunk past the first."""
    chunks = max(1, math.ceil(m.request_bytes / CHUNK_BYTES))
    return 3 + chunks - 1


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def targets(first: Measurement, resync: Measurement, rewrite: Measurement,
            floor: int) -> list[str]:
    over_floor = resync.request_bytes / floor if floor else math.inf
    factor = rewrite.request_bytes / resync.request_bytes if resync.request_bytes else math.inf
    lines = ["| target | measured | result |", "|---|---|---|"]
    for label, m in (("(a) first sync", first), ("(b) resync", resync)):
        allowed = allowed_requests(m)
        lines.append(f"| {label}: requests <= 3 + one per 2 MB chunk past the first"
                     f" (= {allowed}) | {m.requests} | {_verdict(m.requests <= allowed)} |")
    lines.append(f"| (b) request bytes <= {TARGET_BYTES_OVER_FLOOR}x the bytes of the"
                 f" changed cells ({floor:,}) | {resync.request_bytes:,}"
                 f" ({over_floor:.3f}x) | {_verdict(over_floor <= TARGET_BYTES_OVER_FLOOR)} |")
    lines.append(f"| (b) request bytes >= {TARGET_REWRITE_FACTOR:.0f}x fewer than the"
                 f" set_with_dataframe rewrite ({rewrite.request_bytes:,})"
                 f" | {factor:.1f}x fewer | {_verdict(factor >= TARGET_REWRITE_FACTOR)} |")
    largest = max(first.largest_request, resync.largest_request)
    lines.append(f"| extra check: largest syncplan request body <= {CHUNK_BYTES:,} bytes"
                 f" (the backend's split size) | {largest:,}"
                 f" | {_verdict(largest <= CHUNK_BYTES)} |")
    return lines


def _kinds(rows: list[Measurement]) -> list[str]:
    lines = []
    for m in rows:
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(m.kinds.items()))
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in m.phases.items())
        lines.append(f"- {m.method}: {kinds}" + (f"; {phases}" if phases else ""))
    return lines


@dataclass
class Results:
    """Everything measured in one run."""

    rows: int
    changed: int
    percent: float
    seed: int
    floor: int
    first: list[Measurement]
    resync: list[Measurement]
    same_cells: bool
    breakdown: dict[str, int]
    peak_rss_mib: float


def _breakdown_lines(parts: dict[str, int], floor: int) -> list[str]:
    count = max(parts["count"], 1)
    total = max(parts["total"], 1)
    lines = ["| part | bytes | share | per range |", "|---|---:|---:|---:|"]
    for name, label in (("values", "cell values (compact JSON arrays)"),
                        ("ranges", "A1 range strings"),
                        ("syntax", "keys, quotes, braces, commas, valueInputOption")):
        lines.append(f"| {label} | {parts[name]:,} | {parts[name] / total:.1%}"
                     f" | {parts[name] / count:.1f} |")
    lines.append(f"| total ({parts['count']:,} ranges) | {parts['total']:,} | 100% |"
                 f" {parts['total'] / count:.1f} |")
    lines.append("")
    lines.append(f"The cell values alone are {parts['values'] / floor:.3f}x the bytes"
                 " of the changed cells.")
    return lines


def _header_lines(results: Results, command: str) -> list[str]:
    data = (f"Data: {results.rows:,} rows x {len(FIELDS)} columns"
            f" ({', '.join(FIELDS)}), seed {results.seed}, in a tab named `{TAB}`."
            f" Resync: {results.changed:,} rows ({results.percent:g}%) drawn at random"
            " with that seed. Every cell of a changed row except the key changed.")
    emulator = ("- target: the local Sheets API emulator (`sheets_addon.emulator`) in"
                " the same process, so seconds include its work, shown as"
                " \"emulator s\".")
    body_bytes = ("Request bytes are the request bodies sent to the API. Response"
                  " bytes are the bodies it returned: compact JSON where syncplan"
                  " asks for it (`prettyPrint=false` on its reads), two-space"
                  " indented JSON otherwise, as Google sends by default.")
    return ["# Google Sheets sync benchmark", "",
            f"- machine: {machine()}",
            f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            f"- command: `{command}`",
            emulator, "", data, "", body_bytes]


def report(results: Results, command: str) -> str:
    """Return the markdown report of one run."""
    syncplan_first, syncplan_resync = results.first[0], results.resync[0]
    rewrite = results.resync[1]
    over_floor = syncplan_resync.request_bytes / results.floor
    floor = (f"Bytes of the changed cells: {results.floor:,} (compact JSON, one 2-D"
             f" array per changed row). syncplan resync bytes / that figure:"
             f" {over_floor:.3f}.")
    same = "yes" if results.same_cells else "NO"
    footer = (f"Cell values of 50 changed rows after (b) are the same in all three"
              f" spreadsheets: {same}. Peak resident memory of the run:"
              f" {results.peak_rss_mib:,.0f} MiB.")
    lines = [
        *_header_lines(results, command), "",
        "## (a) First sync of a new tab", "",
        *_table(results.first), "",
        _quota_line(results.first), "",
        f"## (b) Resync, {results.percent:g}% of the rows changed", "",
        *_table(results.resync), "",
        _quota_line(results.resync), "",
        floor, "",
        "## Targets", "",
        *targets(syncplan_first, syncplan_resync, rewrite, results.floor), "",
        "## Where the syncplan resync request bytes go", "",
        *_breakdown_lines(results.breakdown, results.floor), "",
        "## Requests by kind", "",
        "(a):", *_kinds(results.first), "",
        "(b):", *_kinds(results.resync), "",
        footer,
    ]
    return "\n".join(lines) + "\n"


def run(rows: int, percent: float, seed: int, sample_rows: int) -> Results:
    from sheets_addon.emulator import SheetsEmulator

    original = generate_records(rows, seed)
    updated, changed = change_records(original, percent, seed)
    floor = changed_cells_bytes(updated, changed)
    with SheetsEmulator(seed=seed) as emulator:
        ours = run_syncplan(emulator, original, updated, changed)
        logger.info("syncplan measured")
        frame = run_dataframe(emulator, original, updated, changed)
        logger.info("set_with_dataframe measured")
        loop = run_per_row(emulator, original, updated, changed, sample_rows)
        logger.info("per-row loop measured")
    methods = [ours, frame, loop]
    return Results(rows=rows, changed=len(changed), percent=percent, seed=seed,
                   floor=floor, first=[m.first for m in methods],
                   resync=[m.resync for m in methods],
                   same_cells=ours.sample == frame.sample == loop.sample,
                   breakdown=body_breakdown(ours.resync_bodies),
                   peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                   / 1024)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000,
                        help="data rows in the tab (default: 100000)")
    parser.add_argument("--changed-percent", type=float, default=1.0,
                        help="percentage of the rows changed before the resync"
                             " (default: 1)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the data and of the changed rows (default: 7)")
    parser.add_argument("--per-row-sample", type=int, default=2_000,
                        help="rows the per-row loop writes in (a) before the total is"
                             " extrapolated (default: 2000)")
    parser.add_argument("--output", type=Path,
                        help="also write the markdown report to this file")
    arguments = parser.parse_args(argv)
    if arguments.rows < 1:
        parser.error(f"--rows {arguments.rows!r} must be at least 1")
    if not 0 < arguments.changed_percent <= 100:
        parser.error(f"--changed-percent {arguments.changed_percent!r} must be in"
                     " (0, 100]")
    if round(arguments.rows * arguments.changed_percent / 100) < 1:
        parser.error(f"--changed-percent {arguments.changed_percent!r} of"
                     f" {arguments.rows} rows changes no row; raise --rows or --changed-percent")
    if arguments.per_row_sample < 1:
        parser.error(f"--per-row-sample {arguments.per_row_sample!r} must be at"
                     " least 1")
    return arguments


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)
    arguments = parse_arguments(argv)
    results = run(arguments.rows, arguments.changed_percent, arguments.seed,
                  arguments.per_row_sample)
    command = shlex.join(["python", "benchmarks/sheets.py",
                          *(sys.argv[1:] if argv is None else argv)])
    text = report(results, command)
    print(text, end="")
    if arguments.output is not None:
        arguments.output.write_text(text)


if __name__ == "__main__":
    main()
