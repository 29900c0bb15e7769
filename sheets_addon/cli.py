"""The ``syncplan`` command line.

It sits above the compiler and the runtime (it compiles specs, then runs plans)
and translates their problems into messages and exit codes at one place:
0 success, 1 a problem in the input or a failed run, 2 a usage error (click's
own). A problem in the user's input never prints a traceback; ``--debug`` shows
one for anything unexpected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

import schemas
from compiler import (
    CompileResult,
    Diagnostic,
    PlanLoadError,
    compile_project,
    format_json,
    format_text,
    has_errors,
    load_plan,
    plan_json,
)
from compiler.diagnostics import choices_hint
from compiler.plan import PLAN_FORMAT, Plan
from compiler.project import ROOT_NAMES
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore

logger = logging.getLogger("syncplan")

SUMMARY_COLUMNS = ("flow", "status", "read", "filtered", "created", "updated",
                   "unchanged", "deleted", "failed", "seconds")


class UserError(click.ClickException):
    """A problem in what the user gave; shown as one message, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Log every step and show tracebacks.")
@click.version_option(package_name="syncplan")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """syncplan: compile integration specs into sync plans and run them."""
    ctx.obj = {"debug": debug}
    level = logging.DEBUG if debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _compile_or_exit(path: Path) -> tuple[Plan, Path]:
    result = compile_project(path)
    if result.diagnostics:
        click.echo(format_text(_displayed(result)), err=True)
    if result.plan is None or has_errors(result.diagnostics):
        count = sum(d.severity == "error" for d in result.diagnostics)
        raise UserError(f"{count} error(s) in the spec at {str(path)!r}; nothing was"
                        " run or written")
    assert result.root is not None
    return result.plan, result.root


def _displayed(result: CompileResult) -> list[Diagnostic]:
    """Return the diagnostics with file names relative to the working directory.

    The compiler names files relative to the project root; shown from where the
    command runs, an editor or CI annotation can open them directly.
    """
    if result.root is None:
        return result.diagnostics
    shown = []
    for diagnostic in result.diagnostics:
        path = result.root / diagnostic.file
        try:
            name = os.path.relpath(path)
        except ValueError:  # another drive on Windows
            name = str(path)
        if name.startswith(".." + os.sep + ".."):
            name = str(path)
        shown.append(dataclasses.replace(diagnostic, file=name))
    return shown


def _is_plan_file(path: Path) -> bool:
    """Tell whether ``path`` names a compiled plan rather than a spec.

    A ``.json`` file is a plan, so that a broken one is reported as a plan
    and not as a spec. The exceptions are specs: a file with a spec root name
    (``syncplan.json``), and a JSON object with ``version`` but no ``format``,
    which is a root spec file under another name.
    """
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    if path.name in ROOT_NAMES:
        return False
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True
    return not (isinstance(document, dict) and "version" in document
                and "format" not in document)


def _load_plan_file(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the plan file {str(path)!r}:"
                        f" {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{str(path)!r} is not a runnable plan file: it is not UTF-8"
                        " text; compile the spec again with `syncplan compile`"
                        ) from None
    try:
        return load_plan(text)
    except PlanLoadError as exc:
        reason = str(exc)
        if "compile the spec again" not in reason:
            reason += "; compile the spec again with `syncplan compile`"
        raise UserError(f"{str(path)!r} is not a runnable plan file: {reason}"
                        ) from None


def load_target(path: Path, root: Path | None) -> tuple[Plan, Path]:
    """Return the plan of a spec project or a plan file, and the project root."""
    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist; pass a project folder, its"
                        " syncplan.yaml, or a compiled plan .json file")
    if _is_plan_file(path):
        return _load_plan_file(path), (root or path.resolve().parent)
    plan, spec_root = _compile_or_exit(path)
    return plan, (root or spec_root)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]),
              default="text", show_default=True, help="Output form of diagnostics.")
def validate(path: Path, output_format: str) -> None:
    """Check the spec project at PATH; exit 1 when it has an error."""
    result = compile_project(path)
    if output_format == "json":
        click.echo(format_json(_displayed(result)))
    else:
        if result.diagnostics:
            click.echo(format_text(_displayed(result)))
        errors = sum(d.severity == "error" for d in result.diagnostics)
        warnings = len(result.diagnostics) - errors
        state = "invalid" if errors else "valid"
        click.echo(f"{path}: {state} ({errors} error(s), {warnings} warning(s))",
                   err=True)
    if has_errors(result.diagnostics):
        sys.exit(1)


@cli.command(name="compile")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the plan to this file instead of standard output; its"
              " folder must exist.")
def compile_command(path: Path, output: Path | None) -> None:
    """Compile the spec project at PATH into a plan (JSON)."""
    plan, _root = _compile_or_exit(path)
    text = plan_json(plan)
    if output is None:
        click.echo(text, nl=False)
        return
    # A missing folder is an error, not created: it is most often a typo.
    _check_parent_folder(output, "--output")
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the plan to {str(output)!r}:"
                        f" {_write_problem(exc, output)}") from None
    click.echo(f"wrote {output} ({PLAN_FORMAT}, {len(plan.flows)} flow(s))", err=True)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write the schema files into this folder instead of printing"
              " them. The folder is created if missing, but its parent folder"
              " must exist.")
def schema(out_dir: Path | None) -> None:
    """Print every JSON Schema as one object keyed by file name, or write the files."""
    if out_dir is None:
        bundle = {name: schemas.load_schema(name) for name in schemas.ALL_SCHEMAS}
        click.echo(json.dumps(bundle, indent=2, sort_keys=True))
        return
    # Creating the folder itself saves a step; creating its parents would hide
    # a typo in the path.
    _check_parent_folder(out_dir, "--out")
    try:
        out_dir.mkdir(exist_ok=True)
        for name in schemas.ALL_SCHEMAS:
            (out_dir / name).write_text(schemas.schema_text(name), encoding="utf-8")
    except FileExistsError:
        raise UserError(f"cannot write schemas into {str(out_dir)!r}: it exists and"
                        " is not a folder; pass --out a folder path") from None
    except OSError as exc:
        raise UserError(f"cannot write schemas into {str(out_dir)!r}:"
                        f" {_write_problem(exc, out_dir)}") from None
    click.echo(f"wrote {len(schemas.ALL_SCHEMAS)} schema files into {out_dir}",
               err=True)


def _check_parent_folder(path: Path, option: str) -> None:
    """Raise a ``UserError`` unless the folder that will contain ``path`` exists."""
    parent = path.parent
    if parent.is_dir():
        return
    blocker = _first_non_folder(parent)
    if blocker is not None:
        raise UserError(f"cannot write {str(path)!r}: {str(blocker)!r} is a file,"
                        f" not a folder; pass {option} a path inside a folder")
    raise UserError(f"cannot write {str(path)!r}: the folder {str(parent)!r} does"
                    f" not exist; create it first (mkdir -p {shlex.quote(str(parent))})"
                    f" or correct the {option} path")


def _first_non_folder(path: Path) -> Path | None:
    """Return the first existing ancestor of ``path`` (or itself) that is not a folder."""
    for candidate in reversed([path, *path.parents]):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def _write_problem(exc: OSError, path: Path) -> str:
    """Describe why writing ``path`` failed, with what to do about it."""
    if isinstance(exc, PermissionError):
        return ("permission denied; choose a folder you can write to, or change"
                " the permissions")
    if isinstance(exc, IsADirectoryError):
        return "it is a folder; pass a file name inside it"
    if isinstance(exc, NotADirectoryError):
        blocker = _first_non_folder(path)
        where = f"{str(blocker)!r} is" if blocker is not None else "a part of it is"
        return f"{where} a file, not a folder; pass a path inside a folder"
    return str(exc.strerror or exc)


class _RepeatedInSummary(logging.Filter):
    """Drop the runner's log lines whose text the run summary prints again.

    A failed flow's message and a flow's warnings are printed by the summary.
    The Runs-tab warning is dropped only when its cause is the flow's failure,
    as when a workbook that cannot be opened fails both. Another cause is news,
    so it stays. The runner marks these records with ``SUMMARY_MARK``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, str] = {}  # run id -> failure message

    def filter(self, record: logging.LogRecord) -> bool:
        from runtime.runner import SUMMARY_CAUSE, SUMMARY_MARK

        mark = getattr(record, SUMMARY_MARK, None)
        cause = getattr(record, SUMMARY_CAUSE, None)
        run_id = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if mark == "failed":
            self.failures[str(run_id)] = str(cause)
            return False
        if mark == "warning":
            return False
        if mark == "runs_tab":
            # The failure may name the system before the same cause.
            failure = self.failures.get(str(run_id))
            return failure is None or str(cause) not in failure
        return True


@contextlib.contextmanager
def _summary_replaces_runner_logs() -> Iterator[None]:
    """Silence the runner's log lines that the summary repeats, unless --debug."""
    context = click.get_current_context(silent=True)
    if context is not None and (context.find_root().obj or {}).get("debug"):
        yield
        return
    runner_logger = logging.getLogger("runtime.runner")
    repeated = _RepeatedInSummary()
    runner_logger.addFilter(repeated)
    try:
        yield
    finally:
        runner_logger.removeFilter(repeated)


def _grouped(pairs: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """Group (flow, message) pairs by message, in the order messages first occur."""
    groups: dict[str, list[str]] = {}
    for flow, message in pairs:
        flows = groups.setdefault(message, [])
        if flow not in flows:
            flows.append(flow)
    return [(flows, message) for message, flows in groups.items()]


def _flow_names(flows: list[str]) -> str:
    """Return "flow 'a'" or "flows 'a', 'b' and 'c'"."""
    quoted = [repr(flow) for flow in flows]
    if len(quoted) == 1:
        return f"flow {quoted[0]}"
    return f"flows {', '.join(quoted[:-1])} and {quoted[-1]}"


class _Progress:
    """A one-line display of what a run does: the flow, its phase, records so far.

    The phases are reading and mapping (with a record count), writing each
    destination, and saving a spreadsheet. It is on only when standard output
    and standard error are both terminals (and ``TERM`` is not ``dumb``), so a
    pipe, a file or a CI log never receives its carriage returns.
    """

    def __init__(self) -> None:
        self.enabled = (sys.stdout.isatty() and sys.stderr.isatty()
                        and os.environ.get("TERM") != "dumb")
        self.flow = ""
        self.last = 0.0
        self.drawn = False

    def __call__(self, flow: str, count: int) -> None:
        """Show the records mapped so far; the runner calls this while mapping."""
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        self.flow = flow
        self._show(f"reading and mapping, {count:,} records")

    def phase(self, text: str, flow: str | None = None) -> None:
        """Show that the run entered a phase, such as writing a destination."""
        if flow is not None:
            self.flow = flow
        if self.enabled:
            self._show(text)

    def _show(self, text: str) -> None:
        # Cut to the width, because a wrapped line cannot be rewritten in place.
        width = shutil.get_terminal_size().columns
        line = f"{self.flow}: {text}"[:max(width - 1, 1)]
        click.echo(f"\r\033[K{line}", nl=False, err=True)
        self.drawn = True

    def clear(self) -> None:
        if self.enabled and self.drawn:
            click.echo("\r\033[K", nl=False, err=True)


class _ShownBackend:
    """A spreadsheet backend that shows on the progress line what it writes and saves.

    The runner reads each tab just before it writes it, so reading a tab marks
    the start of writing it. Everything else goes to the wrapped backend.
    """

    def __init__(self, backend: Any, system_id: str, progress: _Progress) -> None:
        self._backend = backend
        self._system_id = system_id
        self._progress = progress

    def read_tab(self, name: str) -> Any:
        self._progress.phase(f"writing {self._system_id}/{name}")
        return self._backend.read_tab(name)

    def commit(self) -> None:
        self._progress.phase(f"saving {self._backend.location()}")
        self._backend.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


class _ProgressRunner(PlanRunner):
    """A ``PlanRunner`` that shows each flow's phases on a ``_Progress`` line.

    NOTE: this overrides the runner's private steps ``_backend`` and
    ``_write_other``, because its ``progress`` callback reports only the
    mapping. A phase callback in ``PlanRunner`` would make this class
    unnecessary.
    """

    def __init__(self, plan: Plan, root: Path, state: StateStore,
                 progress: _Progress) -> None:
        super().__init__(plan, root, state, progress=progress)
        self.display = progress

    def run_flow(self, flow: Any, run_id: str | None = None) -> FlowResult:
        self.display.phase("reading", flow=flow.id)
        return super().run_flow(flow, run_id)

    def _backend(self, system: Any) -> Any:
        return _ShownBackend(super()._backend(system), system.id, self.display)

    def _write_other(self, flow: Any, destination: Any, *args: Any,
                     **kwargs: Any) -> None:
        self.display.phase(f"writing {destination.system}/{destination.object}",
                           flow=flow.id)
        super()._write_other(flow, destination, *args, **kwargs)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--flow", "flows", multiple=True, help="Run only this flow (repeatable).")
@click.option("--state", "state_path", type=click.Path(path_type=Path, dir_okay=False),
              help="SQLite state file; default .syncplan/state.db in the project.")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False),
              help="Project folder that relative paths of a plan file refer to;"
              " default the plan file's folder.")
def run(path: Path, flows: tuple[str, ...], state_path: Path | None,
        root: Path | None) -> None:
    """Run the flows of the spec project or plan file at PATH."""
    plan, project_root = load_target(path, root)
    _check_flows(plan, flows)
    if not plan.flows:
        _report_no_flows(path)
        return
    state = _open_state(state_path or project_root / ".syncplan" / "state.db")
    progress = _Progress()
    runner = (_ProgressRunner(plan, project_root, state, progress) if progress.enabled
              else PlanRunner(plan, project_root, state))
    try:
        with _summary_replaces_runner_logs():
            results = runner.run(list(flows) or None)
    finally:
        progress.clear()
        state.close()
    _print_summary(results)
    if any(result.status != "succeeded" for result in results):
        sys.exit(1)


@cli.command(name="plan")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--flow", "flows", multiple=True, help="Preview only this flow"
              " (repeatable).")
@click.option("--state", "state_path", type=click.Path(path_type=Path, dir_okay=False),
              help="SQLite state file; default .syncplan/state.db in the project.")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False),
              help="Project folder that relative paths of a plan file refer to.")
def plan_command(path: Path, flows: tuple[str, ...], state_path: Path | None,
                 root: Path | None) -> None:
    """Show what a run would change in each destination, without writing."""
    plan, project_root = load_target(path, root)
    _check_flows(plan, flows)
    if not plan.flows:
        _report_no_flows(path)
        return
    state_file = state_path or project_root / ".syncplan" / "state.db"
    # A preview writes nothing, not even a new state file: without one it starts
    # from an empty store in memory.
    state = _open_state(state_file) if state_file.exists() else StateStore(":memory:")
    try:
        with _summary_replaces_runner_logs():
            results = PlanRunner(plan, project_root, state, dry_run=True).run(
                list(flows) or None)
    finally:
        state.close()
    for result in results:
        if result.status != "succeeded":
            continue
        for preview in result.previews:
            click.echo(f"{result.flow} -> {preview.destination}: {preview.created}"
                       f" to create, {preview.updated} to update, {preview.unchanged}"
                       f" unchanged, {preview.deleted} to delete")
            for cell, old, new in preview.changed_cells:
                click.echo(f"  {cell}: {old!r} -> {new!r}")
        for warning in result.warnings:
            click.echo(f"{result.flow}: warning: {warning}", err=True)
        if result.errors:
            click.echo(f"{result.flow}: {len(result.errors)} record error(s) would be"
                       " reported; first ones:", err=True)
            _print_first_errors(result)
    failures = [(r.flow, str(r.message)) for r in results if r.status != "succeeded"]
    for names, message in _grouped(failures):
        click.echo(f"error: cannot preview flow {names[0]!r}: {message}", err=True)
        if names[1:]:
            click.echo(f"error: cannot preview {_flow_names(names[1:])} for the same"
                       " reason", err=True)
    if failures:
        sys.exit(1)


def _report_no_flows(path: Path) -> None:
    # Not an error: the project is valid, it only has nothing to do yet. A spec
    # got warning W210 with its position and fix just before; a plan did not.
    if _is_plan_file(path):
        click.echo(f"no flows to run: the plan {str(path)!r} has none; add a flow"
                   " under 'flows:' in the spec and compile it again", err=True)
    else:
        click.echo("no flows to run", err=True)


def _check_flows(plan: Plan, flows: tuple[str, ...]) -> None:
    known = [flow.id for flow in plan.flows]
    for flow_id in flows:
        if flow_id not in known:
            raise click.UsageError(f"unknown flow {flow_id!r}; "
                                   + choices_hint(flow_id, known, "flow"))


def _open_state(state_file: Path) -> StateStore:
    try:
        return StateStore(state_file)
    except OSError as exc:
        raise UserError(f"cannot open the state store {str(state_file)!r}:"
                        f" {exc.strerror or exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot open the state store {str(state_file)!r}: {exc};"
                        " pass another --state file") from None


def _print_first_errors(result: FlowResult, count: int = 3) -> None:
    """Print the first error records of a run, one indented line each, to stderr."""
    for error in result.errors[:count]:
        where = error.get("record_key") or error.get("position") or "?"
        field = f" {error['field']}" if error.get("field") else ""
        click.echo(f"  [{error['code']}] {where}{field}: {error['message']}", err=True)


def _print_summary(results: list[FlowResult]) -> None:
    rows = [[r.flow, r.status, r.read, r.filtered, r.created, r.updated, r.unchanged,
             r.deleted, r.failed, f"{r.seconds:.2f}"] for r in results]
    widths = [max(len(str(cell)) for cell in column)
              for column in zip(SUMMARY_COLUMNS, *rows)]
    for line in [list(SUMMARY_COLUMNS), *rows]:
        click.echo("  ".join(str(cell).ljust(width) if index < 2
                             else str(cell).rjust(width)
                             for index, (cell, width) in enumerate(zip(line, widths))))
    # "report/Clients (out/report.xlsx)": one line per place, listing the objects
    # whose data changed. The Errors and Runs tabs get rows on every run, so
    # they do not make a place count as written.
    objects: dict[str, list[str]] = {}
    for result in results:
        if result.status != "succeeded":
            continue  # a failed run may not have saved what it wrote
        for destination in result.destinations:
            label, _, where = destination.partition(" (")
            labels = objects.setdefault(where.rstrip(")") or label, [])
            if destination in result.changed and label not in labels:
                labels.append(label)
    for where, labels in objects.items():
        if labels:
            click.echo(f"wrote {where}: {', '.join(labels)}")
        else:
            click.echo(f"no data changes in {where}")
    for result in results:
        if result.errors:
            kept = "the state store"
            if result.wrote_spreadsheet:
                kept += " and the Errors tab"
            click.echo(f"{result.flow}: {len(result.errors)} record error(s), kept in"
                       f" {kept}; first ones:", err=True)
            _print_first_errors(result)
    # Each distinct text is printed once: a broken workbook fails every flow
    # that writes it with the same message.
    warnings = [(r.flow, warning) for r in results for warning in r.warnings]
    for names, warning in _grouped(warnings):
        click.echo(f"warning: flow {names[0]!r}: {warning}", err=True)
        if names[1:]:
            click.echo(f"warning: the same warning for {_flow_names(names[1:])}",
                       err=True)
    failures = [(r.flow, str(r.message)) for r in results if r.status != "succeeded"]
    for names, message in _grouped(failures):
        click.echo(f"error: flow {names[0]!r} failed: {message}", err=True)
        if names[1:]:
            click.echo(f"error: {_flow_names(names[1:])} failed with the same error",
                       err=True)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int,
              help="TCP port to listen on.")
@click.option("--state", "state_path", type=click.Path(path_type=Path, dir_okay=False),
              help="SQLite state file; default .syncplan/state.db in the project.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Runs executed at the same time by this process.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="HTTP request threads of the WSGI server (waitress).")
@click.option("--client-id", envvar="SYNCPLAN_OAUTH_CLIENT_ID",
              help="OAuth client id of the add-on; ID tokens must carry it as"
              " their audience.  [env: SYNCPLAN_OAUTH_CLIENT_ID]")
@click.option("--public-url", envvar="SYNCPLAN_PUBLIC_URL",
              help="Scheme and host callers use, such as https://sync.example;"
              " webhook signatures that cover the URL are checked against it.")
@click.option("--dev", "dev_mode", is_flag=True,
              help="Run without an OAuth client id, accepting API keys only;"
              " loopback addresses only.")
def serve(path: Path, host: str, port: int, state_path: Path | None, workers: int,
          threads: int, client_id: str | None, public_url: str | None,
          dev_mode: bool) -> None:
    """Serve the JSON API of the spec project at PATH for the Sheets add-on."""
    import waitress

    from sheets_addon.server import ServerConfigError, create_app

    if not client_id and not dev_mode:
        # Checked here rather than left to create_app, so that the message names
        # this command's options and the exit code is the usage one.
        raise click.UsageError(
            "no OAuth client id, so the add-on's Google ID tokens cannot be"
            " verified; pass --client-id (or set SYNCPLAN_OAUTH_CLIENT_ID), or"
            " pass --dev to accept API keys only, on a loopback address")
    if dev_mode and host not in LOOPBACK_HOSTS:
        raise UserError(f"--dev binds to loopback only, not {host!r}; drop --host"
                        " or pass --client-id to serve beyond this machine")
    from sheets_addon.server.logs import LOG_LEVEL_ENV, parse_level

    try:
        level = parse_level(os.environ.get(LOG_LEVEL_ENV))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for name in ("sheets_addon", "runtime"):
        logging.getLogger(name).setLevel(level if level is not None else logging.INFO)
    try:
        app = create_app(path, state_path=state_path, oauth_client_id=client_id,
                         dev_mode=dev_mode, workers=workers, public_url=public_url)
    except ServerConfigError as exc:
        raise UserError(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        raise UserError(f"cannot open the state store: {exc}; pass another --state"
                        " file") from None
    backend = app.extensions["syncplan"]
    try:
        server = waitress.create_server(app, host=host, port=port, threads=threads,
                                        ident="syncplan")
    except OSError as exc:
        backend.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc};"
                        " pick another --port or stop what uses it") from None
    bound_port = server.effective_port if hasattr(server, "effective_port") else port
    click.echo(f"serving {path} on http://{host}:{bound_port}/api/v1"
               f" ({workers} worker(s))", err=True)
    # SIGTERM (systemd, docker stop) ends the serve loop like Ctrl-C, so the
    # finally below lets running runs finish or marks them interrupted.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        backend.close()


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(0)


@cli.group()
def keys() -> None:
    """Create, list and revoke the API keys of server-to-server callers."""


def _server_store(path: Path | None, state_path: Path | None) -> Any:
    from sheets_addon.server.store import ServerStore

    if state_path is None:
        if path is None:
            raise click.UsageError("pass --state FILE or --project PATH")
        _plan, root = load_target(path, None)
        state_path = root / ".syncplan" / "state.db"
    try:
        return ServerStore(state_path)
    except (OSError, sqlite3.DatabaseError) as exc:
        raise UserError(f"cannot open the state store {str(state_path)!r}: {exc}"
                        ) from None


_KEY_OPTIONS = [
    click.option("--state", "state_path",
                 type=click.Path(path_type=Path, dir_okay=False),
                 help="SQLite state file the server uses."),
    click.option("--project", "project", type=click.Path(path_type=Path),
                 help="Spec project whose default state file to use."),
]


def _key_options(command: Any) -> Any:
    for option in reversed(_KEY_OPTIONS):
        command = option(command)
    return command


@keys.command(name="create")
@click.option("--name", required=True, help="Who or what uses the key.")
@_key_options
def keys_create(name: str, state_path: Path | None, project: Path | None) -> None:
    """Create an API key and print it once; only its hash is stored."""
    store = _server_store(project, state_path)
    try:
        record, key = store.create_api_key(name)
    finally:
        store.close()
    click.echo(key)
    click.echo(f"created key {record.key_id} for {name!r}; store it now, it is not"
               " shown again", err=True)


@keys.command(name="list")
@_key_options
def keys_list(state_path: Path | None, project: Path | None) -> None:
    """List API keys: id, name, creation time, revocation time."""
    store = _server_store(project, state_path)
    try:
        records = store.api_keys()
    finally:
        store.close()
    for record in records:
        state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
        click.echo(f"{record.key_id}  {record.name}  created {record.created_at}"
                   f"  {state}")


@keys.command(name="revoke")
@click.argument("key_id")
@_key_options
def keys_revoke(key_id: str, state_path: Path | None, project: Path | None) -> None:
    """Revoke the API key with id KEY_ID (as shown by 'keys list')."""
    store = _server_store(project, state_path)
    try:
        revoked = store.revoke_api_key(key_id)
    finally:
        store.close()
    if not revoked:
        raise UserError(f"no active key {key_id!r}; 'syncplan keys list' shows the"
                        " key ids")
    click.echo(f"revoked key {key_id}", err=True)


@cli.group()
def demo() -> None:
    """Run a bundled example against local fake APIs, with no account needed."""


@demo.command(name="closed-won")
@click.option("--runs", default=2, show_default=True, type=click.IntRange(1, 10),
              help="How many times every flow runs.")
@click.option("--faults", is_flag=True,
              help="Make the fake APIs respond to some requests with a 429, a 500, an"
              " expired token or a slow response, and drop the connection of a"
              " project create and of a note create after they applied.")
@click.option("--keep", type=click.Path(path_type=Path, file_okay=False),
              help="Copy the project into this folder and keep it there (report"
              " workbook, state file). The folder must be new or empty; default a"
              " temporary folder, deleted when the demo ends.")
@click.option("--example", type=click.Path(path_type=Path, file_okay=False),
              help="The closed-won example folder; default the one in this source"
              " tree.")
@click.pass_context
def demo_closed_won(ctx: click.Context, runs: int, faults: bool, keep: Path | None,
                    example: Path | None) -> None:
    """Turn won CRM deals into projects, against local fakes of both APIs."""
    from sheets_addon.demo.closed_won import DemoFailed, DemoReport, run_closed_won

    deliberate: dict[str, str] = {}
    explained: set[str] = set()

    def start(report: DemoReport) -> None:
        deliberate.update(report.deliberate)

    def show(number: int, results: list[FlowResult]) -> None:
        click.echo(f"run {number} of {runs}:")
        _print_summary(results)
        failed = {error.get("record_key") for result in results
                  for error in result.errors}
        for deal_id, reason in deliberate.items():
            if deal_id in failed and deal_id not in explained:
                explained.add(deal_id)
                click.echo(f"deal {deal_id} fails on purpose: {reason}. Its errors"
                           " are expected on every run, and the other deals are"
                           " not held up by it.", err=True)

    # The summary prints the record errors, so their log lines would repeat them.
    records = logging.getLogger("runtime.destinations.http.records")
    level = records.level
    if not ctx.obj.get("debug"):
        records.setLevel(logging.ERROR)
    try:
        report = run_closed_won(example, runs=runs, faults=faults, folder=keep,
                                on_start=start, on_run=show,
                                on_change=lambda text: click.echo(f"changed: {text}"))
    except DemoFailed as exc:
        raise UserError(str(exc)) from None
    finally:
        records.setLevel(level)
    click.echo(f"the fake project tool has {report.projects} projects and"
               f" {report.tasks} tasks, the fake CRM has {report.notes} notes"
               f" ({report.requests} requests in all)")
    if report.temporary:
        click.echo(f"{report.folder} was a temporary copy of the example and is"
                   " deleted now, with its report workbook and state; run with"
                   " --keep DIR to keep them")
    else:
        click.echo(f"the project, its report workbook and state are in {report.folder}")
    problems = report.problems()
    for problem in problems:
        click.echo(f"error: the demo did not go as designed: {problem}", err=True)
    if problems:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="syncplan", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug in syncplan, not a user mistake
        if debug:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc}\n"
                   "this is a bug in syncplan; run again with --debug for the"
                   " traceback and report it", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
