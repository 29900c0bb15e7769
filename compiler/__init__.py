"""The syncplan compiler: spec files in, a deterministic sync plan out.

This package reads spec files and nothing else: no network, no data files, no
imports of ``runtime`` or ``sheets_addon``. See ``compiler/README.md``.
"""

from compiler.api import CompileResult, compile_project, load_plan, plan_json
from compiler.diagnostics import Diagnostic, format_json, format_text, has_errors

__all__ = [
    "CompileResult",
    "Diagnostic",
    "compile_project",
    "format_json",
    "format_text",
    "has_errors",
    "load_plan",
    "plan_json",
]
