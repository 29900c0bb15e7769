"""The plan model shared by the compiler (which writes plans) and the runtime.

Names are imported on first use (PEP 562 module ``__getattr__``), so
``import compiler.plan.models`` loads the models without the template
environment of ``compiler.plan.expressions`` and its Jinja2 import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compiler.plan.expressions import TEMPLATE_VARIABLES, make_environment
    from compiler.plan.models import (
        PLAN_FORMAT,
        AggregatePlan,
        ColumnPlan,
        DestinationPlan,
        EntityPlan,
        ErrorPolicy,
        FieldMapping,
        FieldPlan,
        FieldSource,
        FlowPlan,
        LookupPlan,
        MapPlan,
        Measure,
        Normalizer,
        Plan,
        RateLimit,
        RetryPlan,
        SourcePlan,
        SystemPlan,
        TriggerPlan,
        Window,
    )

_EXPRESSIONS = ("TEMPLATE_VARIABLES", "make_environment")
_MODELS = (
    "PLAN_FORMAT",
    "AggregatePlan",
    "ColumnPlan",
    "DestinationPlan",
    "EntityPlan",
    "ErrorPolicy",
    "FieldMapping",
    "FieldPlan",
    "FieldSource",
    "FlowPlan",
    "LookupPlan",
    "MapPlan",
    "Measure",
    "Normalizer",
    "Plan",
    "RateLimit",
    "RetryPlan",
    "SourcePlan",
    "SystemPlan",
    "TriggerPlan",
    "Window",
)
# Each public name and the module that defines it.
_EXPORTS = {
    **{name: "compiler.plan.expressions" for name in _EXPRESSIONS},
    **{name: "compiler.plan.models" for name in _MODELS},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compiler.plan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
