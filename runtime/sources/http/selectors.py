"""Selectors: where a value sits inside a JSON response or record.

A selector is written in one of two forms:

- a dotted path such as ``results``, ``data.items`` or ``paging.next.after``.
  Each segment is an object key, or a list index when the value reached so far
  is a list (``items.0.id`` and ``items[0].id`` are the same). An empty path
  selects the whole document.
- a JSONPath (RFC 9535) starting with ``$``, such as ``$.data.items`` or
  ``$['odata.nextLink']``, evaluated by the ``python-jsonpath`` package. It can
  name keys that contain dots, and it can use wildcards and filters.

``Selector.lookup`` returns a ``Lookup``. A dotted path or a singular JSONPath
(only names and indexes) selects one value or nothing. Any other JSONPath
selects the list of its matches, which may be empty.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import jsonpath

__all__ = ["Lookup", "Selector", "SelectorSyntaxError", "describe_value"]

# How many keys a description lists before it only counts the rest.
MAX_LISTED_KEYS = 12
_BRACKET_INDEX = re.compile(r"\[(\d+)\]")


class SelectorSyntaxError(ValueError):
    """A selector's text cannot be parsed; the message names it."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of a lookup: the value found, or where the path stopped."""

    found: bool
    value: Any = None
    # When nothing was found: which step failed and what was there instead.
    problem: str = ""


class Selector:
    """A compiled selector; see the module docstring for the two forms."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise SelectorSyntaxError(
                f"a selector must be a string such as 'data.items' or '$.data.items',"
                f" got {text!r}"
            )
        self.text = text
        self._path: jsonpath.JSONPath | None = None
        self._segments: tuple[str, ...] = ()
        if text.startswith("$"):
            try:
                self._path = jsonpath.compile(text)
            except jsonpath.JSONPathError as exc:
                raise SelectorSyntaxError(
                    f"invalid JSONPath {text!r}: {str(exc).splitlines()[0]}"
                ) from None
        else:
            self._segments = _split_dotted(text)

    @property
    def singular(self) -> bool:
        """True when the selector selects at most one value."""
        return self._path is None or self._path.singular_query()

    @property
    def segments(self) -> tuple[str, ...]:
        """The steps of a dotted path; empty for a JSONPath or the whole document."""
        return self._segments

    def lookup(self, document: Any) -> Lookup:
        """Find the selected value in ``document``."""
        if self._path is None:
            return _walk(document, self._segments, self.text)
        matches = self._path.findall(document)
        if not self._path.singular_query():
            return Lookup(found=True, value=matches)
        if matches:
            return Lookup(found=True, value=matches[0])
        return Lookup(
            found=False,
            problem=f"{self.text!r} matched nothing in {describe_value(document)}",
        )

    def __repr__(self) -> str:
        return f"Selector({self.text!r})"


def _split_dotted(text: str) -> tuple[str, ...]:
    normalized = _BRACKET_INDEX.sub(r".\1", text)
    if not normalized.strip("."):
        return ()
    segments = tuple(normalized.split("."))
    if any(segment == "" for segment in segments):
        raise SelectorSyntaxError(
            f"invalid dotted path {text!r}: it has an empty segment; write keys"
            " separated by single dots, such as 'data.items', or use a JSONPath"
            " such as \"$['odd.key']\" for keys that contain a dot"
        )
    return segments


def _walk(document: Any, segments: tuple[str, ...], text: str) -> Lookup:
    value = document
    for depth, segment in enumerate(segments):
        where = ".".join(segments[:depth]) or "the top level"
        if isinstance(value, dict):
            if segment in value:
                value = value[segment]
                continue
            return Lookup(
                found=False,
                problem=f"{segment!r} not found at {where}: found "
                f"{describe_value(value)}{_suggestion(segment, value)}",
            )
        if isinstance(value, list) and segment.isdigit():
            index = int(segment)
            if index < len(value):
                value = value[index]
                continue
        return Lookup(
            found=False,
            problem=f"{text!r} cannot go into {where} to reach {segment!r}: found "
            f"{describe_value(value)}",
        )
    return Lookup(found=True, value=value)


def _suggestion(segment: str, value: dict[str, Any]) -> str:
    close = difflib.get_close_matches(segment, [str(key) for key in value], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_value(value: Any) -> str:
    """Describe a JSON value in a few words for an error message."""
    if isinstance(value, dict):
        if not value:
            return "an empty object"
        keys = [str(key) for key in value]
        shown = ", ".join(repr(key) for key in keys[:MAX_LISTED_KEYS])
        more = len(keys) - MAX_LISTED_KEYS
        suffix = f" and {more} more" if more > 0 else ""
        return f"an object with keys {shown}{suffix}"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    return f"the number {value}"
