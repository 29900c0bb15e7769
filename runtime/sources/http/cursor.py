"""The incremental cursor of an ``http`` stream: the stored value in, the highest out.

``CursorTracker`` follows one record field (``cursor.field``). The value stored
by the last run goes into the first request as ``cursor.param`` (or
``cursor.initial`` on the first run), rendered by ``cursor.format``:

``raw``
    The stored text as it is (the default).
``iso``
    ISO 8601 in UTC with a ``Z``, such as ``2026-03-09T20:29:45.981000Z``.
``date``
    The UTC date, such as ``2026-03-09``.
``epoch_ms`` / ``epoch_seconds``
    Milliseconds or seconds since 1970-01-01T00:00:00Z.
a strftime pattern
    Any pattern containing ``%``, applied to the UTC time.

Every format but ``raw`` reads the stored value as a time. ISO 8601 text
without an offset is UTC. A number is epoch milliseconds when its integer part
has 12 or more digits, and epoch seconds otherwise.

Values compare as numbers when they are numbers or numeric text (ClickUp's
``"1779199558581"``), as instants when they are ISO 8601 text, and as text
otherwise. Values of different kinds are not compared. A record whose value is
lower than the stored cursor is skipped, and equal values are kept, because
an API filter such as ``updated_since`` usually includes the boundary. The
highest value seen is returned by ``new_value`` as the text it had in the
record.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

from runtime.sources.http.selectors import Selector
from runtime.sources.http.settings import CursorSettings

__all__ = ["CursorTracker", "cursor_key", "parse_instant"]

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Epoch milliseconds of any date after 2001-09-09 have 13 digits, and epoch
# seconds have 10 until the year 2286, so 12 digits or more means milliseconds.
_MILLISECOND_DIGITS = 12

CursorKey = tuple[int, Any]


def parse_instant(text: str) -> dt.datetime | None:
    """Read ISO 8601 text as an aware datetime (UTC when it has no offset)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def cursor_key(value: Any) -> CursorKey | None:
    """Return a sort key for a cursor value, or None when it cannot be one."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | decimal.Decimal):
        return 0, decimal.Decimal(value)
    if isinstance(value, float):
        return 0, decimal.Decimal(str(value))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return 0, decimal.Decimal(text)
    moment = parse_instant(text)
    if moment is not None:
        return 1, moment
    return 2, text


def _instant_of(text: str) -> dt.datetime | None:
    stripped = text.strip()
    if _NUMBER.fullmatch(stripped):
        number = decimal.Decimal(stripped)
        digits = len(stripped.lstrip("-").split(".")[0])
        unit = "milliseconds" if digits >= _MILLISECOND_DIGITS else "seconds"
        try:
            return _EPOCH + dt.timedelta(**{unit: float(number)})
        except OverflowError:
            return None
    return parse_instant(stripped)


def render_cursor(text: str, cursor_format: str) -> str:
    """Render a stored cursor for a request; raise ValueError if it is no time."""
    if cursor_format == "raw":
        return text
    moment = _instant_of(text)
    if moment is None:
        raise ValueError(
            f"the stored cursor {text!r} is not an ISO 8601 time or epoch number, so"
            f" it cannot be sent in format {cursor_format!r}; set `cursor.format` to"
            " raw, or reset the flow's cursor"
        )
    utc = moment.astimezone(dt.UTC)
    if cursor_format == "iso":
        return utc.isoformat().replace("+00:00", "Z")
    if cursor_format == "date":
        return utc.date().isoformat()
    if cursor_format == "epoch_ms":
        return str((utc - _EPOCH) // dt.timedelta(milliseconds=1))
    if cursor_format == "epoch_seconds":
        return str((utc - _EPOCH) // dt.timedelta(seconds=1))
    return utc.strftime(cursor_format)


class CursorTracker:
    """Follows the cursor field over the records of one read."""

    def __init__(self, settings: CursorSettings | None, field: Selector | None,
                 stored: str | None) -> None:
        self.settings = settings
        self.field = field
        self.stored = stored
        self._stored_key = cursor_key(stored) if stored is not None else None
        self._highest: tuple[CursorKey, str] | None = None
        self.observed = 0
        self.missing = 0
        self.skipped = 0

    @property
    def active(self) -> bool:
        return self.field is not None

    def request_value(self) -> str | None:
        """Return the value to send as ``cursor.param``, or None to send none."""
        if self.settings is None or self.settings.param is None:
            return None
        text = self.stored if self.stored is not None else self.settings.initial
        if text is None:
            return None
        return render_cursor(text, self.settings.format)

    def keep(self, record: dict[str, Any]) -> bool:
        """Track the cursor value of ``record``; False when it is below the stored one.

        A record without a usable value is kept and counted in ``missing``.
        """
        if self.field is None:
            return True
        self.observed += 1
        found = self.field.lookup(record)
        key = cursor_key(found.value) if found.found else None
        if key is None:
            self.missing += 1
            return True
        stored = self._stored_key
        if stored is not None and stored[0] == key[0] and key[1] < stored[1]:
            self.skipped += 1
            return False
        highest = self._highest
        if highest is None or (highest[0][0] == key[0] and key[1] > highest[0][1]):
            self._highest = key, str(found.value)
        return True

    def new_value(self) -> str | None:
        """Return the highest value seen unless the stored one is as high, else None."""
        if self._highest is None:
            return None
        key, text = self._highest
        stored = self._stored_key
        # A stored value of another kind than the records' (the API changed its
        # format) is replaced rather than kept forever.
        if stored is not None and stored[0] == key[0] and key[1] <= stored[1]:
            return None
        return text
