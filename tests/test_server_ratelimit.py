"""Rate limits of the backend: one bucket per identity, per failing address, per webhook.

Every backend here refills one token per 100 s, so no bucket refills while a
test runs and the counts below are exact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sheets_addon.server import create_app
from support import LiveServer, open_gate, server_env, write_server_project
from support.google_tokens import TokenIssuer

SECRETS = server_env()
HOOK_SECRET = SECRETS["SYNCPLAN_TEST_HOOK_SECRET"]
BURST = 3
SLOW_REFILL = 0.01  # tokens per second


class Limited:
    """A live backend with a small burst, and the state file to inspect."""

    def __init__(self, server: LiveServer, backend: Any, root: Path) -> None:
        self.server = server
        self.backend = backend
        self.root = root

    def new_key(self, name: str) -> str:
        _record, key = self.backend.store.create_api_key(name)
        return key

    def call(self, method: str, path: str, *, key: str | None = None,
             token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["X-Api-Key"] = key
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.server.url(path), headers=headers,
                                timeout=10, **kwargs)

    def hook(self, body: bytes, secret: str | None = HOOK_SECRET
             ) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Signature"] = hmac.new(secret.encode(), body,
                                              hashlib.sha256).hexdigest()
        return requests.post(self.server.url("/api/v1/hooks/hooks"), data=body,
                             headers=headers, timeout=10)

    def jobs(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.root / ".syncplan" / "state.db") as db:
            return db.execute("SELECT flow, trigger FROM jobs ORDER BY seq").fetchall()

    def event_ids(self) -> list[str]:
        with sqlite3.connect(self.root / ".syncplan" / "state.db") as db:
            rows = db.execute("SELECT event_id FROM webhook_events ORDER BY event_id")
            return [row[0] for row in rows]


def start_limited(root: Path, **options: Any) -> tuple[LiveServer, Any]:
    app = create_app(root, rate_limit_burst=BURST, rate_limit_per_second=SLOW_REFILL,
                     poll_seconds=0.2, workers=1, **options)
    return LiveServer(app).start(), app.extensions["syncplan"]


@pytest.fixture()
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Limited]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    root = write_server_project(tmp_path / "project")
    server, backend = start_limited(root, dev_mode=True)
    try:
        yield Limited(server, backend, root)
    finally:
        server.stop()
        open_gate(root)
        backend.close(wait_seconds=5)


def wait_for_job_end(root: Path, run_id: str) -> None:
    """Wait by reading the state file, because polling the API spends tokens."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with sqlite3.connect(root / ".syncplan" / "state.db") as db:
            status = db.execute("SELECT status FROM jobs WHERE run_id = ?",
                                (run_id,)).fetchone()[0]
        if status not in ("queued", "running"):
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end within 20 s")


def hook_body(event_id: str) -> bytes:
    return json.dumps({"meta": {"id": event_id, "type": "deal.created"}}).encode()


# --- callers ----------------------------------------------------------------------


def test_api_keys_have_separate_buckets(limited: Limited) -> None:
    first = limited.new_key("first")
    second = limited.new_key("second")

    spent = [limited.call("GET", "/api/v1/flows", key=first).status_code
             for _ in range(BURST + 1)]
    other = limited.call("GET", "/api/v1/flows", key=second)

    assert spent == [200] * BURST + [429]
    assert other.status_code == 200


def test_rate_limited_start_queues_nothing(limited: Limited) -> None:
    key = limited.new_key("starter")
    for _ in range(BURST):
        assert limited.call("GET", "/api/v1/flows", key=key).status_code == 200

    response = limited.call("POST", "/api/v1/flows/rows/runs", key=key)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert limited.jobs() == []


def test_rate_limited_retry_queues_nothing(limited: Limited) -> None:
    key = limited.new_key("retrier")
    run_id = limited.call("POST", "/api/v1/flows/rows/runs",
                          key=key).json()["run"]["id"]
    wait_for_job_end(limited.root, run_id)
    for _ in range(BURST - 1):
        limited.call("GET", f"/api/v1/runs/{run_id}", key=key)

    response = limited.call("POST", f"/api/v1/runs/{run_id}/retry", key=key)

    assert response.status_code == 429
    assert limited.jobs() == [("rows", "api")]


def test_failed_logins_spend_address_bucket(limited: Limited) -> None:
    key = limited.new_key("genuine")
    wrong = key[:-2] + "xx"

    failures = [limited.call("GET", "/api/v1/flows", key=wrong).status_code
                for _ in range(BURST + 1)]
    genuine = limited.call("GET", "/api/v1/flows", key=key)

    assert failures == [401] * BURST + [429]
    assert genuine.status_code == 200  # its own bucket, not the address's


# --- Google identities ----------------------------------------------------------------


def test_google_users_are_rate_limited(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    root = write_server_project(tmp_path / "project")
    with TokenIssuer() as issuer:
        server, backend = start_limited(root, oauth_client_id=issuer.audience,
                                        certs_url=issuer.certs_url)
        setup = Limited(server, backend, root)
        ana = issuer.token("ana@agency.example")
        partner = issuer.token("lee@partner.example")
        try:
            for _ in range(BURST):
                assert setup.call("GET", "/api/v1/flows", token=ana).status_code \
                    == 200
            limited_start = setup.call("POST", "/api/v1/flows/rows/runs", token=ana)
            other_user = setup.call("POST", "/api/v1/flows/rows/runs",
                                    token=partner)
        finally:
            server.stop()
            open_gate(root)
            backend.close(wait_seconds=5)

    assert limited_start.status_code == 429
    assert limited_start.json()["error"]["code"] == "rate_limited"
    assert other_user.status_code == 202
    assert [flow for flow, _trigger in setup.jobs()] == ["rows"]


# --- webhooks -----------------------------------------------------------------------


def test_unsigned_hooks_leave_genuine_ones_alone(limited: Limited) -> None:
    junk = [limited.hook(hook_body(f"junk-{index}"), secret=None).status_code
            for index in range(BURST + 2)]
    forged = limited.hook(hook_body("forged"), secret="not-the-secret")

    genuine = limited.hook(hook_body("real-1"))

    assert junk == [401] * BURST + [429, 429]
    assert forged.status_code == 429
    assert genuine.status_code == 202
    assert limited.event_ids() == ["real-1"]
    assert limited.jobs() == [("hook_deals", "webhook")]


def test_signed_hooks_spend_system_bucket(limited: Limited) -> None:
    statuses = [limited.hook(hook_body(f"evt-{index}")).status_code
                for index in range(BURST + 1)]

    assert statuses == [202] * BURST + [429]
    assert limited.event_ids() == [f"evt-{index}" for index in range(BURST)]


def test_unknown_hook_system_spends_address_bucket(limited: Limited) -> None:
    statuses = [requests.post(limited.server.url("/api/v1/hooks/nope"), data=b"{}",
                              timeout=10).status_code for _ in range(BURST + 1)]

    assert statuses == [404] * BURST + [429]
    assert limited.hook(hook_body("after-probe")).status_code == 202
