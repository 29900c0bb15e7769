"""A local Google Sheets API v4 emulator for tests and benchmarks.

Start one on loopback and point gspread at it::

    from sheets_addon.emulator import SheetsEmulator

    with SheetsEmulator() as emulator:
        client = emulator.gspread_client()
        spreadsheet = client.create("Budget")
        spreadsheet.sheet1.update([["a", 1]], "A1")
        assert emulator.counts_by_kind()["values.update"] == 1

The gspread client sends through :class:`EmulatorSession`, which redirects
``sheets.googleapis.com`` and ``www.googleapis.com`` to the emulator and raises
:class:`BlockedRequestError` for any other host.  See ``docs/sheets-emulator.md``
for the supported endpoints, fault injection and the request log.
"""

from .errors import ApiError
from .faults import Fault
from .requestlog import RequestLog, RequestRecord
from .server import SheetsEmulator, running_emulator
from .transport import BlockedRequestError, EmulatorSession, LoopbackAdapter

__all__ = [
    "ApiError",
    "BlockedRequestError",
    "EmulatorSession",
    "Fault",
    "LoopbackAdapter",
    "RequestLog",
    "RequestRecord",
    "SheetsEmulator",
    "running_emulator",
]
