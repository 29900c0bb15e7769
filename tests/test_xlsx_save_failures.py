"""Runs whose .xlsx workbook cannot or must not be saved.

Each case changes one client of the agency example after a clean run, so the
next run of the clients flow has one row to update. The save must then fail
with a message that names the workbook and the fix. It must leave the file as
it was and report no row as written. Once the cause is gone, the next run saves
the change.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler import compile_project
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agency"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture()
def agency(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "agency"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("out", ".syncplan"))
    yield target
    # A test may leave a folder or file read-only; pytest must be able to
    # delete it.
    for path in [target / "out", *(target / "out").glob("*")]:
        if path.exists():
            path.chmod(0o755 if path.is_dir() else 0o644)


def run_clients(root: Path) -> FlowResult:
    compiled = compile_project(root)
    assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
    state = StateStore(root / ".syncplan" / "state.db")
    try:
        return PlanRunner(compiled.plan, root, state).run(["clients"])[0]
    finally:
        state.close()


def stored_run(root: Path, run_id: str) -> dict:
    state = StateStore(root / ".syncplan" / "state.db")
    try:
        return dict(state.run(run_id))
    finally:
        state.close()


@pytest.fixture()
def changed(agency: Path) -> Path:
    """Run the example once, then rename one client; return the workbook path."""
    first = run_clients(agency)
    assert first.status == "succeeded"
    clients = agency / "data" / "clients.json"
    clients.write_text(clients.read_text().replace("Globex Corporation", "Globex Corp"))
    return agency / "out" / "agency-report.xlsx"


def assert_nothing_saved(result: FlowResult, workbook: Path, before: bytes) -> None:
    assert result.status == "failed"
    assert (result.created, result.updated, result.deleted) == (0, 0, 0)
    assert workbook.read_bytes() == before
    assert [path.name for path in workbook.parent.iterdir()
            if path.name.endswith(".tmp")] == []
    message = result.message or ""
    assert str(workbook) in message
    assert ".tmp" not in message


def assert_saved_later(agency: Path) -> None:
    result = run_clients(agency)
    assert result.status == "succeeded"
    assert result.updated == 1


@pytest.mark.parametrize(
    ("lock_name", "program"),
    [
        ("~$agency-report.xlsx", "Excel"),
        ("~$ency-report.xlsx", "Excel"),
        (".~lock.agency-report.xlsx#", "LibreOffice"),
    ],
)
def test_open_workbook_lock_stops_save(agency: Path, changed: Path, lock_name: str,
                                       program: str) -> None:
    lock = changed.parent / lock_name
    lock.write_bytes(b"someone\n")
    before = changed.read_bytes()

    result = run_clients(agency)

    assert_nothing_saved(result, changed, before)
    message = result.message or ""
    assert f"is open in {program}: its lock file {str(lock)!r} exists" in message
    assert ("Close the workbook in Excel/LibreOffice, or delete the lock file if no"
            " one has it open") in message
    # The failed run and its message are kept in the state store.
    run = stored_run(agency, result.run_id)
    assert run["status"] == "failed"
    assert str(lock) in run["message"]
    lock.unlink()
    assert_saved_later(agency)


def test_lock_of_other_workbook_is_ignored(agency: Path, changed: Path) -> None:
    (changed.parent / "~$other.xlsx").write_bytes(b"someone\n")
    (changed.parent / ".~lock.other.xlsx#").write_bytes(b"someone\n")

    assert_saved_later(agency)


def test_read_only_workbook_names_file_fix(agency: Path, changed: Path) -> None:
    # The mode bits decide, so this holds for root as well.
    changed.chmod(0o444)
    before = changed.read_bytes()

    result = run_clients(agency)

    assert_nothing_saved(result, changed, before)
    message = result.message or ""
    assert "the file is read-only" in message
    assert "Make it writable" in message
    assert "folder" not in message
    changed.chmod(0o644)
    assert_saved_later(agency)


def test_read_only_folder_names_folder_fix(agency: Path, changed: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = changed.parent
    if AS_ROOT:
        # Root writes into any folder, so the refusal the kernel gives other
        # users is given for the temporary file here.
        real_open = os.open

        def refuse_in_folder(path, flags, *args, **kwargs):
            if Path(path).parent == folder and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse_in_folder)
    else:
        folder.chmod(0o555)
    before = changed.read_bytes()

    result = run_clients(agency)

    assert_nothing_saved(result, changed, before)
    message = result.message or ""
    assert f"its folder {str(folder)!r} is not writable" in message
    assert "Give this user write permission on the folder" in message
    assert "read-only" not in message
    monkeypatch.undo()
    folder.chmod(0o755)
    assert_saved_later(agency)


def test_file_in_place_of_folder(agency: Path) -> None:
    (agency / "out").write_text("not a folder\n")

    result = run_clients(agency)

    assert result.status == "failed"
    assert result.created == 0
    assert "is a file, not a folder" in (result.message or "")
    assert str(agency / "out" / "agency-report.xlsx") in (result.message or "")
