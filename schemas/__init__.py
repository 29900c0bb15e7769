"""The JSON Schema files of the spec language and of the plan.

The files are JSON Schema 2020-12 documents joined by relative ``$ref``; their
``$id`` values are the file names, so an editor that opens them from disk
resolves each reference to the file next to it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SPEC_SCHEMAS = (
    "spec.schema.json",
    "system.schema.json",
    "entity.schema.json",
    "flow.schema.json",
)
PLAN_SCHEMA = "plan.schema.json"
ALL_SCHEMAS = (*SPEC_SCHEMAS, PLAN_SCHEMA)


def schema_text(name: str) -> str:
    """Return the text of one schema file."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return one schema file as parsed JSON (cached; do not mutate it)."""
    return json.loads(schema_text(name))
