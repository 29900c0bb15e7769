"""The local ``.xlsx`` backend: tabs of a workbook file, read and written with openpyxl.

``XlsxBackend`` only reads tabs into grids and applies the change sets that the
engine computed. The workbook is opened with formulas kept (never ``data_only``), so
a formula cell reads as its formula text and is saved back unchanged unless the
engine writes into it, which it does only in owned columns. Text is always stored
as text, so ``007`` keeps its zeros and ``=SUM(A1)`` from a source stays a string.

Saving is atomic: the workbook is written to a temporary file in the same folder,
flushed to disk and moved over the report with ``os.replace``, so a crash leaves
either the old file or the new one. syncplan takes no lock of its own. One process
at a time may sync a workbook. ``commit`` raises ``XlsxFileError``, saving nothing:

- when the file changed on disk since it was opened, which catches most
  overlapping writers. Two saves in the same instant can still race, because the
  check and the rename are separate steps;
- when Excel's owner file (``~$NAME``) or LibreOffice's lock file
  (``.~lock.NAME#``) lies next to the workbook, because the program that has it
  open would later save its own copy over syncplan's changes;
- when the workbook file is read-only or its folder is not writable, with a
  message that names the workbook and the fix for that case.

openpyxl rewrites the whole file and drops what it does not model: images, charts,
pivot tables and some Excel extensions of a workbook people edited in Excel.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import os
import re
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.cell.cell import Cell
from openpyxl.formula.tokenizer import Token, Tokenizer, TokenizerError
from openpyxl.styles import Font
from openpyxl.styles.numbers import STRIP_RE, is_date_format, is_timedelta_format
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula
from openpyxl.worksheet.worksheet import Worksheet

from runtime.sheets.base import (
    BackendError,
    CellKind,
    ChangeSet,
    Grid,
    LimitExceeded,
    SheetBackend,
)

logger = logging.getLogger(__name__)

# Excel stores at most 32,767 characters in a cell, and openpyxl silently cuts longer
# text to that length when a value is set.
XLSX_MAX_CELL_CHARS = 32_767
# Excel's grid: rows and columns per worksheet. openpyxl raises a ValueError for
# a row past the last (openpyxl 3.1) but writes columns past the last one.
XLSX_MAX_ROWS = 1_048_576
XLSX_MAX_COLUMNS = 16_384
# A list validation of the two booleans: Excel offers TRUE and FALSE in a drop-down
# for the Retry column, the nearest to the checkbox Google Sheets shows.
_BOOLEAN_LIST = '"TRUE,FALSE"'
_MAX_TAB_TITLE = 31
_INVALID_TAB_TITLE = re.compile(r"[\\/*?:\[\]]")

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DURATION_FORMAT = "[h]:mm"
GENERAL_FORMAT = "General"

_CELL_REFERENCE = re.compile(r"(\$?[A-Za-z]{1,3}\$?)(\d+)")
_ROW_RANGE = re.compile(r"(\$?)(\d+):(\$?)(\d+)")
_REF_ERROR = "#REF!"


class XlsxFileError(BackendError):
    """The workbook file cannot be opened or saved. The message names the fix."""


class XlsxLimitExceeded(LimitExceeded):
    """A tab would get more rows or columns than an Excel worksheet holds."""


class XlsxBackend(SheetBackend):
    """A ``SheetBackend`` over one ``.xlsx`` file.

    The file is opened when the backend is created, or a new workbook is started
    when the path does not exist yet. Nothing reaches the disk before ``commit``.
    """

    max_cell_chars = XLSX_MAX_CELL_CHARS

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._dirty = False
        self._default_sheet: Worksheet | None = None
        if self._path.exists():
            self._workbook = _load_workbook(self._path)
        else:
            self._workbook = openpyxl.Workbook()
            # A new workbook comes with an empty "Sheet" that is removed on save
            # unless something was written to it.
            self._default_sheet = self._workbook.active
        self._disk_state = _disk_state(self._path)

    def location(self) -> str:
        """Return the path of the workbook file."""
        return str(self._path)

    def read_tab(self, name: str) -> Grid | None:
        """Return the used range of the tab, or ``None`` when no tab has that name.

        Trailing blank rows and columns are left out. Cells with a date-only number
        format read as ``datetime.date``, durations as ``datetime.timedelta`` and
        formula cells as their formula text.
        """
        sheet = _find_sheet(self._workbook, name)
        if sheet is None:
            return None

        values = {
            position: value
            for position, cell in _stored_cells(sheet)
            if (value := _read_value(cell)) is not None
        }
        height, width = _extent(values)
        rows: list[list[Any]] = [[None] * width for _ in range(height)]
        for (row, column), value in values.items():
            rows[row - 1][column - 1] = value

        return Grid(rows)

    def apply(self, name: str, changes: ChangeSet) -> None:
        """Apply ``changes`` to the tab, creating the tab first if it is missing.

        Raises ``XlsxLimitExceeded``, before changing anything, when the tab would
        get more rows or columns than Excel allows.
        """
        self.check_limits({name: changes})
        sheet = _find_sheet(self._workbook, name)
        if sheet is None:
            sheet = self._create_sheet(name)
            self._dirty = True
        if changes.is_empty():
            return

        height, width = _used_extent(sheet)
        _write_new_headers(sheet, changes.new_headers, width)
        _add_checkbox_validations(sheet, changes, width)
        for (row, column), value in changes.cells.items():
            _write_cell(sheet, row, column, value, changes.column_kinds)

        # When the tab was empty, the new headers are row 0 and rows follow them.
        first_row = max(height, 1 if changes.new_headers else 0)
        for offset, values in enumerate(changes.append_rows):
            for column, value in enumerate(values):
                if value is not None:
                    _write_cell(
                        sheet, first_row + offset, column, value, changes.column_kinds
                    )

        if changes.delete_rows:
            delete_rows(
                self._workbook, sheet, [index + 1 for index in changes.delete_rows]
            )
        self._dirty = True

    def check_limits(
        self,
        writes: Mapping[str, ChangeSet],
        new_rows: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """Raise ``XlsxLimitExceeded`` when a tab would outgrow an Excel worksheet.

        An .xlsx workbook has no limit across tabs, so each tab is checked alone:
        at most ``XLSX_MAX_ROWS`` rows and ``XLSX_MAX_COLUMNS`` columns.
        """
        projected: dict[str, tuple[int, int]] = {}
        for name, changes in writes.items():
            height, width = self._tab_extent(name)
            if changes.new_headers:
                height = max(height, 1)
            height += len(changes.append_rows) - len(set(changes.delete_rows))
            cell_columns = (column + 1 for _, column in changes.cells)
            width = max(width + len(changes.new_headers), *cell_columns, 0)
            projected[name] = (height, width)
        for name, (rows, columns) in (new_rows or {}).items():
            height, width = projected.get(name) or self._tab_extent(name)
            projected[name] = (height + rows, max(width, columns))

        for name, (rows, columns) in projected.items():
            if rows > XLSX_MAX_ROWS or columns > XLSX_MAX_COLUMNS:
                raise XlsxLimitExceeded(
                    f"Tab {name!r} of {str(self._path)!r} would get {rows:,} rows and"
                    f" {columns:,} columns, over Excel's limit of {XLSX_MAX_ROWS:,}"
                    f" rows and {XLSX_MAX_COLUMNS:,} columns per worksheet; nothing"
                    " was written. Filter the flow's records or split them over"
                    " several tabs."
                )

    def _tab_extent(self, name: str) -> tuple[int, int]:
        sheet = _find_sheet(self._workbook, name)
        return (0, 0) if sheet is None else _used_extent(sheet)

    def commit(self) -> None:
        """Save the workbook atomically, unless nothing changed since it was opened.

        Raises ``XlsxFileError`` when the file changed on disk after it was opened
        or cannot be replaced.
        """
        if not self._dirty and self._path.exists():
            logger.debug("Workbook %s has no changes to save", self._path)
            return

        self._check_unchanged_on_disk()
        _check_not_open_elsewhere(self._path)
        self._drop_unused_default_sheet()
        _save_atomically(self._workbook, self._path)
        self._disk_state = _disk_state(self._path)
        self._dirty = False
        logger.info("Saved workbook %s", self._path)

    def _create_sheet(self, name: str) -> Worksheet:
        _check_tab_title(name)
        sheet = self._workbook.create_sheet(title=name)
        sheet.freeze_panes = "A2"
        logger.debug("Created tab %r in %s", name, self._path)
        return sheet

    def _check_unchanged_on_disk(self) -> None:
        if _disk_state(self._path) == self._disk_state:
            return

        raise XlsxFileError(
            f"Workbook {str(self._path)!r} changed on disk after syncplan opened it,"
            " so it was not saved and the other changes were kept. Run the sync"
            " again so it starts from the new content."
        )

    def _drop_unused_default_sheet(self) -> None:
        sheet = self._default_sheet
        if sheet is None or sheet not in self._workbook.worksheets:
            return
        if len(self._workbook.sheetnames) == 1:
            return
        if any(_has_value(cell) for _, cell in _stored_cells(sheet)):
            return

        self._workbook.remove(sheet)
        self._workbook.active = 0
        self._default_sheet = None


# --- Opening and saving --------------------------------------------------------


def _load_workbook(path: Path) -> Workbook:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            workbook = openpyxl.load_workbook(path)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as error:
            raise XlsxFileError(
                f"Cannot open {str(path)!r} as an .xlsx workbook ({error}). Repair the"
                " file, or move it away so that syncplan creates a new one."
            ) from error

    # openpyxl warns about parts it drops, such as unsupported extensions.
    for warning in caught:
        logger.warning("openpyxl while reading %s: %s", path, warning.message)
    return workbook


def _disk_state(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        # No file there; commit reports a folder that is really a file.
        return None

    return (status.st_mtime_ns, status.st_size)


def _lock_files(path: Path) -> list[tuple[Path, str]]:
    """Return the lock files a spreadsheet program may keep for ``path``, by program.

    Excel names its owner file ``~$`` and the workbook's name, but replaces the
    first two characters of a longer name instead of adding to it. LibreOffice
    writes ``.~lock.NAME#``.
    """
    # NOTE: the name length from which Excel drops two characters is not
    # documented. Both names are checked from 8 characters on, so the owner file
    # of a workbook whose name differs only in its first two characters also
    # stops the save.
    names = [(f"~${path.name}", "Excel")]
    if len(path.stem) >= 8:
        names.append((f"~${path.name[2:]}", "Excel"))
    names.append((f".~lock.{path.name}#", "LibreOffice"))
    return [(path.with_name(name), program) for name, program in names]


def _check_not_open_elsewhere(path: Path) -> None:
    for lock, program in _lock_files(path):
        if lock.exists():
            raise XlsxFileError(
                f"Workbook {str(path)!r} is open in {program}: its lock file"
                f" {str(lock)!r} exists. Nothing was saved, because {program} would"
                " overwrite this run's changes when it saves its own copy. Close the"
                " workbook in Excel/LibreOffice, or delete the lock file if no one"
                " has it open, and run the sync again."
            )


def _check_writable(path: Path) -> None:
    """Raise ``XlsxFileError`` for a workbook file that is marked read-only.

    A rename would replace even a read-only file on POSIX, but the mark asks that
    the file stay unchanged, so it is respected. The mode bits are read as well as
    ``os.access``, because ``os.access`` grants root every write.
    """
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if mode & 0o222 and os.access(path, os.W_OK):
        return
    raise XlsxFileError(
        f"Cannot save workbook {str(path)!r}: the file is read-only, so nothing was"
        " saved. Make it writable (for example with `chmod u+w`, or by clearing"
        " Read-only in the file's properties on Windows) and run the sync again."
    )


def _folder_error(path: Path, error: OSError) -> XlsxFileError:
    folder = str(path.parent)
    if isinstance(error, PermissionError):
        return XlsxFileError(
            f"Cannot save workbook {str(path)!r}: its folder {folder!r} is not"
            f" writable ({error.strerror}), so nothing was saved. Give this user"
            " write permission on the folder (for example with `chmod u+w`) or set"
            " the spreadsheet path to a writable folder, and run the sync again."
        )
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        return XlsxFileError(
            f"Cannot save workbook {str(path)!r}: {folder!r} or a folder above it is"
            " a file, not a folder, so nothing was saved. Rename that file or set"
            " the spreadsheet path to another folder, and run the sync again."
        )
    return XlsxFileError(
        f"Cannot save workbook {str(path)!r} in folder {folder!r}:"
        f" {error.strerror or error}, so nothing was saved. Fix the folder and run"
        " the sync again."
    )


def _save_atomically(workbook: Workbook, path: Path) -> None:
    _check_writable(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open applies the umask like any new file, so the report does not end
        # up readable only by its owner, as a tempfile.mkstemp file would be.
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        raise _folder_error(path, error) from error

    try:
        if path.exists():
            shutil.copymode(path, temporary)
        workbook.save(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except PermissionError as error:
        # The checks above passed, so another program holds the file (Windows
        # locks a file that is open in Excel).
        temporary.unlink(missing_ok=True)
        raise XlsxFileError(
            f"Cannot replace workbook {str(path)!r} ({error.strerror}), so nothing"
            " was saved. Close the workbook in Excel or any other program that has"
            " it open, and run the sync again."
        ) from error
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise XlsxFileError(
            f"Cannot save workbook {str(path)!r}: {error.strerror or error}, so"
            " nothing was saved and the file keeps its previous content. Fix the"
            " cause (such as a full disk) and run the sync again."
        ) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

    _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    # The rename itself is durable only once the folder entry is flushed (POSIX).
    if os.name != "posix":
        return

    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- Reading -------------------------------------------------------------------


def _find_sheet(workbook: Workbook, name: str) -> Worksheet | None:
    # Excel and Google Sheets both treat tab names as case-insensitive, so a tab a
    # person renamed to "errors" must not get an "Errors" twin.
    target = name.casefold()
    for sheet in workbook.worksheets:
        if sheet.title.casefold() == target:
            return sheet

    return None


def _check_tab_title(name: str) -> None:
    if (
        not name.strip()
        or len(name) > _MAX_TAB_TITLE
        or _INVALID_TAB_TITLE.search(name)
    ):
        raise BackendError(
            f"Tab name {name!r} is not valid in an .xlsx workbook; use 1 to"
            f" {_MAX_TAB_TITLE} characters without any of \\ / * ? : [ ]."
        )
    if name.startswith("'") or name.endswith("'"):
        raise BackendError(
            f"Tab name {name!r} starts or ends with an apostrophe, which Excel rejects;"
            " remove the apostrophe."
        )


def _stored_cells(sheet: Worksheet) -> Iterable[tuple[tuple[int, int], Cell]]:
    # The public iterators (iter_rows, values) create a cell object for every empty
    # position they pass, which would grow the file on every read. The cell
    # dictionary contains only the cells the file or the engine created.
    return list(sheet._cells.items())


def _has_value(cell: Cell) -> bool:
    return cell.value is not None and cell.value != ""


def _used_extent(sheet: Worksheet) -> tuple[int, int]:
    """Return the number of rows and columns up to the last cell with a value."""
    return _extent(
        {position: True for position, cell in _stored_cells(sheet) if _has_value(cell)}
    )


def _extent(values: dict[tuple[int, int], Any]) -> tuple[int, int]:
    if not values:
        return (0, 0)

    height = max(row for row, _ in values)
    width = max(column for _, column in values)
    return (height, width)


def _read_value(cell: Cell) -> Any:
    value = cell.value
    if value is None or value == "":
        return None
    if isinstance(value, ArrayFormula):
        return value.text
    if isinstance(value, DataTableFormula):
        return f"=TABLE({value.r1 or ''},{value.r2 or ''})"
    # openpyxl reads every date-formatted number as a datetime.
    if (
        isinstance(value, dt.datetime)
        and date_format_kind(cell.number_format) == "date"
    ):
        return value.date()

    return value


# --- Writing -------------------------------------------------------------------


def _write_new_headers(sheet: Worksheet, headers: list[str], width: int) -> None:
    for offset, header in enumerate(headers):
        column = width + offset + 1
        cell = sheet.cell(row=1, column=column)
        cell.value = header
        cell.data_type = "s"
        cell.font = Font(bold=True)
        letter = get_column_letter(column)
        # Membership does not create the dimension, unlike indexing.
        if letter not in sheet.column_dimensions:
            sheet.column_dimensions[letter].width = max(10, len(header) + 2)


def _add_checkbox_validations(sheet: Worksheet, changes: ChangeSet, width: int) -> None:
    """Give each checkbox column this change set creates a TRUE/FALSE list validation.

    A column counts as created when its header is written now: a new header, or a
    header cell filled into a blank header row. The validation covers the column
    from row 2 to the bottom of the worksheet, so later rows need none of their own.
    """
    created = {width + offset for offset in range(len(changes.new_headers))}
    created |= {column for row, column in changes.cells if row == 0}
    for column in sorted(changes.checkbox_columns & created):
        letter = get_column_letter(column + 1)
        validation = DataValidation(
            type="list", formula1=_BOOLEAN_LIST, allow_blank=True
        )
        validation.add(f"{letter}2:{letter}{XLSX_MAX_ROWS}")
        sheet.add_data_validation(validation)


def _write_cell(
    sheet: Worksheet, row: int, column: int, value: Any, kinds: dict[int, CellKind]
) -> None:
    """Write one value at 0-based ``(row, column)``, where row 0 is the header row."""
    cell = sheet.cell(row=row + 1, column=column + 1)
    if row == 0:
        cell.font = Font(bold=True)
    elif value is not None:
        # Set before the value: the value setter gives a date cell openpyxl's
        # default format unless it already has a date format, and that unused
        # format would stay in the file's style table.
        cell.number_format = number_format_for(
            kinds.get(column, "text"), cell.number_format
        )

    cell.value = value
    if isinstance(value, str):
        # The setter turns text starting with "=" into a formula and "#N/A" into an
        # error value. Text from a source must stay text.
        cell.data_type = "s"


def number_format_for(kind: CellKind, previous: str) -> str:
    """Return the number format a written cell of ``kind`` gets.

    A format of the right sort that a person chose (``dd/mm/yyyy`` on a date
    column, ``#,##0.00`` on a number column) is kept. Otherwise dates get
    ``yyyy-mm-dd``, datetimes ``yyyy-mm-dd hh:mm`` and durations ``[h]:mm``. Other
    kinds keep the cell's format unless it would show the value as a date.
    """
    previous_kind = date_format_kind(previous)
    if kind == "date":
        return previous if previous_kind == "date" else DATE_FORMAT
    if kind == "datetime":
        return previous if previous_kind == "datetime" else DATETIME_FORMAT
    if kind == "duration":
        return previous if previous_kind == "duration" else DURATION_FORMAT

    return GENERAL_FORMAT if previous_kind is not None else previous


def date_format_kind(number_format: str | None) -> str | None:
    """Classify a number format as "date", "datetime", "time" or "duration".

    Returns ``None`` for formats that show plain numbers or text. openpyxl's own
    ``is_datetime`` looks for lowercase letters only, so it takes ``DD/MM/YYYY``
    for a time format.
    """
    if not is_date_format(number_format):
        return None
    assert number_format is not None
    if is_timedelta_format(number_format):
        return "duration"

    section = number_format.split(";")[0]
    section = STRIP_RE.sub("", section)
    # Escaped characters (\d) and padding widths (_d) are not date fields.
    section = re.sub(r"[\\_].", "", section).casefold()
    has_date = any(letter in section for letter in "dy")
    has_time = any(letter in section for letter in "hs")
    if has_date and has_time:
        return "datetime"
    return "date" if has_date else "time"


# --- Deleting rows -------------------------------------------------------------


class RowDeletion:
    """Maps 1-based row numbers to their numbers after some rows are deleted."""

    def __init__(self, rows: Iterable[int]) -> None:
        self._rows = sorted(set(rows))

    def new_row(self, row: int) -> int | None:
        """Return the row's new number, or ``None`` when the row is deleted."""
        index = bisect.bisect_left(self._rows, row)
        if index < len(self._rows) and self._rows[index] == row:
            return None

        return row - index

    def new_span(self, top: int, bottom: int) -> tuple[int, int] | None:
        """Return the new bounds of rows ``top..bottom``, or ``None`` if all go."""
        new_top = top - bisect.bisect_left(self._rows, top)
        new_bottom = bottom - bisect.bisect_right(self._rows, bottom)
        if new_bottom < new_top:
            return None

        return (new_top, new_bottom)


def delete_rows(workbook: Workbook, sheet: Worksheet, rows: list[int]) -> None:
    """Delete the 1-based ``rows`` of ``sheet`` and fix the formulas that refer to it.

    References to rows below a deleted row move up, ranges shrink, and references
    to a deleted cell become ``#REF!``, as when a person deletes the rows in Excel.
    Formulas of every tab and defined names are updated. ``Worksheet.delete_rows``
    of openpyxl does neither, and it creates a cell for every empty position below
    the deleted row.
    """
    deletion = RowDeletion(rows)
    _fix_formulas(workbook, sheet, deletion)

    moved: dict[tuple[int, int], Cell] = {}
    for (row, column), cell in _stored_cells(sheet):
        new_row = deletion.new_row(row)
        if new_row is None:
            continue
        cell.row = new_row
        if getattr(cell, "_hyperlink", None) is not None:
            cell._hyperlink.ref = cell.coordinate
        moved[(new_row, column)] = cell

    sheet._cells.clear()
    sheet._cells.update(moved)
    sheet._current_row = sheet.max_row if moved else 0
    # NOTE: merged cells, conditional formatting, data validations, tables and row
    # heights of the tab keep their old row numbers.


def _fix_formulas(workbook: Workbook, target: Worksheet, deletion: RowDeletion) -> None:
    for sheet in workbook.worksheets:
        on_target = sheet is target
        for _, cell in _stored_cells(sheet):
            if cell.data_type != "f":
                continue
            if isinstance(cell.value, ArrayFormula):
                formula = cell.value
                formula.text = shift_formula(
                    formula.text, target.title, on_target, deletion
                )
                if on_target and formula.ref:
                    formula.ref = (
                        _shift_row_numbers(formula.ref, deletion) or formula.ref
                    )
            elif isinstance(cell.value, str):
                cell._value = shift_formula(
                    cell.value, target.title, on_target, deletion
                )

    for defined in _defined_names(workbook):
        if defined.attr_text:
            text = shift_formula("=" + defined.attr_text, target.title, False, deletion)
            defined.attr_text = text[1:]


def _defined_names(workbook: Workbook) -> list[Any]:
    names = list(workbook.defined_names.values())
    for sheet in workbook.worksheets:
        names.extend(sheet.defined_names.values())

    return names


def shift_formula(
    formula: str, target_title: str, on_target: bool, deletion: RowDeletion
) -> str:
    """Rewrite the references of ``formula`` to tab ``target_title`` for a row deletion.

    ``on_target`` is true when the formula is in that tab, where references
    without a tab name refer to it. A formula the tokenizer cannot parse is kept.
    """
    try:
        tokens = Tokenizer(formula).items
    except TokenizerError as error:
        logger.warning(
            "Kept formula %r unchanged after a row deletion: %s", formula, error
        )
        return formula

    changed = False
    for token in tokens:
        if token.type != Token.OPERAND or token.subtype != Token.RANGE:
            continue
        shifted = _shift_reference(token.value, target_title, on_target, deletion)
        if shifted != token.value:
            token.value = shifted
            changed = True

    if not changed:
        return formula
    return "=" + "".join(token.value for token in tokens)


def _shift_reference(
    text: str, target_title: str, on_target: bool, deletion: RowDeletion
) -> str:
    prefix, reference = "", text
    if "!" in text:
        sheet_part, reference = text.rsplit("!", 1)
        prefix = sheet_part + "!"
        title = sheet_part
        if title.startswith("'") and title.endswith("'"):
            title = title[1:-1].replace("''", "'")
        # Ranges over several tabs and other workbooks are left alone.
        if ":" in title or title.startswith("["):
            return text
        refers_to_target = title.casefold() == target_title.casefold()
    else:
        refers_to_target = on_target
    if not refers_to_target:
        return text

    shifted = _shift_row_numbers(reference, deletion)
    return prefix + (shifted if shifted is not None else _REF_ERROR)


def _shift_row_numbers(reference: str, deletion: RowDeletion) -> str | None:
    """Return the shifted reference, or ``None`` when all its rows are deleted."""
    corners = [_CELL_REFERENCE.fullmatch(part) for part in reference.split(":")]
    if len(corners) <= 2 and all(corners):
        columns = [match.group(1) for match in corners if match]
        rows = [int(match.group(2)) for match in corners if match]
        return _shift_span(columns, rows, deletion)

    whole_rows = _ROW_RANGE.fullmatch(reference)
    if whole_rows:
        markers = [whole_rows.group(1), whole_rows.group(3)]
        rows = [int(whole_rows.group(2)), int(whole_rows.group(4))]
        return _shift_span(markers, rows, deletion)

    # Whole columns, names and structured table references do not move.
    return reference


def _shift_span(
    prefixes: list[str], rows: list[int], deletion: RowDeletion
) -> str | None:
    span = deletion.new_span(min(rows), max(rows))
    if span is None:
        return None

    if len(rows) == 1:
        return f"{prefixes[0]}{span[0]}"

    # A range may be written bottom corner first, and keeps its written order.
    new_rows = list(span) if rows[0] <= rows[1] else [span[1], span[0]]
    return ":".join(
        f"{prefix}{row}" for prefix, row in zip(prefixes, new_rows, strict=True)
    )
