"""In-memory spreadsheets: sheets, sparse cells, named ranges and limits.

All request threads share the store. Callers hold :attr:`Store.lock` for
every read or change, so each API call reads and leaves a consistent state.  Spreadsheet ``batchUpdate`` is atomic like Google's: the handler takes
a :meth:`Spreadsheet.snapshot` first and restores it when any request fails.

Limits enforced as Sheets does: 10,000,000 cells per spreadsheet (the sum of
``rowCount * columnCount`` over its sheets) and 50,000 characters per cell
(see :mod:`cells`).  New sheets default to 1000 rows by 26 columns.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import random
import string
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from . import a1, errors
from .cells import Cell
from .formula import FormulaError, Value, evaluate

logger = logging.getLogger(__name__)

MAX_SPREADSHEET_CELLS = 10_000_000
DEFAULT_ROWS = 1000
DEFAULT_COLUMNS = 26
SPREADSHEET_MIME_TYPE = "application/vnd.google-apps.spreadsheet"

CELL_LIMIT_MESSAGE = (
    "This action would increase the number of cells in the workbook above the "
    "limit of 10000000 cells."
)

# The properties Google reports for a new spreadsheet (en_US, recorded 2023).
DEFAULT_SPREADSHEET_PROPERTIES: dict[str, Any] = {
    "locale": "en_US",
    "autoRecalc": "ON_CHANGE",
    "timeZone": "Etc/GMT",
    "defaultFormat": {
        "backgroundColor": {"red": 1, "green": 1, "blue": 1},
        "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
        "verticalAlignment": "BOTTOM",
        "wrapStrategy": "OVERFLOW_CELL",
        "textFormat": {
            "foregroundColor": {},
            "fontFamily": "arial,sans,sans-serif",
            "fontSize": 10,
            "bold": False,
            "italic": False,
            "strikethrough": False,
            "underline": False,
            "foregroundColorStyle": {"rgbColor": {}},
        },
        "backgroundColorStyle": {"rgbColor": {"red": 1, "green": 1, "blue": 1}},
    },
    "spreadsheetTheme": {
        "primaryFontFamily": "Arial",
        "themeColors": [
            {"colorType": "TEXT", "color": {"rgbColor": {}}},
            {"colorType": "BACKGROUND", "color": {"rgbColor": {"red": 1, "green": 1, "blue": 1}}},
            {"colorType": "ACCENT1", "color": {"rgbColor": {"red": 0.25882354, "green": 0.52156866, "blue": 0.95686275}}},
            {"colorType": "ACCENT2", "color": {"rgbColor": {"red": 0.91764706, "green": 0.2627451, "blue": 0.20784314}}},
            {"colorType": "ACCENT3", "color": {"rgbColor": {"red": 0.9843137, "green": 0.7372549, "blue": 0.015686275}}},
            {"colorType": "ACCENT4", "color": {"rgbColor": {"red": 0.20392157, "green": 0.65882355, "blue": 0.3254902}}},
            {"colorType": "ACCENT5", "color": {"rgbColor": {"red": 1, "green": 0.42745098, "blue": 0.003921569}}},
            {"colorType": "ACCENT6", "color": {"rgbColor": {"red": 0.27450982, "green": 0.7411765, "blue": 0.7764706}}},
            {"colorType": "LINK", "color": {"rgbColor": {"red": 0.06666667, "green": 0.33333334, "blue": 0.8}}},
        ],
    },
}


@dataclass
class Sheet:
    """One tab: its properties, sparse cells and structural decorations.

    ``properties`` is the API's SheetProperties object without ``index``,
    which the spreadsheet derives from the tab order.  Row and column
    metadata map an index to a DimensionProperties-like dict.
    """

    properties: dict[str, Any]
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    merges: list[dict[str, int]] = field(default_factory=list)
    basic_filter: dict[str, Any] | None = None
    row_metadata: dict[int, dict[str, Any]] = field(default_factory=dict)
    column_metadata: dict[int, dict[str, Any]] = field(default_factory=dict)
    # DimensionGroup objects by dimension ("ROWS" or "COLUMNS").
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"ROWS": [], "COLUMNS": []})

    @property
    def sheet_id(self) -> int:
        return self.properties["sheetId"]

    @property
    def title(self) -> str:
        return self.properties["title"]

    @property
    def row_count(self) -> int:
        return self.properties["gridProperties"]["rowCount"]

    @property
    def column_count(self) -> int:
        return self.properties["gridProperties"]["columnCount"]

    def cell_count(self) -> int:
        return self.row_count * self.column_count

    def set_cell(self, row: int, column: int, cell: Cell) -> None:
        if cell.is_empty():
            self.cells.pop((row, column), None)
        else:
            self.cells[(row, column)] = cell

    def content_cells(self) -> Iterator[tuple[tuple[int, int], Cell]]:
        return ((position, cell) for position, cell in self.cells.items() if cell.has_content())


@dataclass(frozen=True)
class ResolvedRange:
    """A range bound to a sheet; ``None`` ends are open (end-exclusive)."""

    sheet: Sheet
    start_row: int
    end_row: int | None
    start_column: int
    end_column: int | None

    def clamped(self) -> tuple[int, int, int, int]:
        """Return concrete ``(r0, r1, c0, c1)``, open ends cut at the grid edge."""
        end_row = self.sheet.row_count if self.end_row is None else min(self.end_row, self.sheet.row_count)
        end_column = (
            self.sheet.column_count if self.end_column is None
            else min(self.end_column, self.sheet.column_count)
        )
        return self.start_row, end_row, self.start_column, end_column

    def a1(self) -> str:
        """Return the range as Sheets echoes it, clamped to the grid."""
        r0, r1, c0, c1 = self.clamped()
        return a1.format_range(self.sheet.title, r0, max(r1, r0 + 1), c0, max(c1, c0 + 1))


@dataclass
class Spreadsheet:
    """A spreadsheet file: properties, ordered sheets and named ranges."""

    spreadsheet_id: str
    properties: dict[str, Any]
    sheets: list[Sheet]
    named_ranges: list[dict[str, Any]] = field(default_factory=list)
    created_time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    modified_time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    @property
    def title(self) -> str:
        return self.properties["title"]

    def touch(self) -> None:
        self.modified_time = dt.datetime.now(dt.timezone.utc)

    def snapshot(self) -> "Spreadsheet":
        """Copy the mutable structure; cells are immutable so they are shared."""
        sheets = [
            Sheet(
                properties=copy.deepcopy(sheet.properties),
                cells=dict(sheet.cells),
                merges=copy.deepcopy(sheet.merges),
                basic_filter=copy.deepcopy(sheet.basic_filter),
                row_metadata=copy.deepcopy(sheet.row_metadata),
                column_metadata=copy.deepcopy(sheet.column_metadata),
                groups=copy.deepcopy(sheet.groups),
            )
            for sheet in self.sheets
        ]
        return Spreadsheet(
            self.spreadsheet_id,
            copy.deepcopy(self.properties),
            sheets,
            copy.deepcopy(self.named_ranges),
            self.created_time,
            self.modified_time,
        )

    def restore(self, snapshot: "Spreadsheet") -> None:
        self.properties = snapshot.properties
        self.sheets = snapshot.sheets
        self.named_ranges = snapshot.named_ranges
        self.modified_time = snapshot.modified_time

    def cell_count(self) -> int:
        return sum(sheet.cell_count() for sheet in self.sheets)

    def check_cell_limit(self, extra_cells: int = 0) -> None:
        """Raise Google's 400 when the grid would pass 10 million cells."""
        if self.cell_count() + extra_cells > MAX_SPREADSHEET_CELLS:
            raise errors.invalid_argument(CELL_LIMIT_MESSAGE)

    def sheet_by_id(self, sheet_id: int) -> Sheet | None:
        for sheet in self.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        return None

    def sheet_by_title(self, title: str) -> Sheet | None:
        for sheet in self.sheets:
            if sheet.title == title:
                return sheet
        folded = title.casefold()
        for sheet in self.sheets:
            if sheet.title.casefold() == folded:
                return sheet
        return None

    def named_range(self, name: str) -> dict[str, Any] | None:
        for named in self.named_ranges:
            if named["name"] == name:
                return named
        folded = name.casefold()
        for named in self.named_ranges:
            if named["name"].casefold() == folded:
                return named
        return None

    def resolve(self, text: str) -> ResolvedRange:
        """Resolve an A1 range string; raise Sheets' 400 when it names nothing."""
        try:
            reference = a1.parse_range(text)
        except ValueError:
            raise errors.unable_to_parse_range(text) from None
        if reference.sheet is not None:
            sheet = self.sheet_by_title(reference.sheet)
            if sheet is None:
                raise errors.unable_to_parse_range(text)
            if reference.bounds is not None:
                return _bind(sheet, reference.bounds)
            if reference.name is None:
                return ResolvedRange(sheet, 0, None, 0, None)
            return self._resolve_named(reference.name, text)
        if reference.bounds is not None:
            return _bind(self.sheets[0], reference.bounds)
        sheet = self.sheet_by_title(reference.name or "")
        if sheet is not None:
            return ResolvedRange(sheet, 0, None, 0, None)
        return self._resolve_named(reference.name or "", text)

    def _resolve_named(self, name: str, text: str) -> ResolvedRange:
        named = self.named_range(name)
        if named is None:
            raise errors.unable_to_parse_range(text)
        return self.resolve_grid_range(named["range"])

    def resolve_grid_range(self, grid_range: dict[str, Any]) -> ResolvedRange:
        """Bind an API GridRange object (``sheetId`` plus indexes)."""
        sheet_id = grid_range.get("sheetId", 0)
        sheet = self.sheet_by_id(sheet_id)
        if sheet is None:
            raise errors.invalid_argument(f"No grid with id: {sheet_id}")
        return ResolvedRange(
            sheet,
            grid_range.get("startRowIndex", 0),
            grid_range.get("endRowIndex"),
            grid_range.get("startColumnIndex", 0),
            grid_range.get("endColumnIndex"),
        )

    def effective_value(self, sheet: Sheet, row: int, column: int, depth: int = 0) -> Value:
        """Return the value a cell shows, evaluating formulas."""
        cell = sheet.cells.get((row, column))
        if cell is None:
            return None
        if cell.formula is None:
            return cell.value
        if depth > 50:
            return FormulaError("#REF!")
        return evaluate(cell.formula, lambda title, bounds: self._read_for_formula(sheet, title, bounds, depth))

    def _read_for_formula(self, sheet: Sheet, title: str | None, bounds: a1.Bounds, depth: int) -> list[list[Value]]:
        target = sheet if title is None else self.sheet_by_title(title)
        if target is None:
            return [[FormulaError("#REF!")]]
        end_row = target.row_count if bounds.end_row is None else min(bounds.end_row, target.row_count)
        end_column = (
            target.column_count if bounds.end_column is None
            else min(bounds.end_column, target.column_count)
        )
        occupied = [
            (r, c) for (r, c) in target.cells
            if bounds.start_row <= r < end_row and bounds.start_column <= c < end_column
        ]
        if not occupied:
            return [[None]]
        last_row = max(r for r, _ in occupied) + 1
        last_column = max(c for _, c in occupied) + 1
        return [
            [self.effective_value(target, r, c, depth + 1) for c in range(bounds.start_column, last_column)]
            for r in range(bounds.start_row, last_row)
        ]


def _bind(sheet: Sheet, bounds: a1.Bounds) -> ResolvedRange:
    return ResolvedRange(sheet, bounds.start_row, bounds.end_row, bounds.start_column, bounds.end_column)


class Store:
    """All spreadsheets of one emulator, with the lock and id generator."""

    def __init__(self, seed: int | None = None) -> None:
        self.lock = threading.RLock()
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self._random = random.Random(seed)

    def new_spreadsheet_id(self) -> str:
        alphabet = string.ascii_letters + string.digits + "-_"
        while True:
            candidate = "1" + "".join(self._random.choice(alphabet) for _ in range(43))
            if candidate not in self.spreadsheets:
                return candidate

    def new_sheet_id(self, spreadsheet: Spreadsheet) -> int:
        while True:
            candidate = self._random.randrange(1, 2**31 - 1)
            if spreadsheet.sheet_by_id(candidate) is None:
                return candidate

    def new_object_id(self) -> int:
        return self._random.randrange(1, 2**31 - 1)

    def create(self, title: str, sheet_specs: list[dict[str, Any]] | None = None,
               properties: dict[str, Any] | None = None) -> Spreadsheet:
        """Create a spreadsheet; without ``sheet_specs`` it gets one ``Sheet1``."""
        merged = copy.deepcopy(DEFAULT_SPREADSHEET_PROPERTIES)
        merged.update(copy.deepcopy(properties or {}))
        merged["title"] = title
        spreadsheet = Spreadsheet(self.new_spreadsheet_id(), _ordered_properties(merged), [])
        for spec in sheet_specs or [{}]:
            spreadsheet.sheets.append(self.build_sheet(spreadsheet, spec.get("properties", {})))
        spreadsheet.check_cell_limit()
        self.spreadsheets[spreadsheet.spreadsheet_id] = spreadsheet
        logger.info("created spreadsheet %s titled %r", spreadsheet.spreadsheet_id, title)
        return spreadsheet

    def build_sheet(self, spreadsheet: Spreadsheet, requested: dict[str, Any]) -> Sheet:
        """Build a sheet from requested SheetProperties, filling Google's defaults."""
        if "sheetId" in requested:
            sheet_id = requested["sheetId"]
            if spreadsheet.sheet_by_id(sheet_id) is not None:
                raise errors.invalid_argument(
                    f"A sheet with id {sheet_id} already exists. Choose another sheetId."
                )
        else:
            sheet_id = 0 if not spreadsheet.sheets else self.new_sheet_id(spreadsheet)
        title = requested.get("title") or _next_sheet_title(spreadsheet)
        if spreadsheet.sheet_by_title(title) is not None:
            raise errors.invalid_argument(
                f'A sheet with the name "{title}" already exists. Please enter another name.'
            )
        grid = dict(requested.get("gridProperties") or {})
        grid.setdefault("rowCount", DEFAULT_ROWS)
        grid.setdefault("columnCount", DEFAULT_COLUMNS)
        properties: dict[str, Any] = {
            "sheetId": sheet_id,
            "title": title,
            "sheetType": requested.get("sheetType", "GRID"),
            "gridProperties": {"rowCount": grid.pop("rowCount"), "columnCount": grid.pop("columnCount"), **grid},
        }
        for key, value in requested.items():
            if key not in properties and key != "index":
                properties[key] = copy.deepcopy(value)
        return Sheet(properties=properties)

    def get(self, spreadsheet_id: str) -> Spreadsheet:
        """Return a spreadsheet or raise Google's 404."""
        spreadsheet = self.spreadsheets.get(spreadsheet_id)
        if spreadsheet is None:
            raise errors.spreadsheet_not_found()
        return spreadsheet

    def delete(self, spreadsheet_id: str) -> None:
        if self.spreadsheets.pop(spreadsheet_id, None) is None:
            raise errors.drive_file_not_found(spreadsheet_id)
        logger.info("deleted spreadsheet %s", spreadsheet_id)


def _next_sheet_title(spreadsheet: Spreadsheet) -> str:
    number = len(spreadsheet.sheets) + 1
    while spreadsheet.sheet_by_title(f"Sheet{number}") is not None:
        number += 1
    return f"Sheet{number}"


def _ordered_properties(properties: dict[str, Any]) -> dict[str, Any]:
    order = ["title", "locale", "autoRecalc", "timeZone", "defaultFormat", "spreadsheetTheme"]
    ordered = {key: properties[key] for key in order if key in properties}
    ordered.update({key: value for key, value in properties.items() if key not in ordered})
    return ordered
