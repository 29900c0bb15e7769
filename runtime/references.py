"""Resolve ``${env:NAME}``, ``${env:NAME:-default}`` and ``${file:PATH}`` at run time.

Plans keep secrets as references; this is the one place they become values, just
before a connector needs them. Resolved values are never logged, and errors name
the reference, never its value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_REFERENCE = re.compile(r"\$\{(env|file):([^}:]+)(?::-([^}]*))?\}")


class UnresolvedReference(Exception):
    """A reference cannot be resolved; the message names it and the fix."""


def resolve(value: str, base_dir: Path) -> str:
    """Replace every reference in ``value`` by what it refers to."""

    def replace(match: re.Match[str]) -> str:
        kind, name, default = match.group(1), match.group(2), match.group(3)
        if kind == "env":
            found = os.environ.get(name)
            if found not in (None, ""):
                return found
            if default is not None:
                return default
            raise UnresolvedReference(
                f"environment variable {name!r} is not set (needed by"
                f" {match.group()!r}); set it, or write ${{env:{name}:-default}}")
        path = Path(name)
        path = path if path.is_absolute() else base_dir / path
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UnresolvedReference(
                f"cannot read the file of {match.group()!r} at {str(path)!r}:"
                f" {exc.strerror or exc}; create it or fix the path") from None

    return _REFERENCE.sub(replace, value)
