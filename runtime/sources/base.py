"""What every source reader yields, and the context it reads in.

A reader is a generator ``read(system, stream, context)`` that yields
``SourceRecord`` for each raw record and ``SourceError`` for each part of the input
it could not turn into a record. A reader never raises for bad content inside a
file (a broken row, a broken calendar event): that becomes a ``SourceError`` and
reading goes on. It raises ``SourceUnavailable`` only when nothing can be read at
all (the file is missing or unreadable), which fails the run of that flow.

The ``scope`` of a ``SourceError`` sets what it means for the rest of the run:

``"record"`` (the default)
    Input that should have made one or more records made none, and which
    records is unknown. The runner then deletes no mirror rows in that run.
``"source"``
    Nothing of the source can be used (a file that is not JSON, not a
    calendar, or has no header row). The run fails as it does for a missing
    file, and the error record is kept.
``"note"``
    A problem in input whose records still arrived (a renamed header column,
    a replaced character). Nothing else changes.

A reader that stops before the end of its source, or reads only part of it on
purpose (an incremental cursor), appends the reason to ``context.incomplete``,
because a record that the reader did not yield may then still exist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ErrorScope = Literal["record", "source", "note"]


@dataclass(slots=True)
class SourceRecord:
    """One raw record: a dict of plain values, and where it came from."""

    data: dict[str, Any]
    position: str
    key: str | None = None


@dataclass(slots=True)
class SourceError:
    """A part of the input that did not become a record, kept for the Errors tab."""

    position: str
    code: str
    message: str
    raw: str | None = None
    key: str | None = None
    field: str | None = None
    scope: ErrorScope = "record"


@dataclass(slots=True)
class SourceContext:
    """Run-wide inputs of a reader.

    ``base_dir`` resolves relative paths; ``window_start`` and ``window_end``
    (timezone-aware) bound calendar expansion; ``now`` is the run's start time.
    ``incomplete`` collects the reasons the reader did not read the whole
    source; see the module docstring.
    """

    base_dir: Path
    now: dt.datetime
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    options: dict[str, Any] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)


class SourceUnavailable(Exception):
    """The source cannot be read at all; the message names the setting to fix."""
