"""Generate ``schemas/plan.schema.json`` from the plan models.

The committed schema file is what the compiler validates plans against; a test
checks that it equals what this module generates, so the two never drift. Run
``python -m compiler.plan.schema`` after changing a plan model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compiler.plan.models import Plan

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json"


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "plan.schema.json",
        **schema,
        "title": "syncplan plan",
        "description": "A compiled syncplan project: the executable sync plan.",
    }


def plan_schema_text() -> str:
    return json.dumps(plan_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(plan_schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
