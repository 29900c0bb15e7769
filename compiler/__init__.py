"""The syncplan compiler: spec files in, a deterministic sync plan out.

This package reads spec files and nothing else: no network, no data files, no
imports of ``runtime`` or ``sheets_addon``. See ``compiler/README.md``.
"""

from compiler.api import CompileResult, compile_project, plan_json
from compiler.plan.io import PlanLoadError, load_plan
from compiler.diagnostics import Diagnostic, format_json, format_text, has_errors

__all__ = [
    "CompileResult",
    "Diagnostic",
    "PlanLoadError",
    "compile_project",
    "format_json",
    "format_text",
    "has_errors",
    "load_plan",
    "plan_json",
]
