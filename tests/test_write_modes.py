"""Write modes through the whole runtime: create, upsert, update, append, mirror."""

from __future__ import annotations

import textwrap
from pathlib import Path

import openpyxl

from compiler import compile_project
from runtime.runner import PlanRunner
from runtime.state import StateStore

SPEC = """\
version: 1
systems:
  src: {{kind: csv, path: rows.csv}}
  out: {{kind: sheets, spreadsheet: out.xlsx}}
entities:
  row:
    key: id
    fields:
      id: {{type: integer, owner: src}}
      name: {{type: string, owner: src, normalize: [trim]}}
flows:
  rows:
    source: {{system: src}}
    map: {{entity: row, fields: {{id: id, name: name}}}}
    destinations: [{destination}]
"""


def make_project(tmp_path: Path, destination: str, rows: str) -> Path:
    (tmp_path / "syncplan.yaml").write_text(SPEC.format(destination=destination))
    (tmp_path / "rows.csv").write_text(textwrap.dedent(rows))
    return tmp_path


def run(root: Path):
    result = compile_project(root)
    assert result.plan is not None, [d.to_text() for d in result.diagnostics]
    state = StateStore(root / "state.db")
    try:
        (flow_result,) = PlanRunner(result.plan, root, state).run()
    finally:
        state.close()
    return flow_result


def data_rows(root: Path) -> list[tuple]:
    sheet = openpyxl.load_workbook(root / "out.xlsx")["Rows"]
    return [tuple(row) for row in sheet.iter_rows(min_row=2, values_only=True)
            if any(cell is not None for cell in row)]


def test_create_adds_only_new_keys(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: create,"
                        " idempotency_key: id}", "id,name\n1,a\n2,b\n")
    first = run(root)
    (root / "rows.csv").write_text("id,name\n1,changed\n2,b\n3,c\n")
    second = run(root)

    assert (first.created, second.created, second.updated) == (2, 1, 0)
    assert data_rows(root) == [(1, "a"), (2, "b"), (3, "c")]


def test_update_reports_unknown_keys(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: upsert}",
                        "id,name\n1,a\n")
    run(root)
    (root / "syncplan.yaml").write_text(SPEC.format(
        destination="{system: out, object: Rows, mode: update}"))
    (root / "rows.csv").write_text("id,name\n1,renamed\n9,ghost\n")
    result = run(root)

    assert (result.created, result.updated) == (0, 1)
    assert [e["code"] for e in result.errors] == ["key_not_found"]
    assert data_rows(root) == [(1, "renamed")]


def test_append_adds_every_record_each_run(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: append}",
                        "id,name\n1,a\n2,b\n")
    run(root)
    result = run(root)

    assert result.created == 2
    assert data_rows(root) == [(1, "a"), (2, "b"), (1, "a"), (2, "b")]


def test_mirror_keeps_rows_people_added(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: mirror, key: id}",
                        "id,name\n1,a\n2,b\n")
    run(root)
    workbook = openpyxl.load_workbook(root / "out.xlsx")
    workbook["Rows"].append([77, "typed by hand"])
    workbook.save(root / "out.xlsx")
    (root / "rows.csv").write_text("id,name\n2,b\n")
    result = run(root)

    assert result.deleted == 1
    assert data_rows(root) == [(2, "b"), (77, "typed by hand")]


def test_duplicate_source_keys_are_reported(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: upsert}",
                        "id,name\n1,first\n1,second\n")
    result = run(root)

    assert result.created == 1
    assert [e["code"] for e in result.errors] == ["duplicate_key"]
    assert data_rows(root) == [(1, "second")]


def test_bad_rows_never_stop_the_run(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: upsert}",
                        "id,name\n1,a\nnot-a-number,b\n3,c,extra\n4,d\n")
    result = run(root)

    assert result.status == "succeeded"
    assert result.created == 2
    codes = sorted(e["code"] for e in result.errors)
    assert codes == ["csv_extra_cells", "not_integer"]
    bad = next(e for e in result.errors if e["code"] == "not_integer")
    assert bad["raw"] == "not-a-number"
    assert bad["field"] == "id"


def test_cursor_reads_only_newer_records(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: upsert}",
                        "id,name\n1,a\n2,b\n")
    spec = (root / "syncplan.yaml").read_text().replace(
        "source: {system: src}", "source: {system: src, cursor: id}")
    (root / "syncplan.yaml").write_text(spec)
    first = run(root)
    (root / "rows.csv").write_text("id,name\n1,a\n2,b\n3,c\n10,d\n")
    second = run(root)
    state = StateStore(root / "state.db")
    try:
        cursor = state.cursor("rows", "rows")
    finally:
        state.close()

    assert (first.read, first.created) == (2, 2)
    assert (second.read, second.filtered, second.created) == (4, 2, 2)
    assert cursor == "10"
    assert data_rows(root) == [(1, "a"), (2, "b"), (3, "c"), (10, "d")]


def test_cursor_stays_when_the_write_fails(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: upsert}",
                        "id,name\n1,a\n")
    spec = (root / "syncplan.yaml").read_text().replace(
        "source: {system: src}", "source: {system: src, cursor: id}")
    (root / "syncplan.yaml").write_text(spec)
    run(root)
    (root / "rows.csv").write_text("id,name\n1,a\n2,b\n")
    (root / "out.xlsx").write_text("not a workbook")  # the save will fail
    failed = run(root)
    state = StateStore(root / "state.db")
    try:
        cursor = state.cursor("rows", "rows")
    finally:
        state.close()

    assert failed.status == "failed"
    assert cursor == "1"


def test_misspelt_source_column_warns(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: upsert}",
                        "id,name\n1,a\n")
    spec = (root / "syncplan.yaml").read_text().replace("name: name}", "name: nme}")
    (root / "syncplan.yaml").write_text(spec)

    result = run(root)

    assert result.status == "succeeded"
    assert result.warnings == [
        "no source record has the field 'nme', so every value mapped from it was"
        " empty; did you mean 'name'?"]


def test_mirror_keeps_row_of_failed_record(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: mirror, key: id}",
                        "id,name\n1,a\n2,b\n3,c\n")
    spec = (root / "syncplan.yaml").read_text().replace(
        "normalize: [trim]}", "normalize: [trim], pattern: '^[a-z]+$'}")
    (root / "syncplan.yaml").write_text(spec)
    run(root)
    (root / "rows.csv").write_text("id,name\n1,a\n2,B-2\n")

    result = run(root)

    assert [(e["code"], e["record_key"]) for e in result.errors] == [
        ("pattern_mismatch", "2")]
    # Row 3 left the source; row 2 failed, so it stays as it was.
    assert result.deleted == 1
    assert result.warnings == []
    assert data_rows(root) == [(1, "a"), (2, "b")]
    (root / "rows.csv").write_text("id,name\n1,a\n")
    assert run(root).deleted == 1  # row 2 is still syncplan's to delete
    assert data_rows(root) == [(1, "a")]


def test_mirror_skips_deletions_after_broken_row(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: mirror, key: id}",
                        "id,name\n1,a\n2,b\n3,c\n")
    run(root)
    (root / "rows.csv").write_text("id,name\n1,a\n2,b,extra\n")

    result = run(root)

    assert [e["code"] for e in result.errors] == ["csv_extra_cells"]
    assert result.deleted == 0
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(
        "out/Rows: no rows were deleted in mirror mode")
    assert "csv_extra_cells at rows.csv:3" in result.warnings[0]
    assert data_rows(root) == [(1, "a"), (2, "b"), (3, "c")]
    (root / "rows.csv").write_text("id,name\n1,a\n2,b\n")
    assert run(root).deleted == 1  # a whole read deletes again


def test_mirror_with_cursor_deletes_nothing(tmp_path: Path) -> None:
    root = make_project(tmp_path, "{system: out, object: Rows, mode: mirror, key: id}",
                        "id,name\n1,a\n2,b\n")
    spec = (root / "syncplan.yaml").read_text().replace(
        "source: {system: src}", "source: {system: src, cursor: id}")
    (root / "syncplan.yaml").write_text(spec)
    run(root)
    (root / "rows.csv").write_text("id,name\n1,a\n2,b\n3,c\n")

    result = run(root)

    # Rows 1 and 2 were skipped by the cursor, not removed from the source.
    assert (result.created, result.deleted) == (1, 0)
    assert "read incrementally" in result.warnings[0]
    assert data_rows(root) == [(1, "a"), (2, "b"), (3, "c")]
