"""Source readers by system kind; see ``runtime.sources.base`` for the contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from compiler.plan import SystemPlan
from runtime.sources import csvfile, http, ics, jsonfile
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)

Reader = Callable[[SystemPlan, str, SourceContext], Iterator[SourceRecord | SourceError]]

READERS: dict[str, Reader] = {
    "csv": csvfile.read,
    "json": jsonfile.read,
    "ndjson": jsonfile.read_ndjson,
    "ics": ics.read,
    "http": http.read,
}


def read_source(system: SystemPlan, stream: str,
                context: SourceContext) -> Iterator[SourceRecord | SourceError]:
    """Read one stream of a system with the reader of its kind."""
    reader = READERS.get(system.kind)
    if reader is None:
        raise SourceUnavailable(
            f"system {system.id!r} of kind {system.kind!r} cannot be read by this"
            " version of syncplan; read from a csv, json, ndjson, ics or http system")
    return reader(system, stream, context)


__all__ = ["READERS", "SourceContext", "SourceError", "SourceRecord",
           "SourceUnavailable", "read_source"]
