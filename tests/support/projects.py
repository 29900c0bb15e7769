"""Copies of the agency example and small spec texts that several test modules use."""

from __future__ import annotations

import shutil
from pathlib import Path

from compiler import compile_project
from runtime.runner import FlowResult, PlanRunner
from runtime.state import StateStore

AGENCY = Path(__file__).resolve().parents[2] / "examples" / "agency"

# Three REST systems with one stream each, for the ownership cases; 'a' owns
# both fields of 'item'. Flows are appended after line 12.
HTTP_ITEMS_SPEC = """\
version: 1
systems:
  a: {kind: http, base_url: 'https://a.example', streams: {items: {path: /items}}}
  b: {kind: http, base_url: 'https://b.example', streams: {items: {path: /items}}}
  c: {kind: http, base_url: 'https://c.example', streams: {items: {path: /items}}}
entities:
  item:
    key: id
    fields:
      id: {type: string, owner: a}
      name: {type: string, owner: a}
flows:
"""


def copy_agency(folder: Path) -> Path:
    """Copy the agency example into ``folder``, without the output of earlier runs."""
    target = folder / "agency"
    shutil.copytree(AGENCY, target, ignore=shutil.ignore_patterns("out", ".syncplan"))
    return target


def run_project(root: Path, flows: list[str] | None = None) -> dict[str, FlowResult]:
    """Compile and run the project at ``root``; return each flow's result by id."""
    compiled = compile_project(root)
    assert compiled.plan is not None, [d.to_text() for d in compiled.diagnostics]
    state = StateStore(root / ".syncplan" / "state.db")
    try:
        results = PlanRunner(compiled.plan, root, state).run(flows)
    finally:
        state.close()
    return {result.flow: result for result in results}
