"""Tests of the ``syncplan validate``, ``compile`` and ``schema`` commands.

The last sections cover how ``run`` and ``plan`` read plan files and print
failures.

Each test runs the console command as a separate process, as a user or a CI job
would, and checks its exit code (0 success, 1 a problem in the input, 2 a usage
error) and what it prints.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import schemas
from compiler import compile_project, load_plan, plan_json
from sheets_addon.cli import cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "agency"
SPECS = Path(__file__).resolve().parent / "data" / "specs"
DIAGNOSTIC_KEYS = {"severity", "code", "message", "file", "line", "column", "pointer",
                   "hint"}


def syncplan(*args: str | Path, cwd: Path | None = None,
             **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``syncplan`` console command, with ``env`` added to its environment."""
    script = Path(sys.executable).with_name("syncplan")
    command = [str(script)] if script.exists() else [sys.executable, "-m",
                                                     "sheets_addon"]
    completed = subprocess.run([*command, *map(str, args)], capture_output=True,
                               text=True, timeout=60, check=False, cwd=cwd,
                               env={**os.environ, **env})
    assert "Traceback" not in completed.stdout + completed.stderr
    return completed


# --- validate --------------------------------------------------------------------

def test_validate_valid_project() -> None:
    completed = syncplan("validate", EXAMPLE)
    assert completed.returncode == 0
    assert completed.stdout == ""
    assert "valid (0 error(s), 0 warning(s))" in completed.stderr


def test_validate_warning_exits_zero() -> None:
    completed = syncplan("validate", ".", cwd=SPECS / "extra_scope")
    assert completed.returncode == 0
    assert completed.stdout.startswith("syncplan.yaml:10:7: warning[W501]: ")
    assert "\n  hint: remove the scope" in completed.stdout
    assert "valid (0 error(s), 1 warning(s))" in completed.stderr


def test_validate_errors_exit_one() -> None:
    completed = syncplan("validate", ".", cwd=SPECS / "three_errors")
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    assert lines == [
        "flows.yaml:6:57: error[E102]: unknown key 'colums' at"
        " '/flows/clients/destinations/0'",
        "  hint: did you mean 'columns'?",
        "syncplan.yaml:3:1: error[E102]: unknown key 'projet' at the top of the file",
        "  hint: did you mean 'project'?",
        "syncplan.yaml:12:18: error[E104]: 'sting' is not allowed at"
        " '/entities/client/fields/id/type'",
        "  hint: did you mean 'string'?",
    ]
    assert "invalid (3 error(s), 0 warning(s))" in completed.stderr


def test_validate_every_stage_in_one_run() -> None:
    completed = syncplan("validate", ".", cwd=SPECS / "three_flows")
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    assert lines == [
        "syncplan.yaml:19:51: error[E102]: unknown key 'colums' at"
        " '/flows/a/destinations/0'",
        "  hint: did you mean 'columns'?",
        "syncplan.yaml:21:22: error[E201]: unknown system 'crmm' in the source of"
        " flow 'b'",
        "  hint: did you mean 'crm'?",
        "syncplan.yaml:29:43: error[E602]: destination report/C mirrors records but"
        " names no key",
        "  hint: add 'key: <field>'; mirror deletes rows by it, so it must be explicit",
    ]
    assert "invalid (3 error(s), 0 warning(s))" in completed.stderr


def test_validate_every_stage_in_one_run_json() -> None:
    completed = syncplan("validate", ".", "--format", "json",
                         cwd=SPECS / "three_flows")
    assert completed.returncode == 1
    diagnostics = json.loads(completed.stdout)
    assert [(d["severity"], d["code"], d["file"], d["line"], d["column"],
             d["pointer"]) for d in diagnostics] == [
        ("error", "E102", "syncplan.yaml", 19, 51, "/flows/a/destinations/0/colums"),
        ("error", "E201", "syncplan.yaml", 21, 22, "/flows/b/source/system"),
        ("error", "E602", "syncplan.yaml", 29, 43, "/flows/c/destinations/0/mode"),
    ]
    for entry in diagnostics:
        assert set(entry) == DIAGNOSTIC_KEYS
        assert entry["hint"]


def test_validate_schema_and_ownership_errors() -> None:
    completed = syncplan("validate", SPECS / "schema_and_ownership", "--format",
                         "json")
    assert completed.returncode == 1
    codes = [entry["code"] for entry in json.loads(completed.stdout)]
    assert codes == ["E104", "E303"]


def test_validate_root_file_path() -> None:
    completed = syncplan("validate", SPECS / "three_errors" / "syncplan.yaml")
    assert completed.returncode == 1
    assert "error[E104]" in completed.stdout


def test_validate_json_format() -> None:
    completed = syncplan("validate", ".", "--format", "json",
                         cwd=SPECS / "three_errors")
    assert completed.returncode == 1
    diagnostics = json.loads(completed.stdout)
    assert isinstance(diagnostics, list)
    assert len(diagnostics) == 3
    for entry in diagnostics:
        assert set(entry) == DIAGNOSTIC_KEYS
        assert entry["severity"] == "error"
        assert isinstance(entry["line"], int)
        assert isinstance(entry["column"], int)
    assert diagnostics[0] == {
        "severity": "error",
        "code": "E102",
        "message": "unknown key 'colums' at '/flows/clients/destinations/0'",
        "file": "flows.yaml",
        "line": 6,
        "column": 57,
        "pointer": "/flows/clients/destinations/0/colums",
        "hint": "did you mean 'columns'?",
    }


def test_validate_json_format_valid() -> None:
    completed = syncplan("validate", EXAMPLE, "--format", "json")
    assert completed.returncode == 0
    assert json.loads(completed.stdout) == []


def test_validate_json_format_warning() -> None:
    completed = syncplan("validate", SPECS / "extra_scope", "--format", "json")
    assert completed.returncode == 0
    diagnostics = json.loads(completed.stdout)
    assert [(d["severity"], d["code"]) for d in diagnostics] == [("warning", "W501")]
    assert set(diagnostics[0]) == DIAGNOSTIC_KEYS


def test_validate_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-project"
    completed = syncplan("validate", missing)
    assert completed.returncode == 1
    assert f"error[E014]: {str(missing)!r} does not exist" in completed.stdout
    assert "hint: pass the folder that holds syncplan.yaml" in completed.stdout


def test_validate_folder_without_spec(tmp_path: Path) -> None:
    completed = syncplan("validate", tmp_path)
    assert completed.returncode == 1
    assert "none of syncplan.yaml, syncplan.yml, syncplan.json exists" in (
        completed.stdout)


def test_validate_folder_without_spec_names_file(tmp_path: Path) -> None:
    (tmp_path / "w8").mkdir()
    completed = syncplan("validate", "w8", cwd=tmp_path)
    assert completed.returncode == 1
    assert completed.stdout.startswith(
        f"w8{os.sep}syncplan.yaml:1:1: error[E014]: no project found at 'w8'")


def test_validate_missing_path_names_it(tmp_path: Path) -> None:
    completed = syncplan("validate", "nowhere", cwd=tmp_path)
    assert completed.returncode == 1
    assert completed.stdout.startswith(
        "nowhere:1:1: error[E014]: 'nowhere' does not exist")


@pytest.mark.parametrize(("args", "message"), [
    (("validate",), "Missing argument 'PATH'"),
    (("validate", "--bogus", "x"), "No such option '--bogus'"),
    (("validate", ".", "--format", "xml"),
     "Invalid value for '--format': 'xml' is not one of 'text', 'json'"),
    (("compile",), "Missing argument 'PATH'"),
    (("compile", ".", "--output"), "Option '--output' requires an argument"),
    (("frobnicate",), "No such command 'frobnicate'"),
])
def test_usage_error_exits_two(args: tuple[str, ...], message: str) -> None:
    completed = syncplan(*args)
    assert completed.returncode == 2
    assert f"Error: {message}" in completed.stderr
    assert completed.stdout == ""


# --- compile ---------------------------------------------------------------------

def test_compile_to_file(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    output = tmp_path / "plans" / "agency.plan.json"
    completed = syncplan("compile", EXAMPLE, "-o", output)
    assert completed.returncode == 0
    assert completed.stdout == ""
    assert f"wrote {output} (syncplan.plan/1, 4 flow(s))" in completed.stderr
    result = compile_project(EXAMPLE)
    assert result.plan is not None
    text = output.read_text(encoding="utf-8")
    assert text == plan_json(result.plan)
    assert load_plan(text) == result.plan


def test_compile_to_stdout() -> None:
    completed = syncplan("compile", EXAMPLE)
    assert completed.returncode == 0
    result = compile_project(EXAMPLE)
    assert result.plan is not None
    assert completed.stdout == plan_json(result.plan)


def test_compile_same_bytes_twice(tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    second = tmp_path / "second.json"
    assert syncplan("compile", EXAMPLE, "-o", first).returncode == 0
    assert syncplan("compile", EXAMPLE, "-o", second, cwd=tmp_path).returncode == 0
    assert first.read_bytes() == second.read_bytes()


def test_compile_errors_write_nothing(tmp_path: Path) -> None:
    output = tmp_path / "plan.json"
    completed = syncplan("compile", SPECS / "three_errors", "-o", output)
    assert completed.returncode == 1
    assert not output.exists()
    assert completed.stdout == ""
    assert "syncplan.yaml:12:18: error[E104]:" in completed.stderr
    assert "error: 3 error(s) in the spec" in completed.stderr


def test_compile_missing_path(tmp_path: Path) -> None:
    completed = syncplan("compile", tmp_path / "nowhere")
    assert completed.returncode == 1
    assert "does not exist" in completed.stderr


def test_compile_output_under_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    completed = syncplan("compile", EXAMPLE, "-o", blocker / "plan.json")
    assert completed.returncode == 1
    assert f"{str(blocker)!r} is a file, not a folder" in completed.stderr
    assert "File exists" not in completed.stderr


def test_compile_output_under_file_deeper(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    completed = syncplan("compile", EXAMPLE, "-o", blocker / "sub" / "plan.json")
    assert completed.returncode == 1
    assert f"{str(blocker)!r} is a file, not a folder" in completed.stderr


def test_compile_output_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "typo" / "dir"
    completed = syncplan("compile", EXAMPLE, "-o", folder / "plan.json")
    assert completed.returncode == 1
    assert f"the folder {str(folder)!r} does not exist" in completed.stderr
    assert "create it first" in completed.stderr
    assert "wrote" not in completed.stderr
    assert not (tmp_path / "typo").exists()


def test_compile_output_permission_denied(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated, because tests may run as root, whom file modes do not stop.
    def deny(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", deny)
    output = tmp_path / "plan.json"
    result = CliRunner().invoke(cli, ["compile", str(EXAMPLE), "-o", str(output)])
    assert result.exit_code == 1
    assert f"cannot write the plan to {str(output)!r}: permission denied" in (
        result.stderr)


def test_compile_output_is_folder(tmp_path: Path) -> None:
    completed = syncplan("compile", EXAMPLE, "-o", tmp_path)
    assert completed.returncode == 2
    assert "is a directory" in completed.stderr


# --- schema ----------------------------------------------------------------------

def test_schema_prints_every_schema() -> None:
    completed = syncplan("schema")
    assert completed.returncode == 0
    bundle = json.loads(completed.stdout)
    assert sorted(bundle) == sorted(schemas.ALL_SCHEMAS)
    for name in schemas.ALL_SCHEMAS:
        assert bundle[name] == schemas.load_schema(name)


def test_schema_out_writes_files(tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    completed = syncplan("schema", "--out", target)
    assert completed.returncode == 0
    assert sorted(path.name for path in target.iterdir()) == sorted(schemas.ALL_SCHEMAS)
    for name in schemas.ALL_SCHEMAS:
        written = (target / name).read_text(encoding="utf-8")
        assert written == (REPO / "schemas" / name).read_text(encoding="utf-8")
    assert f"wrote {len(schemas.ALL_SCHEMAS)} schema files" in completed.stderr


def test_schema_out_under_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    completed = syncplan("schema", "--out", blocker / "schemas")
    assert completed.returncode == 1
    assert f"{str(blocker)!r} is a file, not a folder" in completed.stderr


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_schema_out_is_device() -> None:
    # click rejects a regular file as --out itself (exit 2), but not a device.
    completed = syncplan("schema", "--out", "/dev/null")
    assert completed.returncode == 1
    assert "cannot write schemas into '/dev/null': it exists and is not a" \
        " folder" in completed.stderr
    assert "File exists" not in completed.stderr


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_compile_output_under_device() -> None:
    completed = syncplan("compile", EXAMPLE, "-o", "/dev/null/plan.json")
    assert completed.returncode == 1
    assert "'/dev/null' is a file, not a folder" in completed.stderr
    assert "File exists" not in completed.stderr


def test_schema_out_missing_parent(tmp_path: Path) -> None:
    parent = tmp_path / "typo"
    completed = syncplan("schema", "--out", parent / "schemas")
    assert completed.returncode == 1
    assert f"the folder {str(parent)!r} does not exist" in completed.stderr
    assert "create it first" in completed.stderr
    assert not parent.exists()


def test_schema_out_file_name_is_folder(tmp_path: Path) -> None:
    (tmp_path / schemas.ALL_SCHEMAS[0]).mkdir()
    completed = syncplan("schema", "--out", tmp_path)
    assert completed.returncode == 1
    assert "it is a folder" in completed.stderr


def test_schema_help_names_parent_rule() -> None:
    completed = syncplan("schema", "--help")
    assert completed.returncode == 0
    assert "parent folder must exist" in " ".join(completed.stdout.split())


def test_validate_names_files_from_working_directory(tmp_path: Path) -> None:
    project = tmp_path / "agency"
    project.mkdir()
    (project / "syncplan.yaml").write_text("version: 1\nsystems:\n  a: {kind: cvs}\n")

    completed = syncplan("validate", "agency", cwd=tmp_path)

    assert completed.returncode == 1
    first = completed.stdout.splitlines()[0]
    assert first.startswith(f"agency{os.sep}syncplan.yaml:3:")


# --- plan files given to run and plan ------------------------------------------------

def test_run_truncated_plan_file(tmp_path: Path) -> None:
    result = compile_project(EXAMPLE)
    assert result.plan is not None
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan_json(result.plan)[:300], encoding="utf-8")

    completed = syncplan("run", plan_file)

    assert completed.returncode == 1
    assert f"error: {str(plan_file)!r} is not a runnable plan file: not JSON" in (
        completed.stderr)
    assert "compile the spec again with `syncplan compile`" in completed.stderr
    assert "error[E" not in completed.stderr
    assert "in the spec" not in completed.stderr


def test_run_plan_file_not_object(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text("[]\n", encoding="utf-8")

    completed = syncplan("run", plan_file)

    assert completed.returncode == 1
    assert f"{str(plan_file)!r} is not a runnable plan file" in completed.stderr
    assert "version: 1" not in completed.stderr
    assert "in the spec" not in completed.stderr


def test_plan_json_spec_root_stays_spec(tmp_path: Path) -> None:
    # A root spec file in JSON under any name is compiled, not read as a plan.
    import yaml

    project = tmp_path / "agency"
    shutil.copytree(EXAMPLE, project,
                    ignore=shutil.ignore_patterns("out", ".syncplan"))
    root = yaml.safe_load((project / "syncplan.yaml").read_text(encoding="utf-8"))
    (project / "syncplan.yaml").unlink()
    (project / "project.json").write_text(json.dumps(root), encoding="utf-8")

    completed = syncplan("plan", project / "project.json", "--flow", "clients")

    assert completed.returncode == 0, completed.stderr
    assert "clients -> report/Clients:" in completed.stdout


# --- failures printed once -----------------------------------------------------------

def broken_workbook_project(tmp_path: Path) -> tuple[Path, Path]:
    """Copy the agency example with a report workbook that is not an .xlsx file."""
    project = tmp_path / "agency"
    shutil.copytree(EXAMPLE, project,
                    ignore=shutil.ignore_patterns("out", ".syncplan"))
    workbook = project / "out" / "agency-report.xlsx"
    workbook.parent.mkdir()
    workbook.write_text("not a zip file\n", encoding="utf-8")
    return project, workbook


def test_run_same_failure_printed_once(tmp_path: Path) -> None:
    project, workbook = broken_workbook_project(tmp_path)

    completed = syncplan("run", project)

    output = completed.stdout + completed.stderr
    assert completed.returncode == 1
    assert output.count(str(workbook)) == 1
    assert f"error: flow 'clients' failed: Cannot open {str(workbook)!r}" in (
        completed.stderr)
    assert ("error: flows 'deals', 'calendar_hours' and 'utilization' failed with"
            " the same error\n") in completed.stderr
    assert "runtime.runner" not in completed.stderr


def test_plan_same_failure_printed_once(tmp_path: Path) -> None:
    project, workbook = broken_workbook_project(tmp_path)

    completed = syncplan("plan", project)

    assert completed.returncode == 1
    assert (completed.stdout + completed.stderr).count(str(workbook)) == 1
    assert "error: cannot preview flow 'clients': Cannot open" in completed.stderr
    assert ("error: cannot preview flows 'deals', 'calendar_hours' and"
            " 'utilization' for the same reason") in completed.stderr


def test_run_debug_keeps_runner_logs(tmp_path: Path) -> None:
    project, workbook = broken_workbook_project(tmp_path)

    completed = syncplan("--debug", "run", project, "--flow", "clients")

    assert completed.returncode == 1
    assert "ERROR runtime.runner: run " in completed.stderr
    assert "error: flow 'clients' failed:" in completed.stderr


def test_summary_filter_keeps_other_runs_tab_cause() -> None:
    from runtime.runner import SUMMARY_CAUSE, SUMMARY_MARK
    from sheets_addon.cli import _RepeatedInSummary

    def record(msg: str, args: tuple[object, ...], mark: str | None = None,
               cause: str | None = None) -> logging.LogRecord:
        made = logging.LogRecord("runtime.runner", logging.WARNING, __file__, 1,
                                 msg, args, None)
        if mark is not None:
            setattr(made, SUMMARY_MARK, mark)
            setattr(made, SUMMARY_CAUSE, cause)
        return made

    repeated = _RepeatedInSummary()
    failed = record("run %s of flow %s failed: %s", ("r1", "clients", "disk full"),
                    "failed", "system 'report': disk full")
    same = record("run %s ...: %s", ("r1", "clients", "report", "disk full"),
                  "runs_tab", "disk full")
    other = record("run %s ...: %s", ("r1", "clients", "report", "permission denied"),
                   "runs_tab", "permission denied")
    unmarked = record("run %s of flow %s failed: %s", ("r2", "deals", "disk full"))

    assert repeated.filter(failed) is False
    assert repeated.filter(same) is False
    assert repeated.filter(other) is True
    assert repeated.filter(unmarked) is True


# --- a project without flows ---------------------------------------------------------

def no_flows_project(tmp_path: Path) -> Path:
    project = tmp_path / "empty"
    project.mkdir()
    (project / "syncplan.yaml").write_text(
        "version: 1\nsystems:\n  crm: {kind: csv, path: crm.csv}\n", encoding="utf-8")
    return project


def test_validate_no_flows_warns(tmp_path: Path) -> None:
    no_flows_project(tmp_path)
    completed = syncplan("validate", "empty", cwd=tmp_path)
    assert completed.returncode == 0
    assert completed.stdout.startswith(
        f"empty{os.sep}syncplan.yaml:1:1: warning[W210]: the project defines no"
        " flows, so there is nothing to run")
    assert "valid (0 error(s), 1 warning(s))" in completed.stderr


def test_run_no_flows_says_so(tmp_path: Path) -> None:
    project = no_flows_project(tmp_path)
    completed = syncplan("run", project)
    assert completed.returncode == 0
    assert completed.stdout == ""
    assert completed.stderr.endswith("no flows to run\n")
    assert not (project / ".syncplan").exists()


def test_run_plan_file_no_flows(tmp_path: Path) -> None:
    project = no_flows_project(tmp_path)
    plan_file = tmp_path / "plan.json"
    assert syncplan("compile", project, "-o", plan_file).returncode == 0
    completed = syncplan("run", plan_file)
    assert completed.returncode == 0
    assert completed.stdout == ""
    assert f"no flows to run: the plan {str(plan_file)!r} has none" in (
        completed.stderr)


def test_plan_no_flows_says_so(tmp_path: Path) -> None:
    completed = syncplan("plan", no_flows_project(tmp_path))
    assert completed.returncode == 0
    assert completed.stdout == ""
    assert completed.stderr.endswith("no flows to run\n")


# --- spreadsheet settings --------------------------------------------------------------

def test_run_spreadsheet_neither_xlsx_nor_google(tmp_path: Path) -> None:
    project = tmp_path / "agency"
    shutil.copytree(EXAMPLE, project,
                    ignore=shutil.ignore_patterns("out", ".syncplan"))

    completed = syncplan("run", project, "--flow", "clients",
                         REPORT_SHEET="out/report.csv")

    assert completed.returncode == 1
    assert ("the spreadsheet 'out/report.csv' is neither a path ending in .xlsx nor"
            " a Google spreadsheet id or URL") in completed.stderr
    assert "set it to a .xlsx path" in completed.stderr
    assert "install" not in completed.stderr
