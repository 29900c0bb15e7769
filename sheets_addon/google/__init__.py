"""Google Sheets as a destination: the backend factory the runtime finds by entry point.

A ``sheets`` system whose ``spreadsheet`` is a Google spreadsheet id or URL is
written here; a local ``.xlsx`` path stays with the runtime's own backend. The
factory resolves credentials before any request, so a missing or unreadable
credential fails the run with the setting to fix and nothing half written.

Credentials, in order:

1. the system's ``credentials`` setting, a reference such as
   ``${file:secrets/sa.json}`` (the file's JSON) or
   ``${env:GOOGLE_APPLICATION_CREDENTIALS}`` (a path to the file);
2. otherwise application default credentials (``google.auth.default``).

Only the spreadsheets scope is requested. For tests and demos,
``SYNCPLAN_SHEETS_EMULATOR=127.0.0.1:PORT`` sends every request to a local
Sheets API emulator instead and needs no credentials; it accepts loopback
addresses only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from compiler.plan import SystemPlan
from runtime.references import UnresolvedReference, resolve
from sheets_addon.google.backend import (
    CellLimitExceeded,
    GoogleSheetsBackend,
    SheetsBackendError,
)

SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
EMULATOR_VARIABLE = "SYNCPLAN_SHEETS_EMULATOR"

_URL = re.compile(r"https://docs\.google\.com/spreadsheets/d/([A-Za-z0-9_-]{20,})")
_ID = re.compile(r"^[A-Za-z0-9_-]{20,}$")


class CredentialsError(SheetsBackendError):
    """The credentials of a Google Sheets system cannot be loaded."""


def spreadsheet_id(value: str) -> str | None:
    """Return the spreadsheet id of an id or a docs.google.com URL, else None."""
    value = value.strip()
    match = _URL.match(value)
    if match:
        return match.group(1)
    if _ID.match(value) and not value.lower().endswith(".xlsx"):
        return value
    return None


def create_backend(system: SystemPlan, spreadsheet: str,
                   root: Path) -> GoogleSheetsBackend | None:
    """Return a backend for a Google spreadsheet, or None when it is not one."""
    sheet_id = spreadsheet_id(spreadsheet)
    if sheet_id is None:
        return None
    from sheets_addon.google.session import build_client, emulator_address

    emulator = os.environ.get(EMULATOR_VARIABLE)
    if emulator:
        try:
            emulator_address(emulator)
        except ValueError:
            raise SheetsBackendError(
                f"{EMULATOR_VARIABLE} is {emulator!r}, which is not a loopback"
                " address: the Sheets emulator must run on this machine. Set it to"
                " the emulator's address, such as 127.0.0.1:8085, or unset it to"
                " write to Google Sheets") from None
        client, ambiguity = build_client(system, sheet_id, emulator=emulator)
        hint = (f"requests go to the Sheets emulator at {emulator!r} that"
                f" {EMULATOR_VARIABLE} names; start the emulator at that address,"
                f" or unset {EMULATOR_VARIABLE} to write to Google Sheets")
        return GoogleSheetsBackend(client, sheet_id, ambiguity=ambiguity,
                                   unreachable_hint=hint)
    credentials = load_credentials(system, root)
    client, ambiguity = build_client(system, sheet_id, credentials=credentials)
    return GoogleSheetsBackend(client, sheet_id, ambiguity=ambiguity,
                               forbidden_hint=sharing_hint(credentials))


def sharing_hint(credentials: Any) -> str:
    """Return how to give the credentials' account access, for a 403 message.

    A service account is named by its e-mail address. Application default
    credentials are often a person's own login, which needs edit access and the
    spreadsheets scope, or a service account without a visible address.
    """
    email = getattr(credentials, "service_account_email", None)
    if isinstance(email, str) and "@" in email:
        return f"share the spreadsheet with {email} as an editor"
    return ("give the account of the application default credentials edit access to"
            " the spreadsheet, and check that they were created with the spreadsheets"
            " scope ('gcloud auth application-default login --scopes=...')")


def load_credentials(system: SystemPlan, root: Path) -> Any:
    """Load the system's credentials with the spreadsheets scope only."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.oauth2 import service_account

    reference = system.settings.get("credentials")
    if reference is None:
        try:
            credentials, _project = google.auth.default(scopes=list(SCOPES))
        except DefaultCredentialsError as exc:
            raise CredentialsError(
                f"system {system.id!r} names no 'credentials' and no application"
                " default credentials were found; set 'credentials:"
                " ${file:secrets/service-account.json}' or"
                " GOOGLE_APPLICATION_CREDENTIALS") from exc
        return credentials
    try:
        value = resolve(str(reference), root)
    except UnresolvedReference as exc:
        raise CredentialsError(
            f"system {system.id!r}: the 'credentials' setting {reference!r} cannot be"
            f" resolved: {exc}") from None
    try:
        if value.lstrip().startswith("{"):
            info = json.loads(value)
            return service_account.Credentials.from_service_account_info(
                info, scopes=list(SCOPES))
        path = Path(value)
        path = path if path.is_absolute() else root / path
        return service_account.Credentials.from_service_account_file(
            str(path), scopes=list(SCOPES))
    except (OSError, ValueError, KeyError) as exc:
        # The message names the reference, never the value it resolved to.
        raise CredentialsError(
            f"system {system.id!r}: the credentials of {reference!r} cannot be"
            f" loaded ({type(exc).__name__}); point it at a Google service account"
            " JSON key file") from None


__all__ = ["CellLimitExceeded", "CredentialsError", "GoogleSheetsBackend",
           "SheetsBackendError", "create_backend", "load_credentials",
           "sharing_hint", "spreadsheet_id"]
