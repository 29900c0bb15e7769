"""Tests of the ICS source reader: expansion, time zones, people, broken input."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from compiler.catalog import KINDS
from compiler.plan import SystemPlan
from runtime.sources import ics
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)

FIXTURES = Path(__file__).resolve().parent / "data" / "ics"
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
LONDON = zoneinfo.ZoneInfo("Europe/London")
UTC = dt.timezone.utc
SERIES = "weekly-sync@example.com"
# The fixture series: 30 Mondays from 2026-10-05, two removed by EXDATE.
SERIES_INSTANCES = 28
FIXTURE_WINDOW = (
    dt.datetime(2026, 9, 1, tzinfo=UTC),
    dt.datetime(2027, 6, 1, tzinfo=UTC),
)


def _context(
    base_dir: Path,
    window: tuple[dt.datetime, dt.datetime] | None = FIXTURE_WINDOW,
    now: dt.datetime = dt.datetime(2026, 11, 1, tzinfo=UTC),
) -> SourceContext:
    start, end = window if window else (None, None)
    return SourceContext(base_dir=base_dir, now=now, window_start=start, window_end=end)


def _system(**settings: Any) -> SystemPlan:
    return SystemPlan(id="calendar", kind="ics", settings=settings)


def _read(
    stream: str = "events",
    base_dir: Path = FIXTURES,
    window: tuple[dt.datetime, dt.datetime] | None = FIXTURE_WINDOW,
    **settings: Any,
) -> list[SourceRecord | SourceError]:
    settings.setdefault("path", "team.ics")
    return list(ics.read(_system(**settings), stream, _context(base_dir, window)))


def _records(items: list[SourceRecord | SourceError]) -> list[dict[str, Any]]:
    return [item.data for item in items if isinstance(item, SourceRecord)]


def _errors(items: list[SourceRecord | SourceError]) -> list[SourceError]:
    return [item for item in items if isinstance(item, SourceError)]


def _by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["instance_id"]: record for record in records}


def _write(tmp_path: Path, name: str, body: str) -> str:
    text = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//tests//EN\n" + body
    text += "END:VCALENDAR\n"
    (tmp_path / name).write_text(text, encoding="utf-8")
    return name


# --- the team fixture ------------------------------------------------------


def test_series_keeps_local_time_across_dst() -> None:
    records = _records(_read(timezone="Europe/London"))
    series = [r for r in records if r["uid"] == SERIES and r["status"] != "CANCELLED"]
    unmoved = [r for r in series if r["start"].weekday() == 0]
    assert len(unmoved) == SERIES_INSTANCES - 2  # minus the moved and cancelled one
    for record in unmoved:
        assert record["start"].hour == 10
        assert record["start"].tzinfo == LONDON
        assert record["end"].hour == 11
    offsets = {r["start"].date(): r["start"].utcoffset() for r in unmoved}
    assert offsets[dt.date(2026, 10, 19)] == dt.timedelta(hours=1)
    assert offsets[dt.date(2026, 10, 26)] == dt.timedelta(0)
    assert offsets[dt.date(2027, 3, 22)] == dt.timedelta(0)
    assert offsets[dt.date(2027, 3, 29)] == dt.timedelta(hours=1)


def test_series_instance_ids_use_utc_original_start() -> None:
    records = _by_id(_records(_read()))
    summer = records[f"{SERIES}/20261019T090000Z"]
    winter = records[f"{SERIES}/20261026T100000Z"]
    assert summer["recurrence_id"] == "20261019T090000Z"
    assert winter["recurrence_id"] == "20261026T100000Z"
    assert summer["is_recurring"] is True
    assert summer["timezone"] == "Europe/London"
    assert summer["date"] == dt.date(2026, 10, 19)


def test_series_count_and_exdates() -> None:
    records = _records(_read())
    series = [r for r in records if r["uid"] == SERIES]
    assert len(series) == SERIES_INSTANCES
    starts = {r["start"].date() for r in series}
    # One EXDATE has a TZID, the other is written in UTC.
    assert dt.date(2026, 12, 21) not in starts
    assert dt.date(2026, 12, 28) not in starts
    assert dt.date(2026, 12, 14) in starts
    assert dt.date(2027, 1, 4) in starts


def test_moved_instance_keeps_original_id() -> None:
    records = _by_id(_records(_read()))
    moved = records[f"{SERIES}/20261109T100000Z"]
    assert moved["start"] == dt.datetime(2026, 11, 10, 14, 0, tzinfo=LONDON)
    assert moved["end"] == dt.datetime(2026, 11, 10, 15, 30, tzinfo=LONDON)
    assert moved["duration_hours"] == Decimal("1.50")
    assert moved["summary"] == "Weekly sync (moved to Tuesday)"
    assert moved["sequence"] == 1
    assert moved["recurrence_id"] == "20261109T100000Z"
    starts = [r["start"] for r in records.values()]
    assert dt.datetime(2026, 11, 9, 10, 0, tzinfo=LONDON) not in starts


def test_unmoved_instance_has_master_sequence() -> None:
    records = _by_id(_records(_read()))
    assert records[f"{SERIES}/20261116T100000Z"]["sequence"] == 0


def test_cancelled_override_arrives_cancelled() -> None:
    records = _by_id(_records(_read()))
    cancelled = records[f"{SERIES}/20270111T100000Z"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["start"] == dt.datetime(2027, 1, 11, 10, 0, tzinfo=LONDON)
    statuses = [r["status"] for r in records.values() if r["uid"] == SERIES]
    assert statuses.count("CANCELLED") == 1


def test_cancelled_single_event() -> None:
    records = _by_id(_records(_read()))
    review = records["client-review@example.com/20261120T150000Z"]
    assert review["status"] == "CANCELLED"
    assert review["is_recurring"] is False
    assert review["recurrence_id"] is None
    assert review["duration_hours"] == Decimal("1.50")
    assert review["timezone"] == "UTC"


def test_all_day_leave_is_one_record() -> None:
    records = [r for r in _records(_read()) if r["uid"] == "leave-carol@example.com"]
    assert len(records) == 1
    leave = records[0]
    assert leave["instance_id"] == "leave-carol@example.com/20261223"
    assert leave["start"] == dt.date(2026, 12, 23)
    assert type(leave["start"]) is dt.date
    assert leave["end"] == dt.date(2026, 12, 31)
    assert leave["date"] == dt.date(2026, 12, 23)
    assert leave["all_day"] is True
    assert leave["duration_hours"] == Decimal("0")
    assert leave["timezone"] is None
    assert leave["categories"] == ["LEAVE"]


def test_text_unfolded_and_unescaped() -> None:
    master = _by_id(_records(_read()))[f"{SERIES}/20261005T090000Z"]
    assert master["summary"] == "Weekly sync – Café ☕"
    assert master["description"] == (
        "Agenda:\n1. Status, risks; next steps\n2. Zürich office update"
    )
    assert master["location"] == "Room 4, 2nd floor"
    assert master["categories"] == ["ACM-001", "Internal"]
    assert master["status"] == "CONFIRMED"


def test_people_parse_quoted_names() -> None:
    master = _by_id(_records(_read()))[f"{SERIES}/20261005T090000Z"]
    assert master["organizer"] == {"email": "alice.ng@example.com", "name": "Ng, Alice"}
    assert master["organizer_email"] == "alice.ng@example.com"
    assert master["attendees"] == [
        {
            "email": "bob@example.com",
            "name": "O'Neil, Bob \"Bobby\"",
            "partstat": "DECLINED",
            "role": "REQ-PARTICIPANT",
        },
        {
            "email": "carol@example.com",
            "name": "Carol Díaz",
            "partstat": "ACCEPTED",
            "role": "OPT-PARTICIPANT",
        },
        {
            "email": "dave@example.com",
            "name": "Dave",
            "partstat": "NEEDS-ACTION",
            "role": "REQ-PARTICIPANT",
        },
    ]


def test_attendance_adds_unlisted_organizer() -> None:
    rows = [
        r
        for r in _records(_read("attendance"))
        if r["instance_id"] == f"{SERIES}/20261005T090000Z"
    ]
    by_email = {row["attendee_email"]: row for row in rows}
    assert len(rows) == 4
    organizer = by_email["alice.ng@example.com"]
    assert organizer["is_organizer"] is True
    assert organizer["partstat"] == "ACCEPTED"
    assert organizer["attendee_name"] == "Ng, Alice"
    bob = by_email["bob@example.com"]
    assert bob["declined"] is True
    assert bob["partstat"] == "DECLINED"
    assert bob["is_organizer"] is False
    assert by_email["carol@example.com"]["declined"] is False
    assert by_email["dave@example.com"]["partstat"] == "NEEDS-ACTION"


def test_attendance_lists_organizer_once() -> None:
    rows = [
        r
        for r in _records(_read("attendance"))
        if r["uid"] == "client-review@example.com"
    ]
    assert [row["attendee_email"] for row in rows] == [
        "carol@example.com",
        "bob@example.com",
    ]
    assert rows[0]["is_organizer"] is True
    assert rows[0]["role"] == "CHAIR"
    assert rows[1]["partstat"] == "TENTATIVE"
    assert rows[1]["attendee_name"] is None


def test_attendance_count_per_instance() -> None:
    rows = _records(_read("attendance"))
    series_rows = [r for r in rows if r["uid"] == SERIES]
    # The moved and the cancelled overrides name fewer people than the master.
    assert len(series_rows) == (SERIES_INSTANCES - 2) * 4 + 3 + 0
    leave_rows = [r for r in rows if r["uid"] == "leave-carol@example.com"]
    assert len(leave_rows) == 1
    assert leave_rows[0]["is_organizer"] is True


def test_attendance_keys_are_unique() -> None:
    items = [i for i in _read("attendance") if isinstance(i, SourceRecord)]
    keys = [item.key for item in items]
    assert len(keys) == len(set(keys))
    assert f"{SERIES}/20261005T090000Z/bob@example.com" in keys


def test_instance_ids_stable_across_reads() -> None:
    first = [r["instance_id"] for r in _records(_read())]
    second = [r["instance_id"] for r in _records(_read())]
    assert first == second
    assert len(first) == len(set(first))
    assert len(first) == SERIES_INSTANCES + 2


def test_record_keys_and_positions() -> None:
    items = [i for i in _read() if isinstance(i, SourceRecord)]
    first = items[0]
    assert first.key == first.data["instance_id"]
    assert first.position.startswith("team.ics:")
    assert SERIES in first.position


def test_window_clips_at_both_edges() -> None:
    window = (
        dt.datetime(2026, 10, 26, 10, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
    )
    records = _records(_read(window=window))
    # The 26 October instance overlaps the start. The 2 November one starts at
    # the exclusive end, so it is out.
    assert [r["instance_id"] for r in records] == [f"{SERIES}/20261026T100000Z"]


def test_window_keeps_instances_inside() -> None:
    window = (
        dt.datetime(2026, 10, 20, tzinfo=UTC),
        dt.datetime(2026, 11, 3, tzinfo=UTC),
    )
    records = _records(_read(window=window))
    assert [r["start"].date() for r in records] == [
        dt.date(2026, 10, 26),
        dt.date(2026, 11, 2),
    ]


def test_default_window_is_sixty_days_around_now() -> None:
    records = _records(_read(window=None))
    timed = [r["start"] for r in records if not r["all_day"]]
    all_day = [r["start"] for r in records if r["all_day"]]
    # now is 2026-11-01, so the window runs from 2026-09-02 to 2026-12-31 (UTC).
    assert len(records) == 13
    assert min(timed) == dt.datetime(2026, 10, 5, 10, 0, tzinfo=LONDON)
    assert max(timed) == dt.datetime(2026, 12, 14, 10, 0, tzinfo=LONDON)
    assert all_day == [dt.date(2026, 12, 23)]


def test_all_day_window_edge_uses_system_zone() -> None:
    window = (
        dt.datetime(2026, 12, 20, tzinfo=UTC),
        dt.datetime(2026, 12, 23, 3, tzinfo=UTC),
    )
    london = _records(_read(window=window, timezone="Europe/London"))
    new_york = _records(_read(window=window, timezone="America/New_York"))
    # Midnight of 23 December is 00:00Z in London but 05:00Z in New York.
    assert "leave-carol@example.com" in {r["uid"] for r in london}
    assert "leave-carol@example.com" not in {r["uid"] for r in new_york}


def test_crlf_and_bom_read_the_same(tmp_path: Path) -> None:
    text = (FIXTURES / "team.ics").read_text(encoding="utf-8")
    crlf = "\ufeff" + text.replace("\n", "\r\n")
    (tmp_path / "team.ics").write_bytes(crlf.encode("utf-8"))
    plain = _records(_read())
    windows = _records(_read(base_dir=tmp_path))
    assert windows == plain


def test_rdate_forms_and_folded_exdates(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "rdates.ics",
        "BEGIN:VEVENT\nUID:mixed\nDTSTART;TZID=Europe/London:20261102T100000\n"
        "DTEND;TZID=Europe/London:20261102T110000\nRRULE:FREQ=WEEKLY;COUNT=2\n"
        "RDATE:20261104T150000Z\n"
        "RDATE;VALUE=PERIOD:20261105T090000Z/20261105T123000Z\n"
        "RDATE;TZID=Europe/London:20261106T100000,20261107T100000\n"
        "EXDATE;TZID=Europe/London:20261109T100000,\n 20261107T100000\n"
        "END:VEVENT\n",
    )
    records = _records(_read(base_dir=tmp_path, path=name))
    assert [r["recurrence_id"] for r in records] == [
        "20261102T100000Z",
        "20261104T150000Z",
        "20261105T090000Z",
        "20261106T100000Z",
    ]
    assert [r["duration_hours"] for r in records] == [
        Decimal("1.00"),
        Decimal("1.00"),
        Decimal("3.50"),
        Decimal("1.00"),
    ]
    # The UTC RDATE is reported in the zone of its series.
    assert records[1]["start"] == dt.datetime(2026, 11, 4, 15, 0, tzinfo=LONDON)
    assert records[1]["timezone"] == "Europe/London"


def test_overrides_without_master(tmp_path: Path) -> None:
    override = (
        "BEGIN:VEVENT\nUID:orphan\nRECURRENCE-ID:2026110{0}T110000Z\n"
        "DTSTART:2026110{0}T120000Z\nDTEND:2026110{0}T130000Z\nEND:VEVENT\n"
    )
    name = _write(tmp_path, "orphans.ics", override.format(3) + override.format(2))
    records = _records(_read(base_dir=tmp_path, path=name))
    assert [r["instance_id"] for r in records] == [
        "orphan/20261102T110000Z",
        "orphan/20261103T110000Z",
    ]
    assert all(r["is_recurring"] for r in records)
    assert records[0]["start"] == dt.datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


# --- time zones ----------------------------------------------------------


def test_floating_time_takes_system_zone(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "floating.ics",
        "BEGIN:VEVENT\nUID:standup\nDTSTART:20261020T090000\nDTEND:20261020T091500\n"
        "RRULE:FREQ=WEEKLY;UNTIL=20261110T090000\nEND:VEVENT\n",
    )
    chicago = _records(_read(base_dir=tmp_path, path=name, timezone="America/Chicago"))
    assert [r["start"].hour for r in chicago] == [9, 9, 9, 9]
    assert chicago[0]["start"].utcoffset() == dt.timedelta(hours=-5)
    assert chicago[-1]["start"].utcoffset() == dt.timedelta(hours=-6)
    assert chicago[0]["timezone"] == "America/Chicago"
    assert chicago[0]["duration_hours"] == Decimal("0.25")
    default = _records(_read(base_dir=tmp_path, path=name))
    assert default[0]["start"] == dt.datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
    assert default[0]["timezone"] == "UTC"


def test_utc_time_reported_in_system_zone(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "utc.ics",
        "BEGIN:VEVENT\nUID:late\nDTSTART:20260701T233000Z\nDTEND:20260702T000000Z\n"
        "END:VEVENT\n",
    )
    window = (dt.datetime(2026, 6, 1, tzinfo=UTC), dt.datetime(2026, 8, 1, tzinfo=UTC))
    items = _read(base_dir=tmp_path, window=window, path=name, timezone="Europe/London")
    record = _records(items)[0]
    assert record["start"] == dt.datetime(2026, 7, 2, 0, 30, tzinfo=LONDON)
    assert record["date"] == dt.date(2026, 7, 2)
    assert record["timezone"] == "Europe/London"
    assert record["instance_id"] == "late/20260701T233000Z"


def test_windows_zone_name_maps_to_iana(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "exchange.ics",
        "BEGIN:VTIMEZONE\nTZID:W. Europe Standard Time\nBEGIN:STANDARD\n"
        "DTSTART:16010101T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\nEND:STANDARD\n"
        "BEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:+0100\n"
        "TZOFFSETTO:+0200\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\n"
        "END:DAYLIGHT\nEND:VTIMEZONE\n"
        "BEGIN:VEVENT\nUID:exchange-1\n"
        "DTSTART;TZID=W. Europe Standard Time:20261102T100000\n"
        "DTEND;TZID=W. Europe Standard Time:20261102T110000\nEND:VEVENT\n",
    )
    record = _records(_read(base_dir=tmp_path, path=name))[0]
    assert record["timezone"] == "Europe/Berlin"
    assert record["start"].utcoffset() == dt.timedelta(hours=1)


def test_duration_is_elapsed_time_across_dst(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "night.ics",
        "BEGIN:VEVENT\nUID:night-shift\n"
        "DTSTART;TZID=Europe/London:20261025T000000\n"
        "DTEND;TZID=Europe/London:20261025T040000\nEND:VEVENT\n",
    )
    record = _records(_read(base_dir=tmp_path, path=name))[0]
    # The clocks go back at 02:00 BST, so 00:00 to 04:00 local lasts five hours.
    assert record["duration_hours"] == Decimal("5.00")


def test_all_day_until_in_utc_uses_system_zone(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "bins.ics",
        "BEGIN:VEVENT\nUID:bins\nDTSTART;VALUE=DATE:20260903\n"
        "DTEND;VALUE=DATE:20260904\n"
        "RRULE:FREQ=WEEKLY;UNTIL=20260916T230000Z;BYDAY=TH\nEND:VEVENT\n",
    )
    london = _records(_read(base_dir=tmp_path, path=name, timezone="Europe/London"))
    utc = _records(_read(base_dir=tmp_path, path=name))
    # 23:00Z on 16 September is midnight of 17 September in London (BST).
    assert [r["start"].day for r in london] == [3, 10, 17]
    assert [r["start"].day for r in utc] == [3, 10]


# --- broken input ----------------------------------------------------------


def test_broken_events_do_not_stop_good_ones() -> None:
    items = _read(path="broken.ics")
    records = _records(items)
    assert [r["uid"] for r in records] == ["good-1@example.com", "good-2@example.com"]
    errors = {error.key: error for error in _errors(items)}
    assert sorted(errors) == [
        "bad-date@example.com",
        "no-freq@example.com",
        "no-start@example.com",
        "only-uid@example.com",
        "truncated@example.com",
        "unknown-zone@example.com",
    ]
    for error in errors.values():
        assert error.code == "ics_invalid_event"
        assert error.key in error.position
        assert error.raw.startswith("BEGIN:VEVENT")


def test_broken_event_messages_name_problem() -> None:
    errors = {error.key: error for error in _errors(_read(path="broken.ics"))}
    assert "no DTSTART" in errors["no-start@example.com"].message
    assert "'20261345T090000Z'" in errors["bad-date@example.com"].message
    assert "'Mars/Olympus_Mons'" in errors["unknown-zone@example.com"].message
    assert "cannot be expanded" in errors["no-freq@example.com"].message
    assert "no DTSTART" in errors["only-uid@example.com"].message
    assert "END:VEVENT" in errors["truncated@example.com"].message
    assert errors["no-start@example.com"].position == (
        "broken.ics:19 (UID no-start@example.com)"
    )


def test_unused_broken_time_zone_is_ignored() -> None:
    errors = _errors(_read(path="broken.ics"))
    assert not any("Old/Unused" in error.message for error in errors)


def test_broken_override_hides_replaced_instance(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "override.ics",
        "BEGIN:VEVENT\nUID:s\nDTSTART;TZID=Europe/London:20261005T100000\n"
        "DTEND;TZID=Europe/London:20261005T110000\nRRULE:FREQ=WEEKLY;COUNT=3\n"
        "END:VEVENT\n"
        "BEGIN:VEVENT\nUID:s\nRECURRENCE-ID;TZID=Europe/London:20261012T100000\n"
        "DTSTART;TZID=Europe/London:2026101\nEND:VEVENT\n",
    )
    items = _read(base_dir=tmp_path, path=name)
    ids = [r["instance_id"] for r in _records(items)]
    assert ids == ["s/20261005T090000Z", "s/20261019T090000Z"]
    errors = _errors(items)
    assert len(errors) == 1
    assert "left out" in errors[0].message


def test_duplicate_master_reported(tmp_path: Path) -> None:
    event = "BEGIN:VEVENT\nUID:dup\nDTSTART:20261102T100000Z\nSUMMARY:{}\nEND:VEVENT\n"
    name = _write(tmp_path, "dup.ics", event.format("first") + event.format("second"))
    items = _read(base_dir=tmp_path, path=name)
    assert [r["summary"] for r in _records(items)] == ["first"]
    errors = _errors(items)
    assert [error.code for error in errors] == ["ics_duplicate_event"]
    assert "line 9" in errors[0].message


def test_higher_sequence_replaces_older_copy(tmp_path: Path) -> None:
    event = (
        "BEGIN:VEVENT\nUID:rev\nDTSTART:20261102T100000Z\nSEQUENCE:{}\n"
        "SUMMARY:{}\nEND:VEVENT\n"
    )
    name = _write(tmp_path, "rev.ics", event.format(0, "old") + event.format(2, "new"))
    items = _read(base_dir=tmp_path, path=name)
    assert [r["summary"] for r in _records(items)] == ["new"]
    assert _errors(items) == []


def test_runaway_rule_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ics, "MAX_INSTANCES_PER_SERIES", 50)
    name = _write(
        tmp_path,
        "runaway.ics",
        "BEGIN:VEVENT\nUID:tick\nDTSTART:20261102T000000Z\nRRULE:FREQ=MINUTELY\n"
        "END:VEVENT\nBEGIN:VEVENT\nUID:calm\nDTSTART:20261102T100000Z\nEND:VEVENT\n",
    )
    items = _read(base_dir=tmp_path, path=name)
    assert [r["uid"] for r in _records(items)] == ["calm"]
    assert "more than 50 instances" in _errors(items)[0].message


def test_invalid_encoding_keeps_events(tmp_path: Path) -> None:
    text = _write(
        tmp_path,
        "latin.ics",
        "BEGIN:VEVENT\nUID:cafe\nDTSTART:20261102T100000Z\nSUMMARY:Café\nEND:VEVENT\n",
    )
    data = (tmp_path / text).read_text(encoding="utf-8").encode("cp1252")
    (tmp_path / text).write_bytes(data)
    default = _read(base_dir=tmp_path, path=text)
    assert [error.code for error in _errors(default)] == ["ics_invalid_encoding"]
    assert _records(default)[0]["summary"] == "Caf\ufffd"
    declared = _read(base_dir=tmp_path, path=text, encoding="cp1252")
    assert _errors(declared) == []
    assert _records(declared)[0]["summary"] == "Café"


_HEAD = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//tests//EN\n"


def _event(uid: str, day: int) -> str:
    return (
        f"BEGIN:VEVENT\nUID:{uid}\nDTSTART:202611{day:02d}T100000Z\n"
        f"DTEND:202611{day:02d}T110000Z\nSUMMARY:{uid}\nEND:VEVENT\n"
    )


def _read_text(tmp_path: Path, text: str) -> list[SourceRecord | SourceError]:
    (tmp_path / "cut.ics").write_text(text, encoding="utf-8")
    return _read(base_dir=tmp_path, path="cut.ics")


def test_missing_end_vcalendar_is_truncation(tmp_path: Path) -> None:
    items = _read_text(tmp_path, _HEAD + _event("a", 2) + _event("b", 3))
    assert [r["uid"] for r in _records(items)] == ["a", "b"]
    errors = _errors(items)
    assert [error.code for error in errors] == ["ics_truncated"]
    assert errors[0].scope == "record"
    assert errors[0].position == "cut.ics:15"
    assert errors[0].message == (
        "the file ends at line 15 without END:VCALENDAR (BEGIN:VCALENDAR is at "
        "line 1), so it is probably cut off and events after line 15 may be "
        "missing; copy or export the whole calendar again"
    )


def test_cut_inside_event_reports_event_and_file(tmp_path: Path) -> None:
    items = _read_text(tmp_path, _HEAD + _event("a", 2) + "BEGIN:VEVENT\nUID:b\n")
    assert [r["uid"] for r in _records(items)] == ["a"]
    errors = {error.code: error for error in _errors(items)}
    assert sorted(errors) == ["ics_invalid_event", "ics_truncated"]
    assert errors["ics_truncated"].scope == "record"
    assert errors["ics_invalid_event"].key == "b"
    assert "END:VEVENT" in errors["ics_invalid_event"].message


def test_unclosed_calendar_before_next_one(tmp_path: Path) -> None:
    text = _HEAD + _event("a", 2) + _HEAD + _event("b", 3) + "END:VCALENDAR\n"
    items = _read_text(tmp_path, text)
    assert [r["uid"] for r in _records(items)] == ["a", "b"]
    errors = _errors(items)
    assert [error.code for error in errors] == ["ics_truncated"]
    assert errors[0].scope == "record"
    assert errors[0].position == "cut.ics:10"
    assert "BEGIN:VCALENDAR at line 1 has no END:VCALENDAR" in errors[0].message


def test_end_without_begin_is_unbalanced(tmp_path: Path) -> None:
    # A misspelt BEGIN line: the event's lines are not read as an event.
    broken = _event("b", 3).replace("BEGIN:VEVENT", "BEGIN:VEVNT")
    text = _HEAD + _event("a", 2) + broken + _event("c", 4) + "END:VCALENDAR\n"
    items = _read_text(tmp_path, text)
    assert [r["uid"] for r in _records(items)] == ["a"]
    errors = _errors(items)
    assert [error.code for error in errors] == ["ics_unbalanced"] * 2
    assert all(error.scope == "record" for error in errors)
    assert errors[0].message.startswith(
        "END:VEVENT at line 15 has no matching BEGIN:VEVENT"
    )
    assert errors[1].message.startswith(
        "BEGIN:VEVNT at line 10 has no END:VEVNT before END:VCALENDAR at line 22"
    )


def test_unclosed_component_hides_events(tmp_path: Path) -> None:
    text = _HEAD + "BEGIN:VTODO\nUID:t\n" + _event("a", 2) + "END:VCALENDAR\n"
    items = _read_text(tmp_path, text)
    assert _records(items) == []
    errors = _errors(items)
    assert [error.code for error in errors] == ["ics_unbalanced"]
    assert errors[0].position == "cut.ics:4"
    assert "the events between those lines were not read" in errors[0].message


def test_balanced_nested_components_report_nothing(tmp_path: Path) -> None:
    alarm = "BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT5M\nEND:VALARM\n"
    todo = "BEGIN:VTODO\nUID:t\n" + alarm + "END:VTODO\n"
    event = _event("a", 2).replace("END:VEVENT", alarm + "END:VEVENT")
    items = _read_text(tmp_path, _HEAD + todo + event + "END:VCALENDAR\n")
    assert _errors(items) == []
    assert [r["uid"] for r in _records(items)] == ["a"]


def test_not_a_calendar_is_unreadable() -> None:
    items = _read(path="not_a_calendar.ics")
    assert len(items) == 1
    assert isinstance(items[0], SourceError)
    assert items[0].code == "ics_unreadable"
    assert "not_a_calendar.ics" in items[0].message


def test_missing_file_raises_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="missing.ics"):
        _read(path="missing.ics")


def test_unknown_stream_raises_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="'rows'"):
        _read("rows")


def test_invalid_timezone_setting_raises() -> None:
    with pytest.raises(SourceUnavailable, match="'Mars/Base'"):
        _read(timezone="Mars/Base")


def test_event_without_uid_gets_stable_id(tmp_path: Path) -> None:
    name = _write(
        tmp_path,
        "nouid.ics",
        "BEGIN:VEVENT\nDTSTART:20261102T100000Z\nSUMMARY:Anonymous\nEND:VEVENT\n",
    )
    first = _records(_read(base_dir=tmp_path, path=name))
    second = _records(_read(base_dir=tmp_path, path=name))
    assert first[0]["uid"].startswith("no-uid-")
    assert first[0]["instance_id"] == second[0]["instance_id"]


# --- catalog conformance -------------------------------------------------------


def _assert_catalog_shape(records: list[dict[str, Any]], stream: str) -> None:
    fields = KINDS["ics"].streams[stream].fields
    assert fields is not None
    for record in records:
        assert set(record) == set(fields)
        assert isinstance(record["categories"], list)
        assert all(isinstance(name, str) for name in record["categories"])
        assert isinstance(record["attendees"], list)
        assert isinstance(record["duration_hours"], Decimal)
        assert isinstance(record["sequence"], int)
        if record["all_day"]:
            assert type(record["start"]) is dt.date
            assert record["duration_hours"] == 0
        else:
            assert record["start"].tzinfo is not None
            assert record["end"].tzinfo is not None
            assert record["date"] == record["start"].date()


@pytest.mark.parametrize("stream", ["events", "attendance"])
@pytest.mark.parametrize("path", ["team.ics", "broken.ics"])
def test_fixture_records_match_catalog(stream: str, path: str) -> None:
    records = _records(_read(stream, path=path))
    assert records
    _assert_catalog_shape(records, stream)


# --- real calendars --------------------------------------------------------


@dataclass(frozen=True)
class RealCalendar:
    """One real calendar: syncplan's figures for 2000-01-01 to 2031-01-01 UTC."""

    name: str
    timezone: str | None
    instances: int
    timed_hours: str
    all_day: int
    error_codes: tuple[str, ...] = ()


_RRE = "python-recurring-ical-events/recurring_ical_events/test/calendars/"
_ICALEVENTS = "icalevents/test/test_data/"

REAL_CALENDARS = [
    # These agree with the reference figures (icalendar 7.3.2 with
    # recurring-ical-events 3.8.2 over the same window).
    RealCalendar(_RRE + "daylight_saving_time.ics", None, 4016, "13232.00", 3),
    RealCalendar(_RRE + "issue_48_dst.ics", None, 7438, "1859.50", 0),
    RealCalendar(_RRE + "issue_62_moved_event.ics", None, 110, "0.00", 0),
    RealCalendar(_RRE + "issue_28_rrule_with_UTC_endinginZ.ics", None, 24, "0.00", 24),
    # Read in the calendar's own zone, the file gives 26 where the reference has 24.
    # Both series end with UNTIL=...T230000Z, which Exchange writes as local
    # midnight of the last day in UTC (the VTIMEZONE is GMT Standard Time, that
    # is Europe/London, on BST). RFC 5545 makes UNTIL inclusive, so 17 and 24
    # September 2020 are the last instances. The reference library cuts the
    # UTC UNTIL to its UTC date and so drops them.
    RealCalendar(
        _RRE + "issue_28_rrule_with_UTC_endinginZ.ics", "Europe/London", 26, "0.00", 26
    ),
    RealCalendar(_RRE + "each_week_but_two_deleted.ics", None, 6, "3.00", 0),
    RealCalendar(_RRE + "recurring_events_moved.ics", None, 7, "7.00", 0),
    RealCalendar(_ICALEVENTS + "multi_exdate_same_line_ms.ics", None, 5, "2.50", 0),
    RealCalendar(_ICALEVENTS + "multi_attendee_response.ics", None, 1, "1.00", 0),
    RealCalendar(_ICALEVENTS + "recurrenceid_google.ics", None, 4, "4.00", 0),
    # The reference parser rejects the whole file, because the unused historical
    # Europe/Berlin offset +5328 is not a valid UTC offset. syncplan uses the
    # IANA zone for IANA TZIDs without parsing their VTIMEZONE, so all four
    # events arrive and there is nothing to report: 1 + 1 + 16 yearly + 21
    # weekly instances (32 Mondays less 11 EXDATEs).
    RealCalendar(_ICALEVENTS + "icloud.ics", None, 39, "44.75", 0),
    RealCalendar(
        "golang-ical/testdata/issue52/issue52_notworking.ics", None, 1, "1.50", 0
    ),
    # The reference expansion fails on the trailing VEVENT that has only a UID.
    # syncplan reports that VEVENT and the six description lines that lost their
    # folding, and keeps the meeting. Its times are floating: in UTC the second
    # instance (10:00Z on 7 October) falls after UNTIL=20241007T080000Z.
    RealCalendar(
        "ics-parser/tests/ical/issue-343.ics",
        None,
        1,
        "0.50",
        0,
        ("ics_invalid_line", "ics_invalid_event"),
    ),
    # Read in Europe/Berlin (the file's W. Europe Standard Time), 10:00 local
    # on 7 October is exactly UNTIL, so both fortnightly instances arrive.
    RealCalendar(
        "ics-parser/tests/ical/issue-343.ics",
        "Europe/Berlin",
        2,
        "1.00",
        0,
        ("ics_invalid_line", "ics_invalid_event"),
    ),
    RealCalendar("ical.js/samples/recur_instances.ics", None, 221, "113.50", 0),
]

REAL_WINDOW = (dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2031, 1, 1, tzinfo=UTC))


def _read_real(calendar: RealCalendar, stream: str) -> list[SourceRecord | SourceError]:
    if not REALDATA.is_dir():
        pytest.skip(f"real calendars are not available at {REALDATA}")
    settings: dict[str, Any] = {"path": calendar.name}
    if calendar.timezone:
        settings["timezone"] = calendar.timezone
    return _read(stream, base_dir=REALDATA, window=REAL_WINDOW, **settings)


def _real_calendar(file_name: str, timezone: str | None = None) -> RealCalendar:
    for calendar in REAL_CALENDARS:
        if Path(calendar.name).name == file_name and calendar.timezone == timezone:
            return calendar
    raise LookupError(f"no real calendar {file_name!r} with timezone {timezone!r}")


def _real_id(calendar: RealCalendar) -> str:
    name = Path(calendar.name).name
    return f"{name}@{calendar.timezone}" if calendar.timezone else name


@pytest.mark.parametrize("calendar", REAL_CALENDARS, ids=_real_id)
def test_real_calendar_figures(calendar: RealCalendar) -> None:
    items = _read_real(calendar, "events")
    records = _records(items)
    timed = [r for r in records if not r["all_day"]]
    assert len(records) == calendar.instances
    assert sum((r["duration_hours"] for r in timed), Decimal(0)) == Decimal(
        calendar.timed_hours
    )
    assert len(records) - len(timed) == calendar.all_day
    assert tuple(error.code for error in _errors(items)) == calendar.error_codes
    ids = [r["instance_id"] for r in records]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("calendar", REAL_CALENDARS, ids=_real_id)
def test_real_calendar_matches_catalog(calendar: RealCalendar) -> None:
    for stream in ("events", "attendance"):
        _assert_catalog_shape(_records(_read_real(calendar, stream)), stream)


def test_real_broken_calendar_keeps_meeting() -> None:
    calendar = _real_calendar("issue-343.ics", "Europe/Berlin")
    items = _read_real(calendar, "attendance")
    rows = _records(items)
    assert {row["summary"] for row in rows} == {"Team Meeting"}
    assert {row["attendee_email"] for row in rows} == {
        "organizer@example.com",
        "attendee1@example.com",
        "attendee2@example.com",
        "attendee3@example.com",
    }
    errors = {error.code: error for error in _errors(items)}
    assert "UniqueIDValueHere" in errors["ics_invalid_event"].message
    assert errors["ics_invalid_event"].position.endswith(":69 (UID UniqueIDValueHere)")


def test_real_declined_attendee_with_comma() -> None:
    calendar = _real_calendar("multi_attendee_response.ics")
    rows = _records(_read_real(calendar, "attendance"))
    declined = [row for row in rows if row["declined"]]
    assert [row["attendee_name"] for row in declined] == ["Eigenmann, Martin"]
    assert declined[0]["location"] == "Talstrasse 4, 9000 St.Gallen, CH"


def test_real_large_series_expands_fully() -> None:
    calendar = _real_calendar("issue_48_dst.ics")
    records = _records(_read_real(calendar, "events"))
    assert len(records) == 7438
