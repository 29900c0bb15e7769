"""The sheet layer: one sync engine over interchangeable spreadsheet backends.

A backend only reads a tab into a ``Grid`` and applies a ``ChangeSet`` to it. The
engine (``runtime.sheets.engine``) does everything else the same way for every
backend: finding columns by header name, matching rows by key, computing the
changed cells, leaving columns and rows people added alone. The local ``.xlsx``
backend (openpyxl) and the Google Sheets backend (gspread) both implement
``SheetBackend``.

Cell values crossing this interface are Python values: ``str``, ``int``,
``float``, ``decimal.Decimal``, ``bool``, ``datetime.date``, naive
``datetime.datetime`` (already converted to the spreadsheet's time zone),
``datetime.timedelta``, or ``None`` for an empty cell. Row and column indexes are
0-based positions in the grid, where row 0 is the header row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

CellKind = Literal["text", "number", "date", "datetime", "duration", "boolean"]


@dataclass
class Grid:
    """The used range of a tab: the header row first, then the data rows.

    Every row has the same length as the widest row; short rows are padded with
    ``None`` so that values never shift between columns.
    """

    rows: list[list[Any]]

    @property
    def header(self) -> list[Any]:
        return self.rows[0] if self.rows else []


@dataclass
class ChangeSet:
    """The edits of one sync of one tab, applied by a backend in one batch.

    ``new_headers`` are appended to the right of the existing header row.
    ``cells`` maps ``(row, column)`` to the new value of an existing cell.
    ``append_rows`` are full rows (header width after ``new_headers``) added below
    the last row. ``delete_rows`` are row indexes to remove, applied last, so the
    indexes in ``cells`` refer to the grid as it was read. ``column_kinds`` tells
    the backend which number format each owned column needs. ``checkbox_columns``
    are owned boolean columns that people tick: a backend gives the cells of such a
    column that it creates (a new column, new grid rows) a TRUE/FALSE validation,
    shown as a checkbox where the spreadsheet has one.
    """

    new_headers: list[str] = field(default_factory=list)
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)
    append_rows: list[list[Any]] = field(default_factory=list)
    delete_rows: list[int] = field(default_factory=list)
    column_kinds: dict[int, CellKind] = field(default_factory=dict)
    checkbox_columns: set[int] = field(default_factory=set)

    def is_empty(self) -> bool:
        return not (self.new_headers or self.cells or self.append_rows or self.delete_rows)


class BackendError(Exception):
    """A backend cannot read or write the spreadsheet; the message says why."""


class LimitExceeded(BackendError):
    """A write would break a limit of the spreadsheet; nothing of it was written."""

    #: The code of the row this refusal gets in the Errors tab.
    code = "limit_exceeded"


class SheetBackend(Protocol):
    """A spreadsheet that tabs are read from and written to."""

    #: Longest text one cell may hold (Excel: 32,767; Google Sheets: 50,000).
    max_cell_chars: int

    def read_tab(self, name: str) -> Grid | None:
        """Return the tab's grid, or ``None`` when no tab has that name."""

    def apply(self, name: str, changes: ChangeSet) -> None:
        """Apply ``changes`` to the tab, creating the tab first if it is missing."""

    def check_limits(
        self,
        writes: Mapping[str, ChangeSet],
        new_rows: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """Raise ``LimitExceeded`` when a run's writes together would break a limit.

        ``writes`` maps tab names to the change sets a run is about to apply, each
        planned against a grid this backend read. ``new_rows`` maps other tabs
        (the Errors and Runs tabs) to at most how many rows they gain and how many
        columns they have. Nothing is sent or written, so a run can check every
        tab of a spreadsheet before it writes the first one.
        """

    def commit(self) -> None:
        """Make every applied change durable (for a file: save it)."""

    def location(self) -> str:
        """Return where the spreadsheet is, as shown to a person (a path or URL)."""
