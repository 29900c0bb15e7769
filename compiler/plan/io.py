"""Read and write plan JSON.

Writing is deterministic: sorted keys, no timestamps, so the same spec gives the
same bytes. Reading checks the document against ``schemas/plan.schema.json``,
loads it into the models and checks the names it links
(``compiler.plan.check``), so a hand-edited or foreign plan is rejected with
the JSON pointer of the first problems instead of failing halfway through a run.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import ValidationError

import schemas
from compiler.plan.check import link_problems
from compiler.plan.models import PLAN_FORMAT, Plan


class PlanLoadError(Exception):
    """The text is not a plan this version can run; the message says why."""


@cache
def _plan_validator() -> Draft202012Validator:
    return Draft202012Validator(schemas.load_schema(schemas.PLAN_SCHEMA))


def plan_document(plan: Plan) -> dict[str, Any]:
    return plan.model_dump(mode="json", exclude_none=True)


def plan_problems(document: Any) -> list[str]:
    """Return the schema errors of a plan document (empty when it is valid)."""
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: "
        f"{error.message}"
        for error in _plan_validator().iter_errors(document)
    ]


def dump_plan(plan: Plan) -> str:
    """Serialize a plan as deterministic JSON text."""
    return json.dumps(plan_document(plan), indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"


def load_plan(text: str) -> Plan:
    """Parse plan JSON; raise ``PlanLoadError`` when it is not a valid plan."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanLoadError(f"not JSON: {exc.msg} at line {exc.lineno}, column"
                            f" {exc.colno}") from None
    if isinstance(document, dict) and document.get("format") != PLAN_FORMAT:
        raise PlanLoadError(f"plan format {document.get('format')!r} is not"
                            f" {PLAN_FORMAT!r}; compile the spec again with this"
                            " version of syncplan")
    problems = plan_problems(document)
    if problems:
        shown = "; ".join(problems[:5])
        raise PlanLoadError(f"the plan does not match plan.schema.json: {shown}")
    try:
        plan = Plan.model_validate(document)
    except ValidationError as exc:  # the schema and the models disagree
        raise PlanLoadError(f"the plan does not load: {exc}") from None
    problems = link_problems(plan)
    if problems:
        shown = "; ".join(str(problem) for problem in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise PlanLoadError(f"{shown}{more}; compile the spec again instead of"
                            " editing the plan")
    return plan
