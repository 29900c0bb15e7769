"""The dependency direction: compiler imports nothing above it, runtime only the plan.

The AST tests read the import statements; the subprocess tests check what an
import really loads, since a package ``__init__`` can pull in more than its
statement names.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), alias.name)
                          for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((str(path.relative_to(ROOT)), node.module))
    return found


@pytest.mark.parametrize("forbidden", ["runtime", "sheets_addon"])
def test_compiler_imports_nothing_above(forbidden: str) -> None:
    offending = [(file, module) for file, module in imported_modules("compiler")
                 if module == forbidden or module.startswith(forbidden + ".")]
    assert offending == []


def test_runtime_imports_only_the_plan_model() -> None:
    offending = [(file, module) for file, module in imported_modules("runtime")
                 if (module == "compiler" or module.startswith("compiler."))
                 and not (module == "compiler.plan"
                          or module.startswith("compiler.plan."))]
    assert offending == []


def test_runtime_never_imports_sheets_addon() -> None:
    offending = [(file, module) for file, module in imported_modules("runtime")
                 if module == "sheets_addon" or module.startswith("sheets_addon.")]
    assert offending == []


def loaded_modules(statement: str) -> set[str]:
    """Return the ``compiler`` modules that ``statement`` loads in a fresh process."""
    script = (f"import sys\n{statement}\n"
              "print('\\n'.join(name for name in sys.modules"
              " if name.split('.')[0] == 'compiler'))")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True,
                               text=True, cwd=ROOT, timeout=60, check=True)
    return set(completed.stdout.split())


COMPILER_STAGES = {"compiler.analyze", "compiler.api", "compiler.loader",
                   "compiler.ownership", "compiler.project", "compiler.schema_check",
                   "compiler.templates"}


def test_plan_models_import_alone() -> None:
    loaded = loaded_modules("import compiler.plan.models")
    assert loaded == {"compiler", "compiler.plan", "compiler.plan.models"}


def test_runtime_loads_no_compiler_stage() -> None:
    loaded = loaded_modules("import runtime.runner")
    assert "compiler.plan.models" in loaded
    assert loaded & COMPILER_STAGES == set()


def test_public_names_still_import() -> None:
    loaded = loaded_modules("from compiler import compile_project, load_plan")
    assert {"compiler.api", "compiler.analyze", "compiler.plan.io"} <= loaded
