"""Run the closed-won example against the fake APIs: the ``syncplan demo closed-won`` command.

``run_closed_won`` copies the example project into a scratch folder and
starts ``FakeApis`` on loopback with the sample deals. It points the spec at
them through environment variables, set only inside this process and only
while the demo runs. Then it compiles the spec and runs every flow the given
number of times.

Between the first and the second run, a deal's amount changes in the CRM and
its project's status in the project tool, so the second run shows one update
going each way. One sample deal has its dates swapped on purpose, so that every
run shows an error record (``DemoReport.deliberate``). With ``faults``, the
fakes respond to some requests with a 429 and Retry-After, a 500, an expired
access token or a slow response, and one project create and one note create
lose their connection after the record was made.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from compiler import compile_project, format_text, has_errors
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore
from sheets_addon.demo.fake_apis import SAMPLE_DEALS, FakeApis

__all__ = ["DemoFailed", "DemoReport", "default_example", "inject_demo_faults",
           "run_closed_won"]

logger = logging.getLogger(__name__)


class DemoFailed(Exception):
    """The demo cannot run; the message names the cause."""


@dataclass
class DemoReport:
    """The results of each run, and what the fakes hold afterwards.

    ``deliberate`` maps the id of each sample deal that fails on purpose to
    the reason. ``temporary`` is true when ``folder`` is removed as the demo
    ends. ``expected_projects`` is the number of projects the fake project
    tool contains after a demo that went as designed.
    """

    folder: Path
    temporary: bool = False
    deliberate: dict[str, str] = field(default_factory=dict)
    runs: list[list[FlowResult]] = field(default_factory=list)
    projects: int = 0
    expected_projects: int = 0
    tasks: int = 0
    notes: int = 0
    requests: int = 0

    def problems(self) -> list[str]:
        """Return the reasons the demo did not go as designed, or an empty list.

        A failed flow, a record error of a deal that is not meant to fail, or
        a project count other than expected is a problem. The deliberate
        deal's errors are not.
        """
        found = []
        for number, results in enumerate(self.runs, start=1):
            for result in results:
                if result.status != "succeeded":
                    found.append(f"flow {result.flow!r} failed in run {number}")
                unexpected = [error for error in result.errors
                              if error.get("record_key") not in self.deliberate]
                if unexpected:
                    first = unexpected[0]
                    where = first.get("record_key") or first.get("position")
                    found.append(f"flow {result.flow!r} has {len(unexpected)}"
                                 f" unexpected record error(s) in run {number}"
                                 f" (first: {first['code']} at {where!r})")
        if self.projects != self.expected_projects:
            found.append(f"the fake project tool has {self.projects} projects"
                         f" instead of {self.expected_projects}")
        return found


def default_example() -> Path:
    """Return the closed-won example folder of this source tree."""
    return Path(__file__).resolve().parents[2] / "examples" / "closed-won"


def inject_demo_faults(apis: FakeApis) -> None:
    """Add the demo's faults: one of each kind the example is built to survive."""
    apis.crm.add_fault("expire_token", "POST /crm/v3/objects/deals/search")
    apis.crm.add_fault("rate_limit", "POST /crm/v3/objects/notes", seconds=1)
    apis.crm.add_fault("drop_after_apply", "POST /crm/v3/objects/notes", skip=1)
    apis.asana.add_fault("server_error", "PUT /api/1.0/projects/{gid}")
    apis.asana.add_fault("slow", "GET /api/1.0/projects", seconds=0.5)
    apis.asana.add_fault("drop_after_apply", "POST /api/1.0/projects", skip=1)


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


RunCallback = Callable[[int, list[FlowResult]], None]


@dataclass
class _Callbacks:
    on_start: Callable[[DemoReport], None]
    on_run: RunCallback
    on_change: Callable[[str], None]


def run_closed_won(example: Path | None = None, *, runs: int = 2,
                   faults: bool = False, folder: Path | None = None,
                   on_start: Callable[[DemoReport], None] | None = None,
                   on_run: RunCallback | None = None,
                   on_change: Callable[[str], None] | None = None) -> DemoReport:
    """Run the example ``runs`` times against fresh fakes; return what happened.

    ``folder`` receives the copy of the project (its report workbook and
    state file); without it a temporary folder is used and removed afterwards.
    ``on_start`` is called once the fakes hold the sample deals, before the
    first run, with the report so far (its folder and deliberate failures).
    ``on_run`` is called after each run with its 1-based number and results,
    and ``on_change`` with a description of each change made between runs.
    """
    source = example or default_example()
    if not (source / "syncplan.yaml").is_file():
        raise DemoFailed(f"no closed-won example at {str(source)!r}; pass the folder"
                         " that holds its syncplan.yaml")
    if folder is not None:
        _check_empty_folder(folder)
    callbacks = _Callbacks(on_start or (lambda report: None),
                           on_run or (lambda number, results: None),
                           on_change or (lambda text: None))
    if folder is not None:
        return _run_in(source, folder, False, runs, faults, callbacks)
    with tempfile.TemporaryDirectory(prefix="syncplan-demo-") as scratch:
        return _run_in(source, Path(scratch), True, runs, faults, callbacks)


def _check_empty_folder(folder: Path) -> None:
    """Raise ``DemoFailed`` unless ``folder`` is missing or an empty folder.

    Every demo starts new fake APIs, so the state of an earlier demo in the
    folder would map the deals to records that no longer exist.
    """
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DemoFailed(f"cannot keep the demo in {str(folder)!r}: it is a file;"
                         " choose a new folder")
    if any(folder.iterdir()):
        raise DemoFailed(f"cannot keep the demo in {str(folder)!r}: the folder is"
                         " not empty, and the state of an earlier demo would not"
                         " match the new fake APIs; choose a new folder, or delete"
                         " this one first")


def _run_in(source: Path, folder: Path, temporary: bool, runs: int, faults: bool,
            callbacks: _Callbacks) -> DemoReport:
    project = folder / "closed-won"
    shutil.copytree(source, project, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".syncplan", "out"))
    report = DemoReport(folder=project, temporary=temporary)
    with FakeApis() as apis, _environment(apis.environment()):
        deal_ids = apis.add_sample_deals()
        report.deliberate = _deliberate_failures(deal_ids)
        won = sum(deal["dealstage"] == "closedwon" for deal in SAMPLE_DEALS)
        report.expected_projects = won - len(report.deliberate)
        callbacks.on_start(report)
        if faults:
            inject_demo_faults(apis)
        compiled = compile_project(project)
        if compiled.plan is None or has_errors(compiled.diagnostics):
            raise DemoFailed("the example does not compile:\n"
                             + format_text(compiled.diagnostics))
        state = StateStore(project / ".syncplan" / "state.db")
        try:
            for number in range(1, runs + 1):
                logger.info("demo run %d of %d in %s", number, runs, project)
                results = PlanRunner(compiled.plan, project, state).run()
                report.runs.append(results)
                callbacks.on_run(number, results)
                if number == 1 and runs > 1:
                    _change_between_runs(apis, deal_ids[0], callbacks.on_change)
        finally:
            state.close()
        report.projects = len(apis.asana.projects)
        report.tasks = len(apis.asana.tasks)
        report.notes = len(apis.crm.notes)
        report.requests = len(apis.crm.requests()) + len(apis.asana.requests())
    return report


def _deliberate_failures(deal_ids: list[str]) -> dict[str, str]:
    """Return the won sample deals that the project tool rejects, with the reason."""
    failures = {}
    for deal_id, deal in zip(deal_ids, SAMPLE_DEALS, strict=True):
        if deal["dealstage"] != "closedwon":
            continue
        if deal["project_due"] < deal["project_start"]:
            failures[deal_id] = (f"{deal['dealname']!r} has its due date"
                                 f" {deal['project_due']} before its start date"
                                 f" {deal['project_start']}, which the project tool"
                                 " rejects")
    return failures


def _change_between_runs(apis: FakeApis, deal_id: str,
                         on_change: Callable[[str], None]) -> None:
    apis.crm.update_deal(deal_id, amount="52000.00")
    on_change(f"in the CRM, the amount of deal {deal_id} became 52000.00")
    for gid, project in apis.asana.projects.items():
        if (project.get("external") or {}).get("gid") == deal_id:
            apis.asana.set_status(gid, "yellow")
            on_change(f"in the project tool, project {gid} of deal {deal_id} became"
                      " At risk")
