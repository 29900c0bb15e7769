"""Tests of the sheet sync engine, against grids held in memory."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from compiler.plan.models import ColumnPlan
from runtime.sheets.base import ChangeSet, Grid
from runtime.sheets.engine import (
    canonical_key,
    cell_values_equal,
    find_columns,
    plan_tab_sync,
    serial_as,
    sync_tab,
)

COLUMNS = [
    ColumnPlan(field="id", header="Entry ID", aliases=["Entry #"]),
    ColumnPlan(field="name", header="Name", aliases=["Client"]),
    ColumnPlan(field="hours", header="Hours"),
    ColumnPlan(field="day", header="Day"),
]
TYPES = {"id": "integer", "name": "string", "hours": "decimal", "day": "date"}
HEADER = ["Entry ID", "Name", "Hours", "Day"]
UTC = dt.UTC


def record(
    entry_id: Any, name: str = "Acme", hours: Any = 2, day: Any = None
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "name": name,
        "hours": hours,
        "day": day or dt.date(2024, 3, 1),
    }


def plan(grid: Grid | None, records: list[dict[str, Any]], **options: Any):
    options.setdefault("mode", "upsert")
    options.setdefault("key", ["id"])
    return plan_tab_sync(grid, records, COLUMNS, TYPES, **options)


def apply_changes(grid: Grid | None, changes: ChangeSet) -> Grid:
    """Apply a change set the way the ChangeSet contract describes it."""
    rows = [list(row) for row in grid.rows] if grid is not None else []
    if changes.new_headers:
        if not rows:
            rows.append([])
        width = len(rows[0])
        for row in rows:
            row.extend([None] * (width - len(row) + len(changes.new_headers)))
        rows[0][width:] = changes.new_headers
    for (row, column), value in changes.cells.items():
        rows[row][column] = value
    rows.extend(list(row) for row in changes.append_rows)
    for index in sorted(changes.delete_rows, reverse=True):
        del rows[index]

    return Grid(rows)


class MemoryBackend:
    def __init__(self, tabs: dict[str, Grid] | None = None) -> None:
        self.tabs = dict(tabs or {})
        self.applied: list[ChangeSet] = []

    def read_tab(self, name: str) -> Grid | None:
        return self.tabs.get(name)

    def apply(self, name: str, changes: ChangeSet) -> None:
        self.applied.append(changes)
        self.tabs[name] = apply_changes(self.tabs.get(name), changes)

    def commit(self) -> None:
        pass

    def location(self) -> str:
        return "memory"


def codes(outcome) -> list[str]:
    return [problem.code for problem in outcome.errors]


# --- Missing and empty tabs -----------------------------------------------------


@pytest.mark.parametrize("grid", [None, Grid([])], ids=["missing", "no-rows"])
def test_plan_missing_tab_writes_header(grid):
    outcome = plan(grid, [record(1), record(2)])

    assert outcome.header_created is True
    assert outcome.changes.new_headers == HEADER
    assert outcome.changes.append_rows == [
        [1, "Acme", 2, dt.date(2024, 3, 1)],
        [2, "Acme", 2, dt.date(2024, 3, 1)],
    ]
    assert outcome.created == 2
    assert outcome.written_keys == {"1", "2"}
    assert outcome.changes.column_kinds == {
        0: "number",
        1: "text",
        2: "number",
        3: "date",
    }


def test_plan_blank_grid_fills_existing_header_row():
    outcome = plan(Grid([[None, None], [None, None]]), [record(1)])

    assert outcome.header_created is True
    assert outcome.changes.cells == {(0, 0): "Entry ID", (0, 1): "Name"}
    assert outcome.changes.new_headers == ["Hours", "Day"]
    assert outcome.changes.append_rows == [[1, "Acme", 2, dt.date(2024, 3, 1)]]


# --- Finding columns ------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ["entry id", "NAME", "hours", "day"],
        ["  Entry   ID ", " Name", "Hours  ", "DAY"],
        ["Entry #", "Client", "Hours", "Day"],
        ["Day", "Hours", "Name", "Entry ID"],
    ],
    ids=["case", "spaces", "aliases", "reordered"],
)
def test_plan_header_variants_match_existing_rows(header):
    positions = find_columns(header, COLUMNS)
    row = [None] * 4
    for column, position in zip(COLUMNS, positions, strict=True):
        row[position] = record(7)[column.field]
    grid = Grid([header, row])

    outcome = plan(grid, [record(7, hours=3)])

    assert outcome.changes.new_headers == []
    assert outcome.changes.append_rows == []
    assert outcome.changes.cells == {(1, positions[2]): 3}
    assert outcome.updated == 1


def test_find_columns_header_beats_alias_of_other_column():
    columns = [
        ColumnPlan(field="a", header="Total", aliases=["Sum"]),
        ColumnPlan(field="b", header="Sum"),
    ]

    assert find_columns(["Sum", "Total"], columns) == [1, 0]


def test_find_columns_duplicate_and_blank_headers():
    header = [None, "Name", "", "name", "Entry ID", 2024]

    positions = find_columns(header, COLUMNS)

    assert positions == [4, 1, None, None]


def test_plan_duplicate_header_reported():
    grid = Grid(
        [
            ["Entry ID", None, "Name", " NAME ", "Notes", "Notes", "Hours", "Day"],
            [1, "kept", "Acme", "copy", "a", "b", 2, dt.date(2024, 3, 1)],
        ]
    )

    outcome = plan(grid, [record(1, name="Acme 2")])

    assert codes(outcome) == ["duplicate_header"]
    problem = outcome.errors[0]
    assert (problem.key, problem.field, problem.raw) == (None, "name", "Name")
    assert problem.message == (
        "Header 'Name' of field 'name' is also in column(s) D of the header row."
        " syncplan writes column C, the leftmost, and leaves the others alone."
        " Rename or delete the other columns so that the header is unique."
    )
    assert outcome.changes.cells == {(1, 2): "Acme 2"}


def test_plan_missing_owned_column_appended_to_right():
    grid = Grid([["Entry ID", "Notes", "Name"], [1, "call back", "Acme"]])

    outcome = plan(grid, [record(1), record(2)])

    assert outcome.changes.new_headers == ["Hours", "Day"]
    assert outcome.changes.cells == {(1, 3): 2, (1, 4): dt.date(2024, 3, 1)}
    assert outcome.changes.append_rows == [[2, None, "Acme", 2, dt.date(2024, 3, 1)]]
    assert outcome.changes.column_kinds == {
        0: "number",
        2: "text",
        3: "number",
        4: "date",
    }


def test_plan_user_columns_between_owned_untouched():
    header = ["Entry ID", "Notes", "Name", "Total", "Hours", "Day"]
    grid = Grid(
        [
            header,
            [1, "vip", "Old name", "=E2*2", 2, dt.date(2024, 3, 1)],
            [None, "people row", None, "=SUM(E2:E9)", None, None],
        ]
    )

    outcome = plan(grid, [record(1, name="New name"), record(2)])

    assert outcome.changes.cells == {(1, 2): "New name"}
    assert outcome.changes.append_rows == [
        [2, None, "Acme", None, 2, dt.date(2024, 3, 1)]
    ]
    assert outcome.changes.delete_rows == []
    touched = {column for _, column in outcome.changes.cells}
    assert 1 not in touched
    assert 3 not in touched
    assert 1 not in outcome.changes.column_kinds
    assert 3 not in outcome.changes.column_kinds


# --- Key column and key matching ------------------------------------------------


@pytest.mark.parametrize("mode", ["upsert", "update", "create", "mirror"])
def test_plan_renamed_key_column_writes_nothing(mode):
    grid = Grid([["ID", "Name", "Hours"], [1, "Acme", 2]])

    outcome = plan(grid, [record(1), record(2)], mode=mode, owned_keys={"1"})

    assert outcome.changes.is_empty()
    assert outcome.changes.new_headers == []
    assert outcome.created == 0
    assert codes(outcome) == ["key_column_missing"]
    problem = outcome.errors[0]
    assert problem.field == "id"
    assert "'ID', 'Name', 'Hours'" in problem.message
    assert "Entry ID" in problem.message
    assert outcome.written_keys == {"1"}


def test_plan_append_mode_ignores_missing_key_column():
    grid = Grid([["ID", "Name", "Hours", "Day"], [1, "Acme", 2, None]])

    outcome = plan(grid, [record(1)], mode="append")

    assert codes(outcome) == []
    assert outcome.changes.new_headers == ["Entry ID"]
    assert outcome.created == 1


def test_plan_header_only_tab_gets_key_column():
    grid = Grid([["Name", "Notes"]])

    outcome = plan(grid, [record(1)])

    assert codes(outcome) == []
    assert outcome.changes.new_headers == ["Entry ID", "Hours", "Day"]
    assert outcome.changes.append_rows == [["Acme", None, 1, 2, dt.date(2024, 3, 1)]]


@pytest.mark.parametrize(
    "cell", [1007, 1007.0, "1007", " 1007", Decimal("1007"), "1007.0"]
)
def test_plan_integer_key_matches_number_or_text_cell(cell):
    grid = Grid([HEADER, [cell, "Acme", 2, dt.date(2024, 3, 1)]])

    outcome = plan(grid, [record(1007)])

    assert outcome.changes.append_rows == []
    assert outcome.created == 0
    assert outcome.written_keys == {"1007"}
    if isinstance(cell, str):
        # The text key is rewritten as a number, once.
        assert outcome.changes.cells == {(1, 0): 1007}
    else:
        assert outcome.changes.cells == {}


def test_plan_string_key_keeps_leading_zeros():
    columns = [
        ColumnPlan(field="code", header="Code"),
        ColumnPlan(field="label", header="Label"),
    ]
    types = {"code": "string", "label": "string"}
    grid = Grid([["Code", "Label"], ["42", "forty-two"], [" 0042 ", "old"]])

    outcome = plan_tab_sync(
        grid,
        [{"code": "0042", "label": "new"}, {"code": "007", "label": "bond"}],
        columns,
        types,
        mode="upsert",
        key=["code"],
    )

    assert outcome.changes.cells == {(2, 0): "0042", (2, 1): "new"}
    assert outcome.changes.append_rows == [["007", "bond"]]
    assert outcome.written_keys == {"0042", "007"}


@pytest.mark.parametrize(
    ("values", "types", "expected"),
    [
        ([1007], ["integer"], "1007"),
        ([1007.0], ["integer"], "1007"),
        (["1007"], ["integer"], "1007"),
        ([" 1007 "], ["integer"], "1007"),
        (["0042"], ["integer"], "42"),
        (["A-12"], ["integer"], "A-12"),
        (["0042"], ["string"], "0042"),
        ([" 42 "], ["string"], "42"),
        ([42.0], ["string"], "42"),
        ([dt.date(2024, 3, 1)], ["date"], "2024-03-01"),
        ([dt.datetime(2024, 3, 1, 8, 0)], ["date"], "2024-03-01"),
        (["2024-03-01"], ["date"], "2024-03-01"),
        ([Decimal("1.50")], ["decimal"], "1.5"),
        ([1.5], ["decimal"], "1.5"),
        (["1.50"], ["money"], "1.5"),
        ([True], ["boolean"], "true"),
        (["TRUE"], ["boolean"], "true"),
        ([None], ["string"], None),
        (["  "], ["string"], None),
        ([math.nan], ["decimal"], None),
        ([1, None], ["integer", "string"], None),
        ([1, "a"], ["integer", "string"], '["1","a"]'),
    ],
)
def test_canonical_key_normalizes_by_type(values, types, expected):
    assert canonical_key(values, types) == expected


def test_canonical_key_datetime_in_sheet_zone():
    zone = ZoneInfo("Europe/Paris")
    aware = dt.datetime(2024, 7, 1, 6, 30, tzinfo=UTC)
    naive_local = dt.datetime(2024, 7, 1, 8, 30)

    assert canonical_key([aware], ["datetime"], zone) == canonical_key(
        [naive_local], ["datetime"], zone
    )


def test_canonical_key_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 values for 1 key"):
        canonical_key([1, 2], ["integer"])


def test_plan_duplicate_keys_in_sheet_not_written():
    grid = Grid(
        [
            HEADER,
            [5, "Acme", 2, dt.date(2024, 3, 1)],
            ["5", "Acme copy", 2, dt.date(2024, 3, 1)],
            [6, "Beta", 2, dt.date(2024, 3, 1)],
        ]
    )

    outcome = plan(
        grid,
        [record(5, name="Changed"), record(6, name="Beta 2")],
        mode="mirror",
        owned_keys={"5", "6"},
    )

    assert codes(outcome) == ["duplicate_key_in_sheet"]
    assert outcome.errors[0].key == "5"
    assert "[2, 3]" in outcome.errors[0].message
    assert outcome.changes.cells == {(3, 1): "Beta 2"}
    assert outcome.changes.append_rows == []
    assert outcome.changes.delete_rows == []


def test_plan_duplicate_owned_key_in_sheet_never_deleted():
    grid = Grid([HEADER, [5, "Acme", 2, None], [5, "Acme copy", 2, None]])

    outcome = plan(grid, [], mode="mirror", owned_keys={"5"})

    assert outcome.changes.delete_rows == []
    assert codes(outcome) == ["duplicate_key_in_sheet"]
    assert outcome.written_keys == {"5"}


def test_plan_duplicate_keys_in_source_last_wins():
    outcome = plan(None, [record(1, name="first"), record(2), record("1", name="last")])

    assert outcome.changes.append_rows[0][1] == "last"
    assert outcome.created == 2
    assert codes(outcome) == ["duplicate_key_in_source"]
    assert outcome.errors[0].key == "1"
    assert "the last record with this key was written" in outcome.errors[0].message


def test_plan_duplicate_keys_in_source_update_row():
    grid = Grid([HEADER, [1, "Acme", 2, dt.date(2024, 3, 1)]])

    outcome = plan(grid, [record(1, name="first"), record(1, name="last")])

    assert outcome.changes.cells == {(1, 1): "last"}
    assert outcome.changes.append_rows == []
    assert codes(outcome) == ["duplicate_key_in_source"]


@pytest.mark.parametrize(
    ("values", "types", "expected"),
    [
        ([45352], ["date"], "2024-03-01"),
        ([45352.75], ["date"], "2024-03-01"),
        ([45352.75], ["datetime"], "2024-03-01T18:00:00.000"),
        ([Decimal("45352.5")], ["datetime"], "2024-03-01T12:00:00.000"),
        ([45352], ["string"], "45352"),
    ],
)
def test_canonical_key_reads_serials_by_type(values, types, expected):
    assert canonical_key(values, types) == expected


@pytest.mark.parametrize(
    ("value", "like", "shown"),
    [
        (45444, dt.date(2024, 1, 1), dt.date(2024, 6, 1)),
        (45444.75, dt.date(2024, 1, 1), dt.date(2024, 6, 1)),
        (45444.75, dt.datetime(2024, 1, 1), dt.datetime(2024, 6, 1, 18)),
        (0.0625, dt.timedelta(0), dt.timedelta(hours=1, minutes=30)),
        (45444, 7, 45444),
        ("45444", dt.date(2024, 1, 1), "45444"),
        (True, dt.date(2024, 1, 1), True),
        (None, dt.date(2024, 1, 1), None),
    ],
)
def test_serial_as_type_of_new_value(value, like, shown):
    assert serial_as(value, like) == shown
    assert type(serial_as(value, like)) is type(shown)


def test_plan_date_key_matches_serial_cell():
    columns = [ColumnPlan(field="day", header="Day"), ColumnPlan(field="n", header="N")]
    types = {"day": "date", "n": "integer"}
    grid = Grid([["Day", "N"], [45352, 1], [45353.0, 2]])
    records = [{"day": dt.date(2024, 3, 1), "n": 1}, {"day": dt.date(2024, 3, 2), "n": 5}]

    outcome = plan_tab_sync(grid, records, columns, types, mode="upsert", key=["day"])

    assert outcome.changes.cells == {(2, 1): 5}
    assert outcome.changes.append_rows == []
    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 1, 1)


def test_plan_number_cell_against_text_key():
    columns = [ColumnPlan(field="code", header="Code"), ColumnPlan(field="n", header="N")]
    types = {"code": "string", "n": "integer"}
    grid = Grid([["Code", "N"], [42, 1], ["0043", 2], [7.0, 3]])
    records = [
        {"code": "0042", "n": 10},
        {"code": "0043", "n": 20},
        {"code": "7", "n": 30},
        {"code": "0044", "n": 40},
    ]

    outcome = plan_tab_sync(grid, records, columns, types, mode="upsert", key=["code"])

    assert codes(outcome) == ["key_cell_is_number"]
    problem = outcome.errors[0]
    assert (problem.key, problem.field, problem.raw) == ("0042", "code", "0042")
    assert "rows [2] hold the number 42 in key column 'Code'" in problem.message
    assert "type the key as '0042'" in problem.message
    # "7" matches the number 7, and its key cell is rewritten as the text it is.
    assert outcome.changes.cells == {(2, 1): 20, (3, 0): "7", (3, 1): 30}
    assert outcome.changes.append_rows == [["0044", 40]]
    assert outcome.written_keys == {"0043", "7", "0044"}


def test_plan_record_without_key_reported():
    outcome = plan(None, [record(None), record(" ")])

    assert codes(outcome) == ["key_missing", "key_missing"]
    assert outcome.changes.append_rows == []


def test_plan_blank_rows_are_not_keys():
    grid = Grid(
        [
            HEADER,
            [None, None, None, None],
            [1, "Acme", 2, dt.date(2024, 3, 1)],
            ["", None, "", None],
        ]
    )

    outcome = plan(grid, [record(1)], mode="mirror", owned_keys={"1"})

    assert outcome.changes.is_empty()
    assert outcome.unchanged == 1


# --- Write modes ----------------------------------------------------------------


def existing_grid() -> Grid:
    return Grid(
        [
            HEADER,
            [1, "Acme", 2, dt.date(2024, 3, 1)],
            [2, "Beta", 3, dt.date(2024, 3, 1)],
            [3, "People's row", 4, dt.date(2024, 3, 1)],
        ]
    )


@pytest.mark.parametrize(
    ("mode", "cells", "appended", "deleted", "counts", "problems"),
    [
        ("upsert", {(1, 1): "Acme 2"}, [4], [], (1, 1, 1, 0), []),
        ("update", {(1, 1): "Acme 2"}, [], [], (0, 1, 1, 0), ["key_not_found"]),
        ("create", {}, [4], [], (1, 0, 2, 0), []),
        ("append", {}, [1, 2, 4], [], (3, 0, 0, 0), []),
        ("mirror", {(1, 1): "Acme 2"}, [4], [], (1, 1, 1, 0), []),
    ],
)
def test_plan_write_modes(mode, cells, appended, deleted, counts, problems):
    records = [record(1, name="Acme 2"), record(2, name="Beta", hours=3), record(4)]

    outcome = plan(existing_grid(), records, mode=mode)

    assert outcome.changes.cells == cells
    assert [row[0] for row in outcome.changes.append_rows] == appended
    assert outcome.changes.delete_rows == deleted
    assert (
        outcome.created,
        outcome.updated,
        outcome.unchanged,
        outcome.deleted,
    ) == counts
    assert codes(outcome) == problems


def test_plan_update_reports_each_unknown_key():
    outcome = plan(existing_grid(), [record(8), record(9)], mode="update")

    assert [(p.code, p.key) for p in outcome.errors] == [
        ("key_not_found", "8"),
        ("key_not_found", "9"),
    ]
    assert outcome.written_keys == set()


def test_plan_mirror_deletes_only_owned_keys():
    outcome = plan(
        existing_grid(), [record(1)], mode="mirror", owned_keys={"1", "2", "77"}
    )

    assert outcome.changes.delete_rows == [2]
    assert outcome.deleted == 1
    assert outcome.written_keys == {"1"}


def test_plan_mirror_deletes_in_row_order():
    outcome = plan(existing_grid(), [], mode="mirror", owned_keys={"3", "1", "2"})

    assert outcome.changes.delete_rows == [1, 2, 3]
    assert outcome.deleted == 3
    assert outcome.written_keys == set()


def test_plan_upsert_keeps_owned_keys_still_in_sheet():
    outcome = plan(
        existing_grid(), [record(1, name="Acme")], owned_keys={"1", "2", "99"}
    )

    assert outcome.changes.is_empty()
    assert outcome.written_keys == {"1", "2"}


def test_plan_append_mode_appends_existing_keys_again():
    outcome = plan(existing_grid(), [record(1), record(1)], mode="append")

    assert outcome.created == 2
    assert len(outcome.changes.append_rows) == 2
    assert codes(outcome) == []


def test_plan_append_mode_without_key():
    outcome = plan(None, [record(1)], mode="append", key=[])

    assert outcome.created == 1
    assert outcome.written_keys == set()


def test_plan_create_only_fields_written_once():
    grid = Grid([HEADER, [1, "Ticked by a person", 2, dt.date(2024, 3, 1)]])

    outcome = plan(
        grid, [record(1, name="Acme"), record(2)], create_only_fields={"name"}
    )

    assert outcome.changes.cells == {}
    assert outcome.changes.append_rows == [[2, "Acme", 2, dt.date(2024, 3, 1)]]


# --- Cell values ----------------------------------------------------------------


def test_plan_none_clears_owned_cell():
    grid = Grid([HEADER, [1, "Acme", 2, dt.date(2024, 3, 1)]])

    outcome = plan(
        grid, [{"id": 1, "name": None, "hours": 2, "day": dt.date(2024, 3, 1)}]
    )

    assert outcome.changes.cells == {(1, 1): None}
    assert outcome.updated == 1


def test_plan_absent_field_clears_owned_cell():
    grid = Grid([HEADER, [1, "Acme", 2, dt.date(2024, 3, 1)]])

    outcome = plan(grid, [{"id": 1, "hours": 2, "day": dt.date(2024, 3, 1)}])

    assert outcome.changes.cells == {(1, 1): None}


def test_plan_nan_reported_and_cell_kept():
    grid = Grid([HEADER, [1, "Acme", 2, dt.date(2024, 3, 1)], [2, "Beta", None, None]])

    records = [
        record(1, hours=math.nan),
        record(2, "Beta", Decimal("NaN")),
        record(3, hours=math.nan),
    ]

    outcome = plan(grid, records)

    assert outcome.changes.cells == {(2, 3): dt.date(2024, 3, 1)}
    assert outcome.changes.append_rows == [[3, "Acme", None, dt.date(2024, 3, 1)]]
    assert codes(outcome) == ["value_not_finite"] * 3
    assert [(p.key, p.field, p.raw) for p in outcome.errors] == [
        ("1", "hours", "nan"),
        ("2", "hours", "Decimal('NaN')"),
        ("3", "hours", "nan"),
    ]
    assert "is not a number" in outcome.errors[0].message
    assert "keeps its value" in outcome.errors[0].message


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        (5, 5.0),
        (5.0, 5),
        (1.5, Decimal("1.50")),
        (Decimal("2.10"), 2.1),
        (0.3, 0.1 + 0.2),
        (12345678901234567890, 12345678901234567890),
    ],
)
def test_plan_numeric_equality_is_unchanged(cell, value):
    grid = Grid([HEADER, [1, "Acme", cell, dt.date(2024, 3, 1)]])

    outcome = plan(grid, [record(1, hours=value)])

    assert outcome.changes.is_empty()
    assert outcome.unchanged == 1


@pytest.mark.parametrize(
    ("old", "new", "equal"),
    [
        (None, "", True),
        ("", None, True),
        (None, 0, False),
        ("5", 5, False),
        (5, "5", False),
        (True, 1, False),
        (1, True, False),
        (False, False, True),
        (dt.date(2024, 3, 1), dt.datetime(2024, 3, 1), False),
        (
            dt.datetime(2024, 3, 1, 9, 0, 0, 123000),
            dt.datetime(2024, 3, 1, 9, 0, 0, 123456),
            True,
        ),
        (dt.datetime(2024, 3, 1, 9, 0, 0), dt.datetime(2024, 3, 1, 9, 0, 1), False),
        (dt.timedelta(minutes=7), dt.timedelta(minutes=7, microseconds=400), True),
        (dt.timedelta(minutes=7), 7, False),
        ("Acme", "Acme ", False),
        (12345678901234567890, 12345678901234567891, False),
    ],
)
def test_cell_values_equal_cases(old, new, equal):
    assert cell_values_equal(old, new) is equal


def test_plan_converts_values_for_cells():
    columns = [
        ColumnPlan(field="id", header="ID"),
        ColumnPlan(field="at", header="At"),
        ColumnPlan(field="day", header="Day"),
        ColumnPlan(field="amount", header="Amount"),
        ColumnPlan(field="spent", header="Spent"),
        ColumnPlan(field="paid", header="Paid"),
        ColumnPlan(field="note", header="Note"),
    ]
    types = {
        "id": "integer",
        "at": "datetime",
        "day": "date",
        "amount": "money",
        "spent": "duration",
        "paid": "boolean",
        "note": "email",
    }
    value = {
        "id": 1,
        "at": dt.datetime(2024, 7, 1, 6, 30, tzinfo=UTC),
        "day": dt.date(2024, 7, 1),
        "amount": Decimal("10.50"),
        "spent": dt.timedelta(hours=1, minutes=15),
        "paid": True,
        "note": "a\x07b@example.com",
    }

    outcome = plan_tab_sync(
        None,
        [value],
        columns,
        types,
        mode="upsert",
        key=["id"],
        timezone="Europe/Paris",
    )

    row = outcome.changes.append_rows[0]
    assert row[1] == dt.datetime(2024, 7, 1, 8, 30)
    assert row[1].tzinfo is None
    assert type(row[2]) is dt.date
    assert isinstance(row[3], Decimal)
    assert row[4] == dt.timedelta(hours=1, minutes=15)
    assert row[5] is True
    assert row[6] == "ab@example.com"
    assert outcome.changes.column_kinds == {
        0: "number",
        1: "datetime",
        2: "date",
        3: "number",
        4: "duration",
        5: "boolean",
        6: "text",
    }


def test_plan_datetime_rounded_by_sheet_is_unchanged():
    columns = [ColumnPlan(field="id", header="ID"), ColumnPlan(field="at", header="At")]
    types = {"id": "integer", "at": "datetime"}
    grid = Grid([["ID", "At"], [1, dt.datetime(2024, 7, 1, 8, 30, 0, 124000)]])
    value = {"id": 1, "at": dt.datetime(2024, 7, 1, 6, 30, 0, 123600, tzinfo=UTC)}

    outcome = plan_tab_sync(
        grid,
        [value],
        columns,
        types,
        mode="upsert",
        key=["id"],
        timezone="Europe/Paris",
    )

    assert outcome.changes.is_empty()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("x" * 51, "cell_too_long"),
        (math.inf, "value_not_finite"),
        (Decimal("-Infinity"), "value_not_finite"),
        ([1, 2], "unsupported_value"),
    ],
)
def test_plan_unwritable_value_keeps_cell(value, code):
    grid = Grid([HEADER, [1, "Acme", 2, dt.date(2024, 3, 1)]])

    outcome = plan(grid, [record(1, name=value, hours=value)], max_cell_chars=50)

    assert code in codes(outcome)
    problem = next(p for p in outcome.errors if p.code == code)
    assert problem.key == "1"
    assert problem.raw is not None
    assert (1, 1) not in outcome.changes.cells
    assert (1, 2) not in outcome.changes.cells
    assert outcome.unchanged == 1


def test_plan_long_text_left_out():
    outcome = plan(None, [record(1, name="y" * 60)], max_cell_chars=50)

    assert outcome.changes.append_rows == [[1, None, 2, dt.date(2024, 3, 1)]]
    assert codes(outcome) == ["cell_too_long"]
    assert outcome.errors[0].field == "name"


# --- Idempotency ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["upsert", "create", "mirror"])
def test_plan_second_sync_is_empty(mode):
    records = [record(1), record(2, hours=Decimal("1.25")), record(3, name="0042")]
    grid = Grid([["Notes", "Entry ID"], [None, 9]])
    first = plan(grid, records, mode=mode, owned_keys={"9"})
    after = apply_changes(grid, first.changes)

    second = plan(after, records, mode=mode, owned_keys=first.written_keys)

    assert second.changes.is_empty()
    assert (second.created, second.updated, second.deleted) == (0, 0, 0)
    assert second.unchanged == 3
    assert second.written_keys == first.written_keys


def test_sync_tab_applies_then_second_sync_is_noop():
    backend = MemoryBackend()

    first = sync_tab(
        backend, "Data", [record(1)], COLUMNS, TYPES, mode="upsert", key=["id"]
    )
    second = sync_tab(
        backend, "Data", [record(1)], COLUMNS, TYPES, mode="upsert", key=["id"]
    )

    assert first.created == 1
    assert second.changes.is_empty()
    assert len(backend.applied) == 1
    assert backend.tabs["Data"].rows == [HEADER, [1, "Acme", 2, dt.date(2024, 3, 1)]]


def test_sync_tab_uses_backend_cell_limit():
    backend = MemoryBackend()
    backend.max_cell_chars = 10  # type: ignore[attr-defined]

    outcome = sync_tab(
        backend,
        "Data",
        [record(1, name="z" * 11)],
        COLUMNS,
        TYPES,
        mode="upsert",
        key=["id"],
    )

    assert codes(outcome) == ["cell_too_long"]


# --- Invalid arguments ----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "merge"}, "Write mode 'merge' is unknown"),
        ({"mode": "upsert", "key": []}, "needs a key"),
        ({"key": ["client"]}, "Key fields \\['client'\\] have no column"),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a known IANA time zone"),
    ],
)
def test_plan_invalid_arguments_raise(options, message):
    with pytest.raises(ValueError, match=message):
        plan(None, [record(1)], **options)


def test_plan_missing_field_type_raises():
    with pytest.raises(ValueError, match="\\['day'\\] have no entry in field_types"):
        plan_tab_sync(
            None,
            [],
            COLUMNS,
            {"id": "integer", "name": "string", "hours": "decimal"},
            mode="upsert",
            key=["id"],
        )
