"""Field masks, as used by the ``fields`` query parameter and update requests.

A mask is a comma-separated list of paths; segments are separated by ``.``
or ``/`` and ``a(b,c)`` groups sub-paths, so
``sheets(properties(title,sheetId)),spreadsheetId`` and
``sheets.properties.title`` are both valid.  ``*`` selects everything.

:func:`select` filters a response the way Google does: an object on the path
stays (possibly empty) while keys missing from the data stay missing, and a
mask applies to every element of a list.  :func:`apply_update` implements the
``fields`` semantics of update requests: each masked path is copied from the
request object, and cleared when the request lacks it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from . import errors

logger = logging.getLogger(__name__)

# A parsed mask: segment name -> sub-mask, where None means "everything below".
Mask = dict[str, "Mask | None"]


def parse_mask(text: str) -> Mask:
    """Parse a field mask; raise a 400 naming it when it is malformed."""
    text = text.replace(" ", "")
    mask, position = _parse_list(text, 0)
    if position != len(text):
        raise errors.invalid_argument(f"Invalid field mask {text!r}: unexpected {text[position]!r}")
    return mask


def _parse_list(text: str, position: int) -> tuple[Mask, int]:
    mask: Mask = {}
    while position < len(text):
        position = _parse_path(text, position, mask)
        if position < len(text) and text[position] == ",":
            position += 1
            continue
        break
    return mask, position


def _parse_path(text: str, position: int, mask: Mask) -> int:
    start = position
    while position < len(text) and text[position] not in ",()":
        position += 1
    segments = [s for s in text[start:position].replace("/", ".").split(".") if s]
    if not segments:
        raise errors.invalid_argument(f"Invalid field mask {text!r}: empty path at {start}")
    node = mask
    for segment in segments[:-1]:
        child = node.get(segment, {})
        if child is None:
            return _skip_group(text, position)
        node[segment] = child
        node = child
    last = segments[-1]
    if position < len(text) and text[position] == "(":
        sub_mask, position = _parse_list(text, position + 1)
        if position >= len(text) or text[position] != ")":
            raise errors.invalid_argument(f"Invalid field mask {text!r}: missing ')'")
        position += 1
        existing = node.get(last, {})
        if existing is not None:
            _merge(existing, sub_mask)
            node[last] = existing
        return position
    node[last] = None
    return position


def _skip_group(text: str, position: int) -> int:
    if position < len(text) and text[position] == "(":
        depth = 0
        while position < len(text):
            depth += {"(": 1, ")": -1}.get(text[position], 0)
            position += 1
            if depth == 0:
                break
    return position


def _merge(target: Mask, source: Mask) -> None:
    for key, value in source.items():
        if key in target and target[key] is not None and value is not None:
            _merge(target[key], value)  # type: ignore[arg-type]
        elif key not in target or value is None:
            target[key] = value


def select(data: Any, mask: Mask | None) -> Any:
    """Return ``data`` filtered by ``mask`` (``None`` keeps everything)."""
    if mask is None or "*" in mask:
        return data
    if isinstance(data, list):
        return [select(item, mask) for item in data]
    if not isinstance(data, dict):
        return data
    return {key: select(data[key], sub) for key, sub in mask.items() if key in data}


def mask_paths(mask: Mask, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Flatten a mask into leaf paths such as ``("gridProperties", "rowCount")``."""
    paths = []
    for key, sub in mask.items():
        if sub is None:
            paths.append(prefix + (key,))
        else:
            paths.extend(mask_paths(sub, prefix + (key,)))
    return paths


def apply_update(target: dict[str, Any], source: dict[str, Any], fields: str) -> list[tuple[str, ...]]:
    """Copy the masked paths of ``source`` into ``target``; return the paths.

    ``fields="*"`` replaces every field present in ``source``.  A path absent
    from ``source`` (or ``null`` there) is removed from ``target``, which is
    how a request clears a field.
    """
    if not fields:
        raise errors.invalid_argument("At least one field must be specified.")
    if fields.strip() == "*":
        paths = [(key,) for key in source]
    else:
        paths = mask_paths(parse_mask(fields))
    for path in paths:
        value = _lookup(source, path)
        if value is None:
            _remove(target, path)
        else:
            _assign(target, path, copy.deepcopy(value))
    return paths


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if not isinstance(data, dict) or segment not in data:
            return None
        data = data[segment]
    return data


def _assign(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for segment in path[:-1]:
        child = target.get(segment)
        if not isinstance(child, dict):
            child = {}
            target[segment] = child
        target = child
    target[path[-1]] = value


def _remove(target: dict[str, Any], path: tuple[str, ...]) -> None:
    for segment in path[:-1]:
        target = target.get(segment)  # type: ignore[assignment]
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)
