"""The syncplan compiler: spec files in, a deterministic sync plan out.

This package reads spec files and nothing else: no network, no data files, no
imports of ``runtime`` or ``sheets_addon``. See ``compiler/README.md``.

The public names are imported on first use (PEP 562 module ``__getattr__``), so
``import compiler.plan.models``, which the runtime does, loads the plan model
without the loader, the schema checks and the analysis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compiler.api import CompileResult, compile_project, plan_json
    from compiler.diagnostics import Diagnostic, format_json, format_text, has_errors
    from compiler.plan.io import PlanLoadError, load_plan

# Each public name and the module that defines it.
_EXPORTS = {
    "CompileResult": "compiler.api",
    "compile_project": "compiler.api",
    "plan_json": "compiler.api",
    "Diagnostic": "compiler.diagnostics",
    "format_json": "compiler.diagnostics",
    "format_text": "compiler.diagnostics",
    "has_errors": "compiler.diagnostics",
    "PlanLoadError": "compiler.plan.io",
    "load_plan": "compiler.plan.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compiler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
