"""Spreadsheet destinations: the sync engine, the .xlsx backend and the report tabs.

``runtime.sheets.base`` defines the backend interface, ``runtime.sheets.engine``
computes the edits of a tab, ``runtime.sheets.xlsx`` stores tabs in a local
workbook and ``runtime.sheets.tabs`` keeps the Errors and Runs tabs.
"""

from runtime.sheets.base import CellKind, ChangeSet, Grid, LimitExceeded, SheetBackend
from runtime.sheets.engine import (
    SHEETS_MAX_CELL_CHARS,
    RowProblem,
    TabSync,
    canonical_key,
    cell_kind,
    cell_values_equal,
    find_columns,
    plan_tab_sync,
    sync_tab,
)
from runtime.sheets.tabs import (
    ERRORS_COLUMNS,
    ERRORS_TAB,
    RUNS_COLUMNS,
    RUNS_TAB,
    append_run_row,
    check_run_limits,
    report_tabs_growth,
    sync_errors_tab,
)
from runtime.sheets.xlsx import XlsxBackend, XlsxFileError

__all__ = [
    "ERRORS_COLUMNS",
    "ERRORS_TAB",
    "RUNS_COLUMNS",
    "RUNS_TAB",
    "SHEETS_MAX_CELL_CHARS",
    "CellKind",
    "ChangeSet",
    "Grid",
    "LimitExceeded",
    "RowProblem",
    "SheetBackend",
    "TabSync",
    "XlsxBackend",
    "XlsxFileError",
    "append_run_row",
    "canonical_key",
    "cell_kind",
    "cell_values_equal",
    "check_run_limits",
    "find_columns",
    "plan_tab_sync",
    "report_tabs_growth",
    "sync_errors_tab",
    "sync_tab",
]
