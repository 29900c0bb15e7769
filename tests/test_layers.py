"""The dependency direction: compiler imports nothing above it, runtime only the plan."""

from __future__ import annotations

import ast
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
