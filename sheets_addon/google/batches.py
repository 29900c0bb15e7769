"""The request bodies of a sync: changed cells as value ranges, and body splitting.

Value ranges carry only the changed cells. Each run of adjacent changed cells in
a row becomes one range, and appended rows become one block per run of owned
columns. A range names only its top-left cell (``Customers!B1234``): the API
writes the values from there on, and the bottom-right corner would only add
bytes to every range.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterator
from typing import Any

from runtime.sheets.base import ChangeSet
from sheets_addon.google.cells import a1_range, runs, to_api_value

MAX_SUBREQUESTS = 100_000
MAX_BODY_BYTES = 2_000_000


def value_ranges(title: str, changes: ChangeSet, deleted: list[int],
                 first_new_row: int) -> list[dict[str, Any]]:
    """Group changed cells into ranges, with row numbers after the deletions."""
    shift = row_shift(deleted)
    deleted_rows = set(deleted)
    by_row: dict[int, dict[int, Any]] = {}
    for (row, column), value in changes.cells.items():
        if row in deleted_rows:
            continue
        by_row.setdefault(shift(row), {})[column] = value
    data = []
    for row in sorted(by_row):
        cells = by_row[row]
        for start, length in runs(cells):
            values = [to_api_value(cells[start + i]) for i in range(length)]
            data.append({"range": a1_range(title, row, start), "values": [values]})
    if changes.append_rows:
        owned = sorted(changes.column_kinds) or list(
            range(max(len(row) for row in changes.append_rows)))
        for start, length in runs(owned):
            block = [[to_api_value(row[i]) if i < len(row) else ""
                      for i in range(start, start + length)]
                     for row in changes.append_rows]
            for offset, piece in _row_pieces(block):
                data.append({"range": a1_range(title, first_new_row + offset, start),
                             "values": piece})
    return data


def _row_pieces(block: list[list[Any]]) -> Iterator[tuple[int, list[list[Any]]]]:
    """Cut a block of rows into (first row offset, rows) pieces that fit one body.

    ``chunks`` packs whole ranges into bodies, so a block of appended rows
    larger than ``MAX_BODY_BYTES`` must become several ranges first.
    """
    # Room for the range text and the keys of the body around the values.
    budget = MAX_BODY_BYTES - 1_000
    if len(json.dumps(block, separators=(",", ":"))) <= budget:
        yield 0, block
        return
    piece: list[list[Any]] = []
    size = first = 0
    for index, row in enumerate(block):
        row_size = len(json.dumps(row, separators=(",", ":"))) + 1
        if piece and size + row_size > budget:
            yield first, piece
            piece, size, first = [], 0, index
        piece.append(row)
        size += row_size
    if piece:
        yield first, piece


def row_shift(deleted: list[int]) -> Callable[[int], int]:
    """Return a function that turns a row as read into its row after ``deleted`` go."""
    def shift(row: int) -> int:
        return row - bisect.bisect_left(deleted, row)

    return shift


def chunks(key: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split a request list into bodies under ``MAX_BODY_BYTES`` and the subrequest cap."""
    bodies: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []
    # The keys around the list, such as "valueInputOption", take this much.
    size = envelope = 100
    for item in items:
        item_size = len(json.dumps(item, separators=(",", ":")))
        if current and (size + item_size > MAX_BODY_BYTES
                        or len(current) >= MAX_SUBREQUESTS):
            bodies.append({key: current})
            current, size = [], envelope
        current.append(item)
        size += item_size + 1
    if current:
        bodies.append({key: current})
    return bodies
