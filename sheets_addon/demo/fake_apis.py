"""Both fake APIs of the closed-won example, with credentials and sample deals.

``FakeApis`` starts a ``FakeCrm`` and a ``FakeAsana`` on loopback, each on its
own ephemeral port, with fresh random credentials. ``environment()`` returns
the variables the example spec refers to (base URLs, OAuth client, tokens,
workspace), so a run can be pointed at the fakes without a secret in any file.
"""

from __future__ import annotations

import secrets
from types import TracebackType
from typing import Any, Self

from sheets_addon.demo.fake_asana import FakeAsana
from sheets_addon.demo.fake_crm import FakeCrm

__all__ = ["SAMPLE_DEALS", "FakeApis"]

# Deals of the demo: five won (one with a due date before its start, which the
# project tool rejects), one open and one lost.
SAMPLE_DEALS: tuple[dict[str, Any], ...] = (
    {"dealname": "Website rebuild", "client_name": "Acme Retail", "amount": "48000.00",
     "dealstage": "closedwon", "description": "New storefront and CMS migration.",
     "project_start": "2026-02-02", "project_due": "2026-05-29",
     "owner_email": "Priya.Shah@agency.example"},
    {"dealname": "Brand refresh", "client_name": "Northwind Foods",
     "amount": "18500.00", "dealstage": "closedwon",
     "description": "Logo, palette and packaging guidelines.",
     "project_start": "2026-02-09", "project_due": "2026-03-20",
     "owner_email": "tom.baker@agency.example"},
    {"dealname": "SEO retainer Q1", "client_name": "Globex", "amount": "9000.00",
     "dealstage": "closedwon", "description": "Monthly audits and content plan.",
     "project_start": "2026-01-05", "project_due": "2026-03-31",
     "owner_email": "priya.shah@agency.example"},
    {"dealname": "App discovery", "client_name": "Initech", "amount": "12000.00",
     "dealstage": "closedwon", "description": "Two-week discovery sprint.",
     "project_start": "2026-03-02", "project_due": "2026-03-13",
     "owner_email": "sam.lee@agency.example"},
    {"dealname": "Campaign launch", "client_name": "Umbrella Health",
     "amount": "22000.00", "dealstage": "closedwon",
     "description": "Launch campaign; the dates in the CRM are swapped.",
     "project_start": "2026-04-30", "project_due": "2026-04-01",
     "owner_email": "tom.baker@agency.example"},
    {"dealname": "Analytics setup", "client_name": "Hooli", "amount": "7000.00",
     "dealstage": "presentationscheduled", "project_start": "2026-03-01",
     "project_due": "2026-03-31", "owner_email": "sam.lee@agency.example"},
    {"dealname": "Intranet", "client_name": "Vandelay", "amount": "30000.00",
     "dealstage": "closedlost", "project_start": "2026-02-01",
     "project_due": "2026-06-30", "owner_email": "priya.shah@agency.example"},
)


class FakeApis:
    """A fake CRM and a fake project tool on loopback, as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.crm_client_id = "demo-" + secrets.token_hex(4)
        self.crm_client_secret = secrets.token_hex(16)
        self.crm_refresh_token = secrets.token_hex(16)
        self.asana_token = secrets.token_hex(16)
        self.crm = FakeCrm(host, client_id=self.crm_client_id,
                           client_secret=self.crm_client_secret,
                           refresh_token=self.crm_refresh_token)
        self.asana = FakeAsana(host, tokens=(self.asana_token,))

    def start(self) -> Self:
        self.crm.start()
        try:
            self.asana.start()
        except BaseException:
            self.crm.stop()
            raise
        return self

    def stop(self) -> None:
        self.asana.stop()
        self.crm.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def add_sample_deals(self) -> list[str]:
        """Add ``SAMPLE_DEALS`` to the CRM; return their ids in order."""
        return [self.crm.add_deal(**deal) for deal in SAMPLE_DEALS]

    def environment(self) -> dict[str, str]:
        """Return the environment variables the closed-won spec refers to."""
        return {
            "CRM_BASE_URL": self.crm.url,
            "CRM_CLIENT_ID": self.crm_client_id,
            "CRM_CLIENT_SECRET": self.crm_client_secret,
            "CRM_REFRESH_TOKEN": self.crm_refresh_token,
            "ASANA_BASE_URL": self.asana.api_url,
            "ASANA_TOKEN": self.asana_token,
            "ASANA_WORKSPACE": self.asana.workspace,
        }
