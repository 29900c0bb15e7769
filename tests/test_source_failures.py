"""Sources that fail in whole or in part, run through the compiler and the runner."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from compiler import compile_project
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agency"


# --- the agency example ----------------------------------------------------------

@pytest.fixture()
def agency(tmp_path: Path) -> Path:
    target = tmp_path / "agency"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("out", ".syncplan"))
    return target


def run_project(root: Path, flows: list[str] | None = None) -> dict[str, FlowResult]:
    compiled = compile_project(root)
    assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
    state = StateStore(root / ".syncplan" / "state.db")
    try:
        results = PlanRunner(compiled.plan, root, state).run(flows)
    finally:
        state.close()
    return {result.flow: result for result in results}


def test_lookup_error_shows_searched_value(agency: Path) -> None:
    results = run_project(agency)

    (error,) = results["calendar_hours"].errors
    assert error["code"] == "lookup_not_found"
    assert error["raw"] == "hooli"


# --- template inputs ---------------------------------------------------------------

def test_template_error_shows_its_inputs(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text('[{"id": 1, "a": 6, "b": 3},'
                                        ' {"id": 2, "a": 1, "b": 0}]')
    (tmp_path / "syncplan.yaml").write_text(yaml.safe_dump({
        "version": 1,
        "systems": {"src": {"kind": "json", "path": "rows.json"},
                    "out": {"kind": "sheets", "spreadsheet": "out.xlsx"}},
        "entities": {"row": {"key": "id", "fields": {
            "id": {"type": "integer", "owner": "src"},
            "ratio": {"type": "decimal", "owner": "src"}}}},
        "flows": {"rows": {
            "source": {"system": "src"},
            "map": {"entity": "row", "fields": {
                "id": "id", "ratio": "{{ record.a / record.b }}"}},
            "destinations": [{"system": "out", "object": "Rows", "mode": "upsert"}]}},
    }))

    results = run_project(tmp_path)

    (error,) = results["rows"].errors
    assert error["code"] == "template_failed"
    assert error["record_key"] == "2"
    assert error["raw"] == '{"a": 1, "b": 0}'
