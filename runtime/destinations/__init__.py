"""Writers for destinations that are not spreadsheets (REST APIs, for example).

Spreadsheets go through the sheet engine (``runtime.sheets``). Every other kind
of system that a flow writes to has a writer, found here by the system's kind.
A writer gets the flow's canonical records and returns what it did; it never
raises for one bad record (that becomes a ``WriteProblem``), only for a failure
of the whole destination (``runtime.sheets.base.BackendError``).

Destinations of one flow are written in order, and each writer sees the ids
that earlier destinations of the same run gave each record
(``WriteContext.earlier``), so a write-back step can post the id of the project
it just created.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compiler.plan import DestinationPlan, FlowPlan, SystemPlan


@dataclass
class WriteProblem:
    """One record a destination did not take, kept as an error record."""

    key: str | None
    code: str
    message: str
    field: str | None = None
    raw: Any = None


@dataclass
class WriteResult:
    """What one destination did with a run's records.

    ``ids`` maps each record's key to the id the destination knows it by.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    problems: list[WriteProblem] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    location: str = ""


@dataclass
class WriteContext:
    """Run-wide inputs of a writer."""

    root: Path
    run_id: str
    now: dt.datetime
    state: Any
    earlier: dict[str, dict[str, str]] = field(default_factory=dict)
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class DestinationWriter(Protocol):
    def write(self, flow: FlowPlan, destination: DestinationPlan,
              records: list[tuple[str, Mapping[str, Any]]],
              context: WriteContext) -> WriteResult:
        """Write the records (key, canonical record) to the destination."""


WriterFactory = Callable[[SystemPlan, Path], DestinationWriter]

WRITERS: dict[str, WriterFactory] = {}


def register(kind: str, factory: WriterFactory) -> None:
    """Make ``factory`` the writer of systems of ``kind``."""
    WRITERS[kind] = factory


def destination_label(destination: DestinationPlan) -> str:
    """Return the name later destinations use for this one's ids: system/object."""
    return f"{destination.system}/{destination.object}"


__all__ = ["WRITERS", "DestinationWriter", "WriteContext", "WriteProblem",
           "WriteResult", "destination_label", "register"]

# Writers register themselves on import; this import comes last because each
# writer module imports the names above.
from runtime.destinations import http as _http  # noqa: F401
