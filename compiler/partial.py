"""Limits on what the checks after the schema may claim about a faulty project.

One run reports every problem, so the semantic and ownership checks also run on
a project whose files have schema errors. They run on the rest of it: an item
(a system, an entity, a field of an entity, or a flow) whose definition has an
error is dropped from the document they read, and ``Dropped`` records its name.
The name still exists, so a reference to it is not reported as unknown.

When a file cannot be read, or an include cannot be followed, the names that
file defines are not known at all. ``Dropped.unknown_sections`` then counts every
name of those sections as possibly defined.

Flows that were dropped, or that the analysis rejected, may still feed fields to
systems and produce entities. ``FlowOutlines`` reads from their raw definition
what they map into and write to, so that the ownership and ordering checks do not
report a missing feed or producer that such a flow may provide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("systems", "entities", "flows")
# Top-level keys of a spec file besides the sections; see spec.schema.json.
_KNOWN_KEYS = frozenset({"$schema", "version", "project", "description", "include"})
# Top-level keys that name other files; an error in them means files that
# define names may not have been read.
_FILE_KEYS = ("include",)


def _sections() -> dict[str, set[str]]:
    return {section: set() for section in SECTIONS}


@dataclass
class Dropped:
    """Names whose definition has an error, left out of the semantic checks."""

    items: dict[str, set[str]] = field(default_factory=_sections)
    # entity name -> names of its dropped fields (the entity itself stays).
    fields: dict[str, set[str]] = field(default_factory=dict)
    unknown_sections: set[str] = field(default_factory=set)

    def may_define(self, section: str, name: str) -> bool:
        """Tell whether ``name`` may be defined in ``section`` although it is absent."""
        return section in self.unknown_sections or name in self.items[section]

    def may_define_field(self, entity: str, name: str) -> bool:
        """Tell whether ``entity`` may have the field ``name`` although it is absent."""
        return (self.may_define("entities", entity)
                or name in self.fields.get(entity, ()))

    def fields_of(self, entity: str) -> set[str]:
        return self.fields.get(entity, set())

    def forget_all(self) -> None:
        """Mark every section as possibly defining names that no file shows."""
        self.unknown_sections.update(SECTIONS)


def unescape_pointer_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def drop_pointer(dropped: Dropped, pointer: str, data: dict[str, Any],
                 owns: Any) -> None:
    """Record the item that contains the node at ``pointer`` of one file's ``data``.

    ``owns(section, name)`` returns whether this file's definition of the name
    is the one in the merged document. A repeated definition in another file is
    reported as a duplicate and never merged, so its errors drop nothing.
    """
    tokens = [unescape_pointer_token(token) for token in pointer.split("/")[1:]]
    if not tokens:
        return
    head = tokens[0]
    if head not in SECTIONS:
        # An unknown top-level key with a mapping value (``systemz:``) may
        # contain the definitions its author meant to write in a section.
        if head in _FILE_KEYS or (len(tokens) == 1 and head not in _KNOWN_KEYS
                                  and isinstance(data.get(head), dict)):
            dropped.forget_all()
        return
    if len(tokens) == 1:
        dropped.unknown_sections.add(head)
        return
    name = tokens[1]
    if not owns(head, name):
        return
    if head == "entities" and len(tokens) >= 4 and tokens[2] == "fields":
        dropped.fields.setdefault(name, set()).add(tokens[3])
        return
    dropped.items[head].add(name)


def prune(merged: dict[str, Any], dropped: Dropped) -> dict[str, Any]:
    """Return ``merged`` without the dropped items; the input is not changed."""
    data = dict(merged)
    for section in SECTIONS:
        entries = merged.get(section)
        if not isinstance(entries, dict):
            continue
        data[section] = {name: value for name, value in entries.items()
                         if name not in dropped.items[section]}
    for entity, names in dropped.fields.items():
        spec = data.get("entities", {}).get(entity)
        if spec is None:
            continue
        data["entities"][entity] = {**spec, "fields": {
            name: value for name, value in spec["fields"].items() if name not in names}}
    return data


@dataclass(frozen=True)
class FlowOutline:
    """The entity and systems that a flow that was not analysed may write.

    ``None`` means the raw definition does not name them (a value of the wrong
    type), so any is possible.
    """

    entity: str | None
    writes: frozenset[str] | None


@dataclass
class FlowOutlines:
    """The outlines of every flow that the analysis did not lower."""

    outlines: list[FlowOutline] = field(default_factory=list)
    unknown: bool = False  # a file that may define flows could not be read

    def may_produce(self, entity: str) -> bool:
        return self.unknown or any(outline.entity in (None, entity)
                                   for outline in self.outlines)

    def may_write(self, system: str, entity: str | None = None) -> bool:
        """Tell whether such a flow may write ``system`` (a field of ``entity``)."""
        if self.unknown:
            return True
        return any((entity is None or outline.entity in (None, entity))
                   and (outline.writes is None or system in outline.writes)
                   for outline in self.outlines)


def outline_flows(merged_flows: dict[str, Any], analysed: Iterable[str],
                  dropped: Dropped) -> FlowOutlines:
    """Return the outlines of the flows of ``merged_flows`` not in ``analysed``."""
    done = set(analysed)
    result = FlowOutlines(unknown="flows" in dropped.unknown_sections)
    for name, spec in sorted(merged_flows.items()):
        if name not in done:
            result.outlines.append(_outline(spec))
    return result


def _outline(spec: Any) -> FlowOutline:
    if not isinstance(spec, dict):
        return FlowOutline(None, None)
    mapping = spec.get("map")
    entity = mapping.get("entity") if isinstance(mapping, dict) else None
    destinations = spec.get("destinations")
    writes: frozenset[str] | None = None
    if isinstance(destinations, list) and all(
            isinstance(d, dict) and isinstance(d.get("system"), str)
            for d in destinations):
        writes = frozenset(d["system"] for d in destinations)
    return FlowOutline(entity if isinstance(entity, str) else None, writes)
