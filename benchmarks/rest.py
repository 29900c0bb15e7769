"""Benchmark the REST path: won deals read from a CRM search, written as projects.

Usage::

    python benchmarks/rest.py [--deals 10000] [--page-size 100] [--429-percent 10]
                              [--seed 7] [--output FILE]

Everything runs in this process against the fake CRM and project tool
(``sheets_addon.demo``) on 127.0.0.1. A spec project in a temporary folder has
one flow. It reads the CRM's deals search (``POST /crm/v3/objects/deals/search``,
pages of ``--page-size`` deals following ``paging.next.after``) into a project
entity. It writes each record to the project tool's ``POST /projects`` in
upsert mode, with an update request and a lookup as in the closed-won example. No
rate limit is declared, so nothing is paced and the figures show the cost of
the work itself.

Scenarios, each on fresh fakes and a fresh state file unless said otherwise:

- first run: every deal becomes a project;
- rerun: the same fakes and state again, so every record is unchanged;
- first run with faults: both fakes answer ``--429-percent`` of all requests
  (drawn from a random generator seeded by ``--seed``) with 429 and
  ``Retry-After: 0``, so retries cost requests but no waiting.

Figures: records read per second of wall-clock time for the run (compiling
excluded), requests the fakes received (the OAuth token request excluded), and
the request floor: one request per page read plus one per record written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import compile_project
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore
from sheets_addon.demo.fake_apis import FakeApis

logger = logging.getLogger(__name__)

TOKEN_ROUTE = "POST /oauth/v1/token"


@dataclass
class Measure:
    """One scenario's figures."""

    scenario: str
    records: int
    seconds: float
    requests: int
    floor: int
    created: int
    updated: int
    unchanged: int
    failed: int
    retried: int


def _spec(page_size: int) -> dict[str, Any]:
    project_body = {"data": {
        "workspace": "${env:ASANA_WORKSPACE}",
        "name": "{{ record.client_name }}: {{ record.deal_name }}",
        "notes": "Budget: GBP {{ record.amount }}",
        "due_on": "{{ record.due_date }}",
        "external": {"gid": "{{ record.deal_id }}", "data": "crm-deal"},
    }}
    update_body = {"data": {"name": project_body["data"]["name"],
                            "notes": project_body["data"]["notes"],
                            "due_on": project_body["data"]["due_on"]}}
    return {
        "version": 1,
        "project": "rest-benchmark",
        "systems": {
            "crm": {"kind": "http", "base_url": "${env:CRM_BASE_URL}",
                    "auth": {"type": "oauth2_refresh_token",
                             "token_url": "${env:CRM_BASE_URL}/oauth/v1/token",
                             "client_id": "${env:CRM_CLIENT_ID}",
                             "client_secret": "${env:CRM_CLIENT_SECRET}",
                             "refresh_token": "${env:CRM_REFRESH_TOKEN}"},
                    "streams": {"won_deals": {
                        "method": "POST", "path": "/crm/v3/objects/deals/search",
                        "body": {"filterGroups": [{"filters": [
                            {"propertyName": "dealstage", "operator": "EQ",
                             "value": "closedwon"}]}],
                            "properties": ["dealname", "client_name", "amount",
                                           "project_due"],
                            "limit": page_size},
                        "records": "results",
                        "pagination": {"type": "cursor", "next": "paging.next.after",
                                       "param": "after", "in": "body"}}}},
            "asana": {"kind": "http", "base_url": "${env:ASANA_BASE_URL}",
                      "auth": {"type": "bearer", "token": "${env:ASANA_TOKEN}"}},
        },
        "entities": {"project": {"key": "deal_id", "fields": {
            "deal_id": {"type": "string", "owner": "crm", "required": True},
            "client_name": {"type": "string", "owner": "crm"},
            "deal_name": {"type": "string", "owner": "crm"},
            "amount": {"type": "money", "owner": "crm", "currency": "GBP"},
            "due_date": {"type": "date", "owner": "crm"},
        }}},
        "flows": {"deals_to_projects": {
            "source": {"system": "crm", "stream": "won_deals"},
            "map": {"entity": "project", "fields": {
                "deal_id": "id", "client_name": "properties.client_name",
                "deal_name": "properties.dealname", "amount": "properties.amount",
                "due_date": "properties.project_due"}},
            "destinations": [{
                "system": "asana", "object": "projects", "mode": "upsert",
                "http": {
                    "create": {"method": "POST", "path": "/projects",
                               "body": project_body},
                    "update": {"method": "PUT", "path": "/projects/{{ id }}",
                               "body": update_body},
                    "id": "data.gid",
                    "lookup": {"path": "/projects", "query": {
                        "workspace": "${env:ASANA_WORKSPACE}", "limit": 100,
                        "opt_fields": "external"}, "records": "data",
                        "match": {"field": "external.gid",
                                  "value": "{{ record.deal_id }}"},
                        "id": "gid", "next": "next_page.offset", "param": "offset"},
                },
            }],
            "on_error": {"retry": {"attempts": 6, "base_seconds": 0.01,
                                   "max_seconds": 0.05}},
        }},
    }


def _add_deals(apis: FakeApis, count: int) -> None:
    for number in range(count):
        apis.crm.add_deal(dealname=f"Deal {number}", client_name=f"Client {number % 97}",
                          amount=f"{1000 + number}.00", dealstage="closedwon",
                          project_due="2026-06-30")


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _request_count(apis: FakeApis) -> int:
    crm = [entry for entry in apis.crm.requests() if entry.route != TOKEN_ROUTE]
    return len(crm) + len(apis.asana.requests())


def _retried(apis: FakeApis) -> int:
    return sum(entry.status == 429 for entry in apis.crm.requests() + apis.asana.requests())


def _run(folder: Path, state: StateStore) -> tuple[FlowResult, float]:
    compiled = compile_project(folder)
    if compiled.plan is None:
        raise SystemExit("the benchmark spec does not compile:\n"
                         + "\n".join(d.to_text() for d in compiled.diagnostics))
    runner = PlanRunner(compiled.plan, folder, state)
    started = time.perf_counter()
    result = runner.run()[0]
    seconds = time.perf_counter() - started
    if result.status != "succeeded":
        raise SystemExit(f"the benchmark run failed: {result.message}")
    return result, seconds


def _measure(name: str, result: FlowResult, seconds: float, requests: int,
             retried: int, pages: int) -> Measure:
    writes = result.created + result.updated
    return Measure(scenario=name, records=result.read, seconds=seconds,
                   requests=requests, floor=pages + writes, created=result.created,
                   updated=result.updated, unchanged=result.unchanged,
                   failed=result.failed, retried=retried)


def run_scenarios(deals: int, page_size: int, percent_429: float,
                  seed: int) -> list[Measure]:
    pages = -(-deals // page_size)
    measures = []
    with tempfile.TemporaryDirectory(prefix="syncplan-rest-") as scratch:
        for faulty in (False, True):
            folder = Path(scratch) / ("faults" if faulty else "clean")
            folder.mkdir()
            (folder / "syncplan.yaml").write_text(
                yaml.safe_dump(_spec(page_size), sort_keys=False), encoding="utf-8")
            state = StateStore(folder / "state.db")
            with FakeApis() as apis, _environment(apis.environment()):
                apis.crm.rng.seed(seed)
                apis.asana.rng.seed(seed + 1)
                _add_deals(apis, deals)
                if faulty:
                    for fake in (apis.crm, apis.asana):
                        fake.add_fault("rate_limit", ratio=percent_429 / 100,
                                       times=None, seconds=0)
                label = (f"first run, {percent_429:g}% 429s" if faulty
                         else "first run")
                result, seconds = _run(folder, state)
                measures.append(_measure(label, result, seconds,
                                         _request_count(apis), _retried(apis), pages))
                if not faulty:
                    before, retried = _request_count(apis), _retried(apis)
                    result, seconds = _run(folder, state)
                    measures.append(_measure("rerun, nothing changed", result, seconds,
                                             _request_count(apis) - before,
                                             _retried(apis) - retried, pages))
            state.close()
    return measures


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


def report(measures: list[Measure], deals: int, page_size: int, command: str) -> str:
    lines = [
        "# REST benchmark: CRM deals search to project-tool projects",
        "",
        f"- machine: {machine()}",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`",
        (f"- {deals:,} won deals in pages of {page_size}"
         f" ({-(-deals // page_size)} pages); fakes on 127.0.0.1 in this process"),
        "",
        ("| scenario | records | seconds | records/s | requests | floor"
         " | requests/floor | 429s | created | updated | unchanged | failed |"),
        ("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
         " ---: |"),
    ]
    for m in measures:
        rate = m.records / m.seconds if m.seconds else 0.0
        ratio = m.requests / m.floor if m.floor else 0.0
        lines.append(f"| {m.scenario} | {m.records:,} | {m.seconds:.2f} | {rate:,.0f}"
                     f" | {m.requests:,} | {m.floor:,} | {ratio:.3f} | {m.retried:,}"
                     f" | {m.created:,} | {m.updated:,} | {m.unchanged:,}"
                     f" | {m.failed:,} |")
    lines += [
        "",
        ("The floor is one request per page read plus one per record written."
         " Requests exclude the one OAuth token request of each run's read."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=10_000,
                        help="won deals in the fake CRM (default 10000)")
    parser.add_argument("--page-size", type=int, default=100,
                        help="deals per search page (default 100)")
    parser.add_argument("--429-percent", dest="percent_429", type=float, default=10.0,
                        help="percent of requests that get a 429 in the faults"
                        " scenario (default 10)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the fault draws (default 7)")
    parser.add_argument("--output", type=Path, help="also write the report here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    measures = run_scenarios(args.deals, args.page_size, args.percent_429, args.seed)
    command = shlex.join(["python", "benchmarks/rest.py", *sys.argv[1:]])
    text = report(measures, args.deals, args.page_size, command)
    print(text, end="")
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
