"""The progress line of ``syncplan run``: shown on a terminal, never in a pipe.

Each test runs the console command in a process of its own on a small generated
project, which copies a CSV file into a local workbook. Its output goes to a
pseudo-terminal, or to pipes, or to both, and the tests check where the
progress line appears.
"""

from __future__ import annotations

import csv
import errno
import os
import pty
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32",
                                reason="pseudo-terminals need a POSIX system")

ROWS = 3000
SPEC = """\
version: 1
project: progress
systems:
  people: {kind: csv, path: data/people.csv}
  report: {kind: sheets, spreadsheet: out/report.xlsx}
entities:
  person:
    key: person_id
    fields:
      person_id: {type: string, owner: people, required: true}
      name: {type: string, owner: people}
      joined: {type: date, owner: people}
flows:
  people_report:
    source: {system: people}
    map:
      entity: person
      fields: {person_id: id, name: name, joined: joined}
    destinations:
      - {system: report, object: People, mode: upsert}
"""
PHASES = ("people_report: reading", "people_report: writing report/People",
          "people_report: saving ")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "progress"
    (root / "data").mkdir(parents=True)
    (root / "syncplan.yaml").write_text(SPEC, encoding="utf-8")
    with (root / "data" / "people.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name", "joined"])
        for number in range(ROWS):
            writer.writerow([f"p{number}", f"Person {number}",
                             f"2025-{number % 12 + 1:02d}-01"])
    return root


def command(*args: str | Path) -> list[str]:
    script = Path(sys.executable).with_name("syncplan")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "sheets_addon"]
    return [*base, *map(str, args)]


def terminal_environment() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm", "COLUMNS": "120"}


def read_all(fd: int) -> bytes:
    """Read a pseudo-terminal's output until the other side closes."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:  # Linux reports the closed side as EIO
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def run_on_terminal(args: list[str], *, pipe_stdout: bool = False
                    ) -> tuple[int, str, str]:
    """Run with standard error (and standard output, unless piped) on a terminal.

    Returns the exit code, what reached the terminal and what reached the pipe.
    """
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            args, stdin=follower, stderr=follower,
            stdout=subprocess.PIPE if pipe_stdout else follower,
            env=terminal_environment())
    finally:
        os.close(follower)
    try:
        shown = read_all(leader)
        piped = process.stdout.read() if process.stdout is not None else b""
        code = process.wait(timeout=60)
    finally:
        os.close(leader)
        if process.stdout is not None:
            process.stdout.close()
    return code, shown.decode("utf-8"), piped.decode("utf-8")


def test_progress_shows_phases_on_terminal(project: Path) -> None:
    code, shown, _ = run_on_terminal(command("run", project))
    assert code == 0, shown
    for phase in PHASES:
        assert f"\r\x1b[K{phase}" in shown
    assert "saving " + str(project / "out" / "report.xlsx") in shown
    order = [shown.index(phase) for phase in PHASES]
    assert order == sorted(order)
    # The line is cleared before the summary, which starts on a fresh line.
    summary = shown.index("flow ")
    assert shown.rindex("\r\x1b[K", 0, summary) > order[-1]
    assert "people_report  succeeded" in shown
    workbook = openpyxl.load_workbook(project / "out" / "report.xlsx")
    assert workbook["People"].max_row == ROWS + 1


def test_progress_silent_when_piped(project: Path) -> None:
    completed = subprocess.run(command("run", project), capture_output=True,
                               text=True, timeout=60, check=False,
                               env=terminal_environment())
    assert completed.returncode == 0, completed.stderr
    assert "people_report  succeeded" in completed.stdout
    for phase in PHASES:
        assert phase not in completed.stdout + completed.stderr
    assert "\r" not in completed.stdout + completed.stderr
    assert "\x1b[" not in completed.stdout + completed.stderr


def test_progress_silent_when_stdout_piped(project: Path) -> None:
    code, shown, piped = run_on_terminal(command("run", project), pipe_stdout=True)
    assert code == 0, shown
    assert "people_report  succeeded" in piped
    for phase in PHASES:
        assert phase not in shown
    assert "\x1b[" not in shown


def test_progress_silent_on_dumb_terminal(project: Path) -> None:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(command("run", project), stdin=follower,
                                   stdout=follower, stderr=follower,
                                   env={**os.environ, "TERM": "dumb"})
    finally:
        os.close(follower)
    try:
        shown = read_all(leader).decode("utf-8")
        assert process.wait(timeout=60) == 0, shown
    finally:
        os.close(leader)
    assert "people_report  succeeded" in shown
    for phase in PHASES:
        assert phase not in shown
