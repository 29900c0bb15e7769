"""Webhook intake: HubSpot v3 and hex HMAC signatures, event ids processed once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from compiler import compile_project
from sheets_addon.server import create_app
from sheets_addon.server.store import Event, JobRequest, ServerStore
from sheets_addon.server.webhooks import decode_hubspot_uri, hubspot_v3_signature
from support import LiveServer, server_env, write_server_project

SECRETS = server_env()
HUBSPOT_SECRET = SECRETS["SYNCPLAN_TEST_HUBSPOT_SECRET"]
HOOK_SECRET = SECRETS["SYNCPLAN_TEST_HOOK_SECRET"]
PUBLIC_URL = "https://sync.agency.example"


class Hooks:
    def __init__(self, server: LiveServer, root: Path) -> None:
        self.server = server
        self.root = root

    def hubspot(self, body: bytes, *, timestamp: int | None = None,
                secret: str = HUBSPOT_SECRET, query: str = "") -> requests.Response:
        stamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
        path = "/api/v1/hooks/crm" + (f"?{query}" if query else "")
        signature = hubspot_v3_signature(secret, "POST", PUBLIC_URL + path, body,
                                         stamp)
        return requests.post(self.server.url(path), data=body, timeout=10, headers={
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": stamp})

    def hex_hook(self, body: bytes, *, secret: str = HOOK_SECRET,
                 prefix: str = "") -> requests.Response:
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return requests.post(self.server.url("/api/v1/hooks/hooks"), data=body,
                             timeout=10, headers={"Content-Type": "application/json",
                                                  "X-Signature": prefix + signature})

    def jobs(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.root / ".syncplan" / "state.db") as db:
            return db.execute("SELECT flow, trigger FROM jobs ORDER BY seq").fetchall()

    def events(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.root / ".syncplan" / "state.db") as db:
            return db.execute("SELECT system, event_id FROM webhook_events"
                              " ORDER BY system, event_id").fetchall()


@pytest.fixture()
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hooks]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    root = write_server_project(tmp_path / "project", gate=False)
    # A long poll keeps the queued jobs queued, so the tests see what was queued.
    app = create_app(root, dev_mode=True, public_url=PUBLIC_URL, poll_seconds=0.2,
                     workers=1)
    server = LiveServer(app).start()
    try:
        yield Hooks(server, root)
    finally:
        server.stop()
        app.extensions["syncplan"].close(wait_seconds=5)


def hubspot_events(*events: tuple[int, str]) -> bytes:
    return json.dumps([{"eventId": event_id, "subscriptionId": 7, "portalId": 62515,
                        "occurredAt": 1564113600000, "subscriptionType": kind,
                        "attemptNumber": 0, "objectId": 123}
                       for event_id, kind in events]).encode()


# --- HubSpot v3 ------------------------------------------------------------------


def test_hubspot_valid_delivery_queues_matching_flows(hooks: Hooks) -> None:
    response = hooks.hubspot(hubspot_events((1, "deal.propertyChange")))

    assert response.status_code == 202
    answer = response.json()
    assert answer["received"] == 1
    assert answer["new"] == 1
    assert answer["duplicates"] == 0
    assert sorted(run["flow"] for run in answer["runs"]) == ["any_crm_event",
                                                           "deal_changes"]
    assert sorted(hooks.jobs()) == [("any_crm_event", "webhook"),
                                    ("deal_changes", "webhook")]


def test_hubspot_event_type_filters_flows(hooks: Hooks) -> None:
    response = hooks.hubspot(hubspot_events((5, "contact.creation")))

    assert response.status_code == 202
    assert [run["flow"] for run in response.json()["runs"]] == ["any_crm_event"]
    assert hooks.jobs() == [("any_crm_event", "webhook")]


def test_hubspot_signature_covers_query_string(hooks: Hooks) -> None:
    response = hooks.hubspot(hubspot_events((6, "contact.creation")),
                             query="portal=62515&source=a%3Ab")

    assert response.status_code == 202


def test_hubspot_same_event_three_times_starts_one_run(hooks: Hooks) -> None:
    body = hubspot_events((42, "contact.creation"))

    answers = [hooks.hubspot(body) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [202, 202, 202]
    assert [answer.json()["new"] for answer in answers] == [1, 0, 0]
    assert [answer.json()["duplicates"] for answer in answers] == [0, 1, 1]
    assert hooks.jobs() == [("any_crm_event", "webhook")]
    assert hooks.events() == [("crm", "42")]


def test_hubspot_batch_records_each_event_once(hooks: Hooks) -> None:
    body = hubspot_events((1, "contact.creation"), (2, "contact.creation"),
                          (1, "contact.creation"))

    response = hooks.hubspot(body)

    assert response.json()["received"] == 3
    assert response.json()["new"] == 2
    assert hooks.events() == [("crm", "1"), ("crm", "2")]
    assert len(hooks.jobs()) == 1


def test_hubspot_rejections_queue_nothing(hooks: Hooks) -> None:
    body = hubspot_events((9, "deal.propertyChange"))
    now_ms = int(time.time() * 1000)
    cases = {
        "wrong secret": hooks.hubspot(body, secret="not-the-secret"),
        "stale timestamp": hooks.hubspot(body, timestamp=now_ms - 6 * 60 * 1000),
        "future timestamp": hooks.hubspot(body, timestamp=now_ms + 6 * 60 * 1000),
        "no signature": requests.post(hooks.server.url("/api/v1/hooks/crm"),
                                      data=body, timeout=10),
        "tampered body": requests.post(
            hooks.server.url("/api/v1/hooks/crm"),
            data=hubspot_events((10, "deal.propertyChange")), timeout=10,
            headers={"X-HubSpot-Signature-v3": hubspot_v3_signature(
                HUBSPOT_SECRET, "POST", PUBLIC_URL + "/api/v1/hooks/crm", body,
                str(now_ms)), "X-HubSpot-Request-Timestamp": str(now_ms)}),
    }
    for case, response in cases.items():
        assert response.status_code == 401, case
        assert response.json()["error"]["code"] in ("invalid_signature",
                                                     "stale_timestamp"), case
    assert cases["stale timestamp"].json()["error"]["code"] == "stale_timestamp"
    assert hooks.jobs() == []
    assert hooks.events() == []


def test_hubspot_timestamp_inside_window_accepted(hooks: Hooks) -> None:
    four_minutes_ago = int(time.time() * 1000) - 4 * 60 * 1000

    response = hooks.hubspot(hubspot_events((11, "contact.creation")),
                             timestamp=four_minutes_ago)

    assert response.status_code == 202


def test_malformed_json_with_valid_signature_is_400(hooks: Hooks) -> None:
    response = hooks.hubspot(b'[{"eventId": 1,')

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert hooks.jobs() == []
    assert hooks.events() == []


def test_event_without_id_is_400(hooks: Hooks) -> None:
    response = hooks.hubspot(b'[{"subscriptionType": "contact.creation"}]')

    assert response.status_code == 400
    assert "eventId" in response.json()["error"]["message"]
    assert hooks.jobs() == []


def test_unknown_system_is_404(hooks: Hooks) -> None:
    response = requests.post(hooks.server.url("/api/v1/hooks/src"), data=b"[]",
                             timeout=10)

    assert response.status_code == 404


def test_webhook_body_over_limit_is_413(hooks: Hooks) -> None:
    response = hooks.hubspot(b"[" + b" " * (1024 * 1024) + b"]")

    assert response.status_code == 413
    assert hooks.jobs() == []


# --- hex HMAC ---------------------------------------------------------------------


def test_hex_hmac_valid_delivery_queues_flow(hooks: Hooks) -> None:
    body = json.dumps({"meta": {"id": "evt-1", "type": "deal.created"}}).encode()

    response = hooks.hex_hook(body)

    assert response.status_code == 202
    assert [run["flow"] for run in response.json()["runs"]] == ["hook_deals"]
    assert hooks.events() == [("hooks", "evt-1")]


def test_hex_hmac_accepts_sha256_prefix(hooks: Hooks) -> None:
    body = json.dumps({"meta": {"id": "evt-2", "type": "deal.created"}}).encode()

    response = hooks.hex_hook(body, prefix="sha256=")

    assert response.status_code == 202


def test_hex_hmac_wrong_secret_is_401(hooks: Hooks) -> None:
    body = json.dumps({"meta": {"id": "evt-3", "type": "deal.created"}}).encode()

    response = hooks.hex_hook(body, secret="wrong")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert hooks.jobs() == []
    assert hooks.events() == []


def test_hex_hmac_other_event_type_starts_nothing(hooks: Hooks) -> None:
    body = json.dumps({"meta": {"id": "evt-4", "type": "deal.deleted"}}).encode()

    response = hooks.hex_hook(body)

    assert response.status_code == 202
    assert response.json()["runs"] == []
    assert hooks.events() == [("hooks", "evt-4")]
    assert hooks.jobs() == []


def test_webhook_during_run_queues_follow_up(tmp_path: Path) -> None:
    store = ServerStore(tmp_path / "state.db")
    request = JobRequest(flow="any_crm_event", resources=["crm_out"],
                         requested_by="webhook crm", trigger="webhook")
    _, first = store.record_events("crm", [Event("20", "x")], {"x": [request]})
    running = store.claim("worker-a", 60)
    _, second = store.record_events("crm", [Event("21", "x")], {"x": [request]})
    _, third = store.record_events("crm", [Event("22", "x")], {"x": [request]})
    store.close()

    assert running is not None
    assert running.run_id == first[0].run_id
    assert running.status == "running"
    assert second[0].run_id != running.run_id
    assert second[0].status == "queued"
    assert third[0].run_id == second[0].run_id  # one follow-up covers later events


# --- pieces -------------------------------------------------------------------------


def test_decode_hubspot_uri_decodes_reserved_escapes() -> None:
    uri = "https://h.example/api/v1/hooks/crm?a=b%3Ac&d=%2Fe%3F&f=%25&g=%20"

    assert decode_hubspot_uri(uri) == (
        "https://h.example/api/v1/hooks/crm?a=b:c&d=/e?&f=%25&g=%20")


def test_hubspot_signature_known_value() -> None:
    body = b'[{"eventId":1}]'
    source = b"POSThttps://h.example/hook" + body + b"1700000000000"
    independent = base64.b64encode(
        hmac.new(b"secret", source, hashlib.sha256).digest()).decode()

    signature = hubspot_v3_signature("secret", "POST", "https://h.example/hook", body,
                                     "1700000000000")

    assert signature == independent


def test_literal_webhook_secret_is_e501(tmp_path: Path) -> None:
    (tmp_path / "syncplan.yaml").write_text(textwrap.dedent("""\
        version: 1
        systems:
          crm:
            kind: json
            path: deals.json
            webhook: {signature: hubspot_v3, secret: "plain-secret-value"}
          out: {kind: sheets, spreadsheet: out.xlsx}
        entities:
          deal:
            key: id
            fields:
              id: {type: integer, owner: crm}
        flows:
          deals:
            source: {system: crm}
            map: {entity: deal, fields: {id: id}}
            destinations: [{system: out, object: Deals, mode: upsert}]
        """), encoding="utf-8")

    result = compile_project(tmp_path)

    codes = [(d.code, d.pointer) for d in result.diagnostics]
    assert ("E501", "/systems/crm/webhook/secret") in codes


def test_webhook_schema_rejects_unknown_scheme(tmp_path: Path) -> None:
    (tmp_path / "syncplan.yaml").write_text(textwrap.dedent("""\
        version: 1
        systems:
          crm:
            kind: json
            path: deals.json
            webhook: {signature: md5, secret: "${env:X}"}
        """), encoding="utf-8")

    result = compile_project(tmp_path)

    assert any(d.severity == "error" and "webhook" in (d.pointer or "")
               for d in result.diagnostics)



# --- retention of event ids -------------------------------------------------------


class FakeClock:
    """A settable POSIX clock for the store."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


DAY = 86400.0


def test_event_ids_pruned_after_retention(tmp_path: Path) -> None:
    clock = FakeClock(1_767_225_600.0)  # 2026-01-01 00:00 UTC
    store = ServerStore(tmp_path / "state.db", webhook_retention_seconds=7 * DAY,
                        clock=clock)
    start = clock.now
    first, second = Event("evt-1", "deal.creation"), Event("evt-2", "deal.creation")
    try:
        fresh_at_start, _jobs = store.record_events("crm", [first], {})
        clock.now = start + 6 * DAY
        fresh_inside, _jobs = store.record_events("crm", [first, second], {})
        clock.now = start + 7 * DAY + 3600
        fresh_after, _jobs = store.record_events("crm", [first, second], {})
        count_after = store.event_count("crm")
    finally:
        store.close()

    assert fresh_at_start == [first]
    assert fresh_inside == [second]  # evt-1 is still a repeat inside the window
    assert fresh_after == [first]  # evt-1 was pruned, evt-2 (day 6) was not
    assert count_after == 2


def test_event_ids_inside_window_not_pruned(tmp_path: Path) -> None:
    clock = FakeClock(1_767_225_600.0)
    store = ServerStore(tmp_path / "state.db", webhook_retention_seconds=7 * DAY,
                        clock=clock)
    try:
        store.record_events("crm", [Event(str(day), None) for day in range(3)], {})
        clock.now += 7 * DAY - 60
        repeated, _jobs = store.record_events(
            "crm", [Event(str(day), None) for day in range(3)], {})
        count = store.event_count("crm")
    finally:
        store.close()

    assert repeated == []
    assert count == 3


@pytest.fixture()
def restore_loggers() -> Iterator[None]:
    """Undo what create_app_from_env sets on the package loggers."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level,
              list(logging.getLogger(name).handlers))
             for name in ("sheets_addon", "runtime")]
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers


def test_retention_setting_is_checked(tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      restore_loggers: None) -> None:
    from sheets_addon.server import ServerConfigError, create_app_from_env

    root = write_server_project(tmp_path / "project", gate=False)
    monkeypatch.setenv("SYNCPLAN_PROJECT", str(root))
    monkeypatch.setenv("SYNCPLAN_DEV", "1")
    monkeypatch.setenv("SYNCPLAN_WEBHOOK_RETENTION_DAYS", "a week")

    with pytest.raises(ServerConfigError, match="'a week' is not a number"):
        create_app_from_env()
    with pytest.raises(ServerConfigError, match="retention of 0 days is invalid"):
        create_app(root, dev_mode=True, webhook_retention_days=0)
    with pytest.raises(ValueError, match="webhook_retention_seconds=-1"):
        ServerStore(tmp_path / "state.db", webhook_retention_seconds=-1)
