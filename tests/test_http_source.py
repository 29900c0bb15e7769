"""Tests of the ``http`` source against scripted APIs on 127.0.0.1.

Every request goes to a ``FakeAPI`` started by the test; nothing leaves the
machine. Retries sleep through an injected function that records the delays,
so back-off costs no time. The last section compiles specs with http systems.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from support.fake_api import FakeAPI, Received, Reply, json_reply, text_reply

from compiler import compile_project
from compiler.plan import RateLimit, SystemPlan
from runtime.http import BucketRegistry, RetryPolicy
from runtime.sources import READERS, read_source
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)

FAST = RetryPolicy(attempts=4, base_seconds=0.0, max_seconds=0.0,
                   deadline_seconds=60.0, jitter="none")
CURSOR_NEXT = {"type": "cursor", "next": "next", "param": "after"}


@dataclass
class Result:
    """What one read produced."""

    records: list[SourceRecord]
    errors: list[SourceError]
    options: dict[str, Any]
    sleeps: list[float] = field(default_factory=list)

    def ids(self) -> list[Any]:
        return [record.data.get("id") for record in self.records]

    def codes(self) -> list[str]:
        return [error.code for error in self.errors]


@pytest.fixture
def api() -> Any:
    with FakeAPI() as server:
        yield server


def http_system(base_url: str, streams: dict[str, Any], *,
                auth: dict[str, Any] | None = None,
                rate_limit: RateLimit | None = None, **settings: Any) -> SystemPlan:
    return SystemPlan(id="crm", kind="http",
                      settings={"base_url": base_url, "streams": streams, **settings},
                      auth=auth, rate_limit=rate_limit)


def one_stream(base_url: str, **stream: Any) -> SystemPlan:
    """Return a system whose one stream ``items`` reads ``/items``."""
    auth = stream.pop("auth", None)
    settings = stream.pop("settings", {})
    spec = {"path": "/items", "records": "results", **stream}
    return http_system(base_url, {"items": spec}, auth=auth, **settings)


def read_all(system: SystemPlan, tmp_path: Path, stream: str = "items",
             **options: Any) -> Result:
    sleeps: list[float] = []
    options.setdefault("http_retry_policy", FAST)
    options.setdefault("http_sleep", sleeps.append)
    context = SourceContext(base_dir=tmp_path, now=dt.datetime.now(dt.UTC),
                            options=options)
    records: list[SourceRecord] = []
    errors: list[SourceError] = []
    for item in read_source(system, stream, context):
        if isinstance(item, SourceRecord):
            records.append(item)
        else:
            errors.append(item)
    return Result(records, errors, options, sleeps)


def page(*ids: Any, next_token: Any = None, **extra: Any) -> Reply:
    body: dict[str, Any] = {"results": [{"id": item} for item in ids], **extra}
    if next_token is not None:
        body["next"] = next_token
    return json_reply(body)


# --- registration and settings ---------------------------------------------------

def test_readers_registry_has_http() -> None:
    assert "http" in READERS


def test_settings_unknown_stream(api: FakeAPI, tmp_path: Path) -> None:
    system = one_stream(api.url)
    expected = "no stream 'deals'; the streams are 'items'"
    with pytest.raises(SourceUnavailable, match=expected):
        read_all(system, tmp_path, stream="deals")
    assert api.requests == []


def test_settings_path_on_other_host(api: FakeAPI, tmp_path: Path) -> None:
    system = one_stream(api.url, path="http://other.invalid/items")
    with pytest.raises(SourceUnavailable, match="another host"):
        read_all(system, tmp_path)


def test_settings_missing_env_reference(api: FakeAPI, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_TOKEN_UNSET", raising=False)
    system = one_stream(api.url, auth={"type": "bearer",
                                       "token": "${env:CRM_TOKEN_UNSET}"})
    with pytest.raises(SourceUnavailable, match="CRM_TOKEN_UNSET") as raised:
        read_all(system, tmp_path)
    assert "auth.token" in str(raised.value)
    assert api.requests == []


def test_settings_references_in_stream(api: FakeAPI, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNT_ID", "acct-7")
    api.route("GET", "/accounts/acct-7/items", page(1))
    system = one_stream(api.url, path="/accounts/${env:ACCOUNT_ID}/items",
                        query={"owner": "${env:ACCOUNT_ID}", "archived": False,
                               "limit": 50})
    result = read_all(system, tmp_path)
    assert result.ids() == [1]
    received = api.received()[0]
    assert received.param("owner") == "acct-7"
    assert received.param("archived") == "false"
    assert received.param("limit") == "50"


def test_settings_base_url_path_prefix(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/api/v2/items", page(1))
    system = one_stream(api.url + "/api/v2/", path="/items")
    assert read_all(system, tmp_path).ids() == [1]


# --- auth ----------------------------------------------------------------------

def test_auth_bearer_header(api: FakeAPI, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TOKEN", "tok-bearer-1")
    api.route("GET", "/items", page(1))
    system = one_stream(api.url, auth={"type": "bearer", "token": "${env:CRM_TOKEN}"})
    assert read_all(system, tmp_path).ids() == [1]
    assert api.received()[0].headers["authorization"] == "Bearer tok-bearer-1"


def test_auth_bearer_from_file(api: FakeAPI, tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("tok-from-file\n", encoding="utf-8")
    api.route("GET", "/items", page(1))
    system = one_stream(api.url, auth={"type": "bearer",
                                       "token": "${file:secrets/token}"})
    read_all(system, tmp_path)
    assert api.received()[0].headers["authorization"] == "Bearer tok-from-file"


def test_auth_api_key_header(api: FakeAPI, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_KEY", "key-in-header")
    api.route("GET", "/items", page(1))
    system = one_stream(api.url, auth={"type": "api_key", "key": "${env:CRM_KEY}",
                                       "header": "X-Api-Key"})
    read_all(system, tmp_path)
    received = api.received()[0]
    assert received.headers["x-api-key"] == "key-in-header"
    assert "authorization" not in received.headers
    assert received.query == {}


def test_auth_api_key_query(api: FakeAPI, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_KEY", "key-in-query")
    api.route("GET", "/items", [page(1, next_token="p2"), page(2)])
    system = one_stream(api.url, pagination=CURSOR_NEXT,
                        auth={"type": "api_key", "key": "${env:CRM_KEY}",
                              "query": "hapikey"})
    assert read_all(system, tmp_path).ids() == [1, 2]
    assert [r.param("hapikey") for r in api.received()] == ["key-in-query"] * 2
    assert api.received()[1].param("after") == "p2"


def test_auth_basic_header(api: FakeAPI, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_PASSWORD", "pa:ss wörd")
    api.route("GET", "/items", page(1))
    system = one_stream(api.url, auth={"type": "basic", "username": "ana",
                                       "password": "${env:CRM_PASSWORD}"})
    read_all(system, tmp_path)
    scheme, encoded = api.received()[0].headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode("utf-8") == "ana:pa:ss wörd"


def oauth_system(api: FakeAPI, kind: str, **auth: Any) -> SystemPlan:
    settings = {"type": kind, "token_url": api.url + "/oauth/token",
                "client_id": "client-1", **auth}
    return one_stream(api.url, pagination=CURSOR_NEXT, auth=settings)


def token_route(api: FakeAPI, tokens: list[str], expires_in: int | None = 3600) -> None:
    issued = iter(tokens)

    def issue(request: Received) -> Reply:
        body: dict[str, Any] = {"access_token": next(issued), "token_type": "bearer"}
        if expires_in is not None:
            body["expires_in"] = expires_in
        return json_reply(body)

    api.route("POST", "/oauth/token", issue)


def test_auth_oauth2_client_credentials(api: FakeAPI, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "cs-secret-1")
    token_route(api, ["tok-cc-1"])
    api.route("GET", "/items", page(1))
    system = oauth_system(api, "oauth2_client_credentials",
                          client_secret="${env:CLIENT_SECRET}",
                          scope=["crm.read", "crm.write"])
    assert read_all(system, tmp_path).ids() == [1]
    (token_request,) = api.received("POST", "/oauth/token")
    assert token_request.form() == {"grant_type": "client_credentials",
                                    "client_id": "client-1",
                                    "client_secret": "cs-secret-1",
                                    "scope": "crm.read crm.write"}
    assert "authorization" not in token_request.headers
    (request,) = api.received("GET", "/items")
    assert request.headers["authorization"] == "Bearer tok-cc-1"


def test_auth_oauth2_client_auth_basic(api: FakeAPI, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "cs-secret-2")
    token_route(api, ["tok-cc-2"])
    api.route("GET", "/items", page(1))
    system = oauth_system(api, "oauth2_client_credentials",
                          client_secret="${env:CLIENT_SECRET}", client_auth="basic")
    read_all(system, tmp_path)
    (token_request,) = api.received("POST", "/oauth/token")
    assert token_request.form() == {"grant_type": "client_credentials"}
    encoded = token_request.headers["authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded).decode() == "client-1:cs-secret-2"


def test_auth_oauth2_refresh_token_grant(api: FakeAPI, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFRESH_TOKEN", "rt-1")
    token_route(api, ["tok-rt-1"])
    api.route("GET", "/items", page(1))
    system = oauth_system(api, "oauth2_refresh_token",
                          refresh_token="${env:REFRESH_TOKEN}")
    read_all(system, tmp_path)
    (token_request,) = api.received("POST", "/oauth/token")
    assert token_request.form() == {"grant_type": "refresh_token",
                                    "refresh_token": "rt-1", "client_id": "client-1"}
    (request,) = api.received("GET", "/items")
    assert request.headers["authorization"] == "Bearer tok-rt-1"


def test_auth_refresh_on_401_repeats_page(api: FakeAPI, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "cs-secret-3")
    token_route(api, ["tok-old", "tok-new"])

    def items(request: Received) -> Reply:
        after = request.param("after")
        if after == "p2" and request.headers["authorization"] == "Bearer tok-old":
            return json_reply({"message": "token expired"}, status=401)
        if after == "p2":
            return page(2)
        return page(1, next_token="p2")

    api.route("GET", "/items", items)
    system = oauth_system(api, "oauth2_client_credentials",
                          client_secret="${env:CLIENT_SECRET}")
    result = read_all(system, tmp_path)
    assert result.ids() == [1, 2]
    assert result.errors == []
    assert len(api.received("POST", "/oauth/token")) == 2
    second_page = [r for r in api.received("GET", "/items") if r.param("after") == "p2"]
    assert [r.headers["authorization"] for r in second_page] == [
        "Bearer tok-old", "Bearer tok-new"]


def test_auth_refresh_on_expiry_mid_pagination(api: FakeAPI, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFRESH_TOKEN", "rt-2")
    token_route(api, ["tok-first", "tok-second"], expires_in=600)
    clock = [1000.0]

    def items(request: Received) -> Reply:
        if request.param("after") is None:
            clock[0] += 600  # the token's lifetime passes while page 1 is served
            return page(1, next_token="p2")
        return page(2)

    api.route("GET", "/items", items)
    system = oauth_system(api, "oauth2_refresh_token",
                          refresh_token="${env:REFRESH_TOKEN}")
    result = read_all(system, tmp_path, http_clock=lambda: clock[0])
    assert result.ids() == [1, 2]
    assert len(api.received("POST", "/oauth/token")) == 2
    assert [r.headers["authorization"] for r in api.received("GET", "/items")] == [
        "Bearer tok-first", "Bearer tok-second"]


def test_auth_second_401_is_unavailable(api: FakeAPI, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "cs-secret-4")
    token_route(api, ["tok-a", "tok-b", "tok-c"])
    api.route("GET", "/items", json_reply({"message": "forbidden"}, status=401))
    system = oauth_system(api, "oauth2_client_credentials",
                          client_secret="${env:CLIENT_SECRET}")
    with pytest.raises(SourceUnavailable, match="HTTP 401 again") as raised:
        read_all(system, tmp_path)
    assert "tok-" not in str(raised.value)
    assert len(api.received("POST", "/oauth/token")) == 2
    assert len(api.received("GET", "/items")) == 2


def test_auth_static_401_is_unavailable(api: FakeAPI, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TOKEN", "tok-static")
    api.route("GET", "/items", json_reply({"message": "bad token"}, status=401))
    system = one_stream(api.url, auth={"type": "bearer", "token": "${env:CRM_TOKEN}"})
    with pytest.raises(SourceUnavailable, match="HTTP 401") as raised:
        read_all(system, tmp_path)
    assert "check the credentials under `auth`" in str(raised.value)
    assert len(api.received()) == 1


def test_auth_token_endpoint_error(api: FakeAPI, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "cs-secret-5")
    api.route("POST", "/oauth/token",
              json_reply({"error": "invalid_client",
                          "error_description": "client authentication failed"},
                         status=401))
    system = oauth_system(api, "oauth2_client_credentials",
                          client_secret="${env:CLIENT_SECRET}")
    with pytest.raises(SourceUnavailable, match="invalid_client") as raised:
        read_all(system, tmp_path)
    assert "cs-secret-5" not in str(raised.value)
    assert api.received("GET", "/items") == []


# --- pagination ----------------------------------------------------------------

def test_pagination_cursor_in_query(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", [page(1, 2, next_token="t2"), page(3, next_token="t3"),
                                page(4)])
    result = read_all(one_stream(api.url, pagination=CURSOR_NEXT), tmp_path)
    assert result.ids() == [1, 2, 3, 4]
    assert [r.param("after") for r in api.received()] == [None, "t2", "t3"]
    assert [r.position for r in result.records] == [
        "items page 1 item 1", "items page 1 item 2", "items page 2 item 1",
        "items page 3 item 1"]


def test_pagination_empty_page_with_token_goes_on(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", [json_reply({"items": [], "nextPageToken": "tok-2"}),
                                json_reply({"items": [{"id": "e1"}]})])
    system = one_stream(api.url, records="items",
                        pagination={"type": "cursor", "next": "nextPageToken",
                                    "param": "pageToken"})
    result = read_all(system, tmp_path)
    assert result.ids() == ["e1"]
    assert [r.param("pageToken") for r in api.received()] == [None, "tok-2"]


def test_pagination_cursor_in_post_body(api: FakeAPI, tmp_path: Path) -> None:
    api.route("POST", "/search", [
        json_reply({"results": [{"id": "d1"}], "paging": {"next": {"after": "5"}}}),
        json_reply({"results": [{"id": "d2"}]})])
    system = one_stream(api.url, path="/search", method="POST",
                        body={"limit": 1, "properties": ["amount"]},
                        pagination={"type": "cursor", "next": "paging.next.after",
                                    "param": "after"})
    assert read_all(system, tmp_path).ids() == ["d1", "d2"]
    bodies = [r.json() for r in api.received()]
    assert bodies == [{"limit": 1, "properties": ["amount"]},
                      {"limit": 1, "properties": ["amount"], "after": "5"}]
    assert api.received()[0].headers["content-type"] == "application/json"


def test_pagination_next_url_in_body(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/tasks", [
        json_reply({"data": [{"id": 1}],
                    "next_page": {"offset": "o2",
                                  "uri": api.url + "/tasks?offset=o2"}}),
        json_reply({"data": [{"id": 2}],
                    "next_page": {"uri": "/tasks?offset=o3"}}),
        json_reply({"data": [{"id": 3}], "next_page": None})])
    system = one_stream(api.url, path="/tasks", records="data",
                        query={"project": "p1"},
                        pagination={"type": "next_url", "next": "next_page.uri"})
    assert read_all(system, tmp_path).ids() == [1, 2, 3]
    assert [r.query for r in api.received()] == [
        {"project": ["p1"]}, {"offset": ["o2"]}, {"offset": ["o3"]}]


def test_pagination_link_header(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", [
        json_reply([{"id": 1}],
                   headers={"Link": f'<{api.url}/items?page=2>; rel="next"'}),
        json_reply([{"id": 2}], headers={"Link": '</items?page=3>; rel="next", '
                                         '</items?page=1>; rel="first"'}),
        json_reply([{"id": 3}], headers={"Link": '</items?page=1>; rel="first"'})])
    system = one_stream(api.url, records="", pagination={"type": "link_header"})
    assert read_all(system, tmp_path).ids() == [1, 2, 3]
    assert [r.param("page") for r in api.received()] == [None, "2", "3"]


def offset_route(items: list[int], total: int | None = None,
                 offset_param: str = "offset", limit_param: str = "limit") -> Any:
    def serve(request: Received) -> Reply:
        offset = int(request.param(offset_param) or 0)
        limit = int(request.param(limit_param) or 100)
        body: dict[str, Any] = {"results": [{"id": i} for i in
                                            items[offset:offset + limit]]}
        if total is not None:
            body["total"] = total
        return json_reply(body)
    return serve


def test_pagination_offset_stops_at_total(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", offset_route(list(range(12)), total=12))
    system = one_stream(api.url, pagination={"type": "offset", "limit": 5,
                                             "total": "total"})
    assert read_all(system, tmp_path).ids() == list(range(12))
    assert [(r.param("offset"), r.param("limit")) for r in api.received()] == [
        ("0", "5"), ("5", "5"), ("10", "5")]


def test_pagination_offset_stops_on_empty_page(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", offset_route(list(range(7)), offset_param="start",
                                            limit_param="count"))
    system = one_stream(api.url, pagination={"type": "offset", "param": "start",
                                             "limit": 3, "limit_param": "count"})
    assert read_all(system, tmp_path).ids() == list(range(7))
    assert [r.param("start") for r in api.received()] == ["0", "3", "6", "7"]


def test_pagination_offset_more_flag(api: FakeAPI, tmp_path: Path) -> None:
    def more(flag: bool) -> dict[str, Any]:
        return {"pagination": {"more_items_in_collection": flag}}

    api.route("GET", "/items", [
        json_reply({"data": [{"id": 1}, {"id": 2}], "additional_data": more(True)}),
        json_reply({"data": [{"id": 3}], "additional_data": more(False)})])
    system = one_stream(api.url, records="data", pagination={
        "type": "offset", "param": "start", "limit": 2,
        "more": "additional_data.pagination.more_items_in_collection"})
    assert read_all(system, tmp_path).ids() == [1, 2, 3]
    assert [r.param("start") for r in api.received()] == ["0", "2"]


def test_pagination_page_number_total_pages(api: FakeAPI, tmp_path: Path) -> None:
    def serve(request: Received) -> Reply:
        number = int(request.param("page") or 0)
        return json_reply({"results": [{"id": number}], "total_pages": 3})

    api.route("GET", "/items", serve)
    system = one_stream(api.url, pagination={"type": "page", "limit": 1,
                                             "limit_param": "per_page",
                                             "total_pages": "total_pages"})
    assert read_all(system, tmp_path).ids() == [1, 2, 3]
    assert [(r.param("page"), r.param("per_page")) for r in api.received()] == [
        ("1", "1"), ("2", "1"), ("3", "1")]


def test_pagination_page_from_zero_last_flag(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", [
        json_reply({"tasks": [{"id": "a"}], "last_page": False}),
        json_reply({"tasks": [{"id": "b"}], "last_page": True})])
    system = one_stream(api.url, records="tasks",
                        pagination={"type": "page", "start": 0, "last": "last_page"})
    assert read_all(system, tmp_path).ids() == ["a", "b"]
    assert [r.param("page") for r in api.received()] == ["0", "1"]


def test_pagination_page_stops_on_empty(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", [json_reply([{"id": 1}]), json_reply([])])
    system = one_stream(api.url, records="", pagination={"type": "page"})
    assert read_all(system, tmp_path).ids() == [1]
    assert len(api.received()) == 2


def test_pagination_repeated_cursor_stops(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", lambda request: page("x", next_token="same-token"))
    result = read_all(one_stream(api.url, pagination=CURSOR_NEXT), tmp_path)
    assert result.codes() == ["http_pagination_loop"]
    assert "'same-token'" in result.errors[0].message
    assert result.errors[0].position == "items page 2"
    assert len(api.received()) == 2
    assert len(result.records) == 2


def test_pagination_repeated_next_url_stops(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", lambda request: json_reply(
        {"results": [{"id": request.param("p")}], "next": "/items?p=2"}))
    system = one_stream(api.url, pagination={"type": "next_url", "next": "next"})
    result = read_all(system, tmp_path)
    assert result.codes() == ["http_pagination_loop"]
    assert "which is page 2" in result.errors[0].message
    assert [r.param("p") for r in api.received()] == [None, "2"]


def test_pagination_ignored_page_param_stops(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", lambda request: page(1, 2))
    result = read_all(one_stream(api.url, pagination={"type": "page"}), tmp_path)
    assert result.codes() == ["http_pagination_loop"]
    assert "same records as page 1" in result.errors[0].message
    assert len(api.received()) == 2


def test_pagination_max_pages(api: FakeAPI, tmp_path: Path) -> None:
    tokens = iter(range(100))
    api.route("GET", "/items", lambda request: page(1, next_token=f"t{next(tokens)}"))
    system = one_stream(api.url, pagination={**CURSOR_NEXT, "max_pages": 3},
                        cursor={"field": "id"})
    result = read_all(system, tmp_path, cursor_out={})
    assert len(api.received()) == 3
    assert result.errors == []
    assert any("max_pages" in warning for warning in result.options["warnings"])
    assert result.options["cursor_out"] == {}


def test_pagination_foreign_next_url_rejected(api: FakeAPI, tmp_path: Path) -> None:
    with FakeAPI() as other:
        other.route("GET", "/items", page(99))
        api.route("GET", "/items", json_reply(
            {"results": [{"id": 1}], "next": other.url + "/items?offset=1"}))
        system = one_stream(api.url, pagination={"type": "next_url", "next": "next"})
        result = read_all(system, tmp_path)
        assert other.requests == []
    assert result.ids() == [1]
    assert result.codes() == ["http_foreign_url"]
    assert other.url.removeprefix("http://") in result.errors[0].message
    assert len(api.received()) == 1


def test_pagination_other_hostname_same_port_rejected(api: FakeAPI,
                                                      tmp_path: Path) -> None:
    # localhost reaches this same server, so a request there would show up in it.
    port = api.url.rsplit(":", 1)[1]
    api.route("GET", "/items", json_reply(
        {"results": [{"id": 1}], "next": f"http://localhost:{port}/items?p=2"}))
    system = one_stream(api.url, pagination={"type": "next_url", "next": "next"})
    result = read_all(system, tmp_path)
    assert result.codes() == ["http_foreign_url"]
    assert len(api.received()) == 1


def test_redirect_to_other_host_rejected(api: FakeAPI, tmp_path: Path) -> None:
    with FakeAPI() as other:
        other.route("GET", "/items", page(99))
        api.route("GET", "/items", Reply(302, b"", {"Location": other.url + "/items"}))
        result = read_all(one_stream(api.url), tmp_path)
        assert other.requests == []
    assert result.records == []
    assert result.codes() == ["http_foreign_url"]


def test_redirect_same_origin_followed(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", Reply(301, b"", {"Location": "/v2/items"}))
    api.route("GET", "/v2/items", page(7))
    assert read_all(one_stream(api.url), tmp_path).ids() == [7]


# --- retries -------------------------------------------------------------------

def test_retry_429_honours_retry_after(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", [json_reply({"message": "slow down"}, status=429,
                                           headers={"Retry-After": "7"}),
                                page(1)])
    result = read_all(one_stream(api.url), tmp_path)
    assert result.ids() == [1]
    assert result.sleeps == [7.0]
    assert len(api.received()) == 2


def test_retry_5xx_then_success(api: FakeAPI, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    api.route("GET", "/items", [json_reply({}, status=500), json_reply({}, status=502),
                                page(1)])
    result = read_all(one_stream(api.url), tmp_path)
    assert result.ids() == [1]
    assert len(result.sleeps) == 2
    retries = [r for r in caplog.records if r.name == "runtime.http.retry"]
    assert len(retries) == 2
    assert "HTTP 500" in retries[0].getMessage()


def test_retry_exhausted_on_later_page(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", lambda request: page(1, next_token="p2")
              if request.param("after") is None else json_reply({}, status=503))
    result = read_all(one_stream(api.url, pagination=CURSOR_NEXT), tmp_path)
    assert result.ids() == [1]
    assert result.codes() == ["http_request"]
    assert "after 4 attempt(s)" in result.errors[0].message
    assert len(api.received()) == 1 + FAST.attempts


def test_retry_exhausted_on_first_page(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", json_reply({}, status=500))
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        read_all(one_stream(api.url), tmp_path)
    assert len(api.received()) == FAST.attempts


def test_http_404_first_page_names_path(api: FakeAPI, tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="check `base_url` and the stream's"):
        read_all(one_stream(api.url, path="/missing"), tmp_path)


# --- responses of the wrong shape --------------------------------------------------

def test_shape_html_error_page(api: FakeAPI, tmp_path: Path) -> None:
    html = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
            "<body>nginx</body></html>")
    api.route("GET", "/items", text_reply(html, content_type="text/html"))
    result = read_all(one_stream(api.url), tmp_path)
    assert result.records == []
    assert result.codes() == ["http_not_json"]
    assert "'502 Bad Gateway'" in result.errors[0].message
    assert result.errors[0].raw.startswith("<!DOCTYPE html>")
    warnings = result.options["warnings"]
    assert any(w.startswith("source changed shape: ") for w in warnings)


def test_shape_invalid_json(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", text_reply('{"results": [{"id": 1},',
                                          content_type="application/json"))
    result = read_all(one_stream(api.url), tmp_path)
    assert result.codes() == ["http_invalid_json"]
    assert "line 1 column" in result.errors[0].message
    assert result.options["warnings"]


def test_shape_empty_body(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", Reply(200, b"", {"Content-Type": "application/json"}))
    result = read_all(one_stream(api.url), tmp_path)
    assert result.codes() == ["http_invalid_json"]
    assert "empty body" in result.errors[0].message


def test_shape_renamed_selector_goes_on(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", [json_reply({"result": [{"id": 1}], "next": "p2"}),
                                page(2)])
    result = read_all(one_stream(api.url, pagination=CURSOR_NEXT), tmp_path)
    assert result.ids() == [2]
    assert result.codes() == ["http_records_selector"]
    message = result.errors[0].message
    assert "'results'" in message
    assert "did you mean 'result'?" in message
    assert result.errors[0].position == "items page 1"
    (warning,) = result.options["warnings"]
    assert warning.startswith("source changed shape: http system 'crm' stream 'items'")


def test_shape_selector_not_a_list(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", json_reply({"results": {"id": 1}}))
    result = read_all(one_stream(api.url), tmp_path)
    assert result.codes() == ["http_records_selector"]
    assert "an object with keys 'id', not a list" in result.errors[0].message


def test_shape_items_not_objects(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", json_reply({"results": [["a", "b"], {"id": 2}, None]}))
    result = read_all(one_stream(api.url), tmp_path)
    assert result.ids() == [2]
    assert result.codes() == ["http_record_not_object"] * 2
    assert [e.position for e in result.errors] == ["items page 1 item 1",
                                                   "items page 1 item 3"]


def test_shape_declared_field_missing(api: FakeAPI, tmp_path: Path) -> None:
    records = [
        {"id": 1, "amount_total": "10", "properties": {"stage": "won"}},
        {"id": 2, "amount_total": "20", "properties": {}},
        {"id": 3, "amount_total": "30", "properties": {"stage": "lost"}},
    ]
    api.route("GET", "/items", json_reply({"results": records}))
    fields = {"id": "integer", "amount": "decimal", "properties.stage": "string",
              "note": {"type": "string", "optional": True}}
    result = read_all(one_stream(api.url, fields=fields), tmp_path)
    assert result.ids() == [1, 2, 3]
    by_field = {error.field: error for error in result.errors}
    assert set(by_field) == {"amount", "properties.stage"}
    assert all(e.code == "http_field_missing" for e in result.errors)
    assert "missing from all 3 records of page 1" in by_field["amount"].message
    assert "did you mean 'amount_total'?" in by_field["amount"].message
    assert "1 of 3 records of page 1 (items 2)" in by_field["properties.stage"].message
    assert any("declared field 'amount'" in w for w in result.options["warnings"])
    assert not any("properties.stage" in w for w in result.options["warnings"])


@pytest.mark.parametrize(("records", "body"), [
    ("$.data[*]", {"data": [{"id": 1}, {"id": 2}]}),
    ("$.data", {"data": [{"id": 1}, {"id": 2}]}),
    ("$..items", {"data": {"items": [{"id": 1}, {"id": 2}]}}),
    ("$.data[?@.active]", {"data": [{"id": 1, "active": True}, {"id": 3},
                                    {"id": 2, "active": True}]}),
    ("data.items", {"data": {"items": [{"id": 1}, {"id": 2}]}}),
    ("", [{"id": 1}, {"id": 2}]),
    ("$", [{"id": 1}, {"id": 2}]),
], ids=["jsonpath-wildcard", "jsonpath-list", "jsonpath-descendant",
        "jsonpath-filter", "dotted", "root-empty", "root-dollar"])
def test_selector_forms(api: FakeAPI, tmp_path: Path, records: str, body: Any) -> None:
    api.route("GET", "/items", json_reply(body))
    result = read_all(one_stream(api.url, records=records), tmp_path)
    assert result.errors == []
    assert result.ids() == [1, 2]


def test_selector_invalid_jsonpath(api: FakeAPI, tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match=r"invalid JSONPath '\$\.\['"):
        read_all(one_stream(api.url, records="$.["), tmp_path)


def test_selector_null_records_is_empty(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", json_reply({"results": None}))
    result = read_all(one_stream(api.url), tmp_path)
    assert result.records == []
    assert result.errors == []


def test_numbers_stay_exact(api: FakeAPI, tmp_path: Path) -> None:
    body = ('{"results": [{"id": 12345678901234567890,'
            ' "probability": 0.90000000000000002220446049250313080847263336181640625,'
            ' "amount": 5000.00}]}')
    api.route("GET", "/items", text_reply(body, content_type="application/json"))
    (record,) = read_all(one_stream(api.url), tmp_path).records
    assert record.data["id"] == 12345678901234567890
    assert record.data["probability"] == decimal.Decimal(
        "0.90000000000000002220446049250313080847263336181640625")
    assert str(record.data["amount"]) == "5000.00"


# --- logs and timeouts -----------------------------------------------------------

def test_logs_contain_no_secret(api: FakeAPI, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "cs-never-logged")
    monkeypatch.setenv("QUERY_KEY", "qk-never-logged")
    caplog.set_level(logging.DEBUG)
    token_route(api, ["at-never-logged-1", "at-never-logged-2"])
    api.route("GET", "/items", [json_reply({}, status=429,
                                           headers={"Retry-After": "1"}),
                                page(1, next_token="p2"),
                                json_reply({"error": "expired"}, status=401),
                                page(2)])
    system = oauth_system(api, "oauth2_client_credentials",
                          client_secret="${env:CLIENT_SECRET}")
    assert read_all(system, tmp_path).ids() == [1, 2]
    api.route("GET", "/items", [json_reply({}, status=500), page(3)])
    keyed = one_stream(api.url, auth={"type": "api_key", "key": "${env:QUERY_KEY}",
                                      "query": "hapikey"})
    assert read_all(keyed, tmp_path).ids() == [3]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "retrying" in text
    assert "GET /items?hapikey=***" in text
    for secret in ("cs-never-logged", "qk-never-logged", "at-never-logged", "Bearer"):
        assert secret not in text


class RecordingSession(requests.Session):
    """A session that records the timeout of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[tuple[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        self.timeouts.append((str(method), kwargs.get("timeout")))
        return super().request(method, url, *args, **kwargs)


def test_timeout_on_every_request(api: FakeAPI, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "cs-timeouts")
    token_route(api, ["tok-t1", "tok-t2"])
    api.route("GET", "/items", [page(1, next_token="p2"),
                                json_reply({}, status=401), page(2)])
    system = oauth_system(api, "oauth2_client_credentials",
                          client_secret="${env:CLIENT_SECRET}")
    system.settings["timeout"] = {"connect": 3, "read": 7}
    session = RecordingSession()
    assert read_all(system, tmp_path, http_session=session).ids() == [1, 2]
    assert [method for method, _ in session.timeouts] == [
        "POST", "GET", "GET", "POST", "GET"]
    assert all(timeout == (3.0, 7.0) for _, timeout in session.timeouts)


def test_timeout_default(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", page(1))
    session = RecordingSession()
    read_all(one_stream(api.url), tmp_path, http_session=session)
    assert session.timeouts == [("GET", (10.0, 60.0))]


def test_timeout_slow_server(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", json_reply({"results": []}, delay=1.0))
    system = one_stream(api.url, settings={"timeout": 0.2})
    with pytest.raises(SourceUnavailable, match="ReadTimeout"):
        read_all(system, tmp_path,
                 http_retry_policy=RetryPolicy(attempts=1, jitter="none"))


# --- incremental cursor ----------------------------------------------------------

def stamped(*pairs: tuple[int, str]) -> Reply:
    return json_reply({"results": [{"id": item, "updated_at": when}
                                   for item, when in pairs]})


def test_cursor_in_and_out(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", stamped((1, "2025-12-31T23:00:00Z"),
                                       (2, "2026-01-05T10:00:00Z"),
                                       (3, "2026-01-03T00:00:00+01:00")))
    system = one_stream(api.url, cursor={"field": "updated_at",
                                         "param": "updated_since", "format": "iso"})
    result = read_all(system, tmp_path, cursor="2026-01-01T00:00:00+00:00",
                      cursor_out={})
    assert api.received()[0].param("updated_since") == "2026-01-01T00:00:00Z"
    assert result.ids() == [2, 3]
    assert result.options["cursor_out"] == {"value": "2026-01-05T10:00:00Z"}


def test_cursor_initial_when_none_stored(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", stamped((1, "2026-02-01")))
    system = one_stream(api.url, cursor={"field": "updated_at", "param": "since",
                                         "initial": "2020-01-01", "format": "date"})
    result = read_all(system, tmp_path, cursor=None, cursor_out={})
    assert api.received()[0].param("since") == "2020-01-01"
    assert result.options["cursor_out"] == {"value": "2026-02-01"}


def test_cursor_epoch_ms_in_body(api: FakeAPI, tmp_path: Path) -> None:
    body = {"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate",
                                           "operator": "GTE"}]}], "limit": 2}
    api.route("POST", "/search", json_reply({"results": [
        {"id": "1", "properties": {"hs_lastmodifieddate": "2026-03-09T20:29:45.981Z"}},
        {"id": "2", "properties": {"hs_lastmodifieddate": "2026-03-10T08:00:00.000Z"}},
    ]}))
    system = one_stream(api.url, path="/search", method="POST", body=body, cursor={
        "field": "properties.hs_lastmodifieddate",
        "param": "filterGroups.0.filters.0.value", "format": "epoch_ms"})
    result = read_all(system, tmp_path, cursor="2026-03-01T00:00:00Z", cursor_out={})
    sent = api.received()[0].json()
    assert sent["filterGroups"][0]["filters"][0]["value"] == "1772323200000"
    assert sent["limit"] == 2
    assert result.options["cursor_out"]["value"] == "2026-03-10T08:00:00.000Z"


def test_cursor_numeric_strings(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", stamped((1, "999"), (2, "1000"), (3, "998")))
    system = one_stream(api.url, cursor={"field": "updated_at"})
    result = read_all(system, tmp_path, cursor="998", cursor_out={})
    assert result.ids() == [1, 2, 3]
    assert result.options["cursor_out"] == {"value": "1000"}


def test_cursor_not_lowered(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", stamped((1, "2026-01-01T00:00:00Z")))
    system = one_stream(api.url, cursor={"field": "updated_at"})
    result = read_all(system, tmp_path, cursor="2026-01-01T00:00:00Z", cursor_out={})
    assert result.ids() == [1]
    assert result.options["cursor_out"] == {}


def test_cursor_kept_when_stream_stops_early(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", lambda request: json_reply({
        "results": [{"id": 1, "updated_at": "2026-05-01T00:00:00Z"}], "next": "loop"}))
    system = one_stream(api.url, pagination=CURSOR_NEXT, cursor={"field": "updated_at"})
    result = read_all(system, tmp_path, cursor_out={})
    assert result.codes() == ["http_pagination_loop"]
    assert result.options["cursor_out"] == {}
    assert any("cursor was not advanced" in w for w in result.options["warnings"])


def test_cursor_field_from_options(api: FakeAPI, tmp_path: Path) -> None:
    api.route("GET", "/items", stamped((1, "2026-01-02T00:00:00Z"),
                                       (2, "2026-01-04T00:00:00Z")))
    result = read_all(one_stream(api.url), tmp_path, cursor_field="updated_at",
                      cursor_out={})
    assert result.options["cursor_out"] == {"value": "2026-01-04T00:00:00Z"}


def test_cursor_bad_stored_value(api: FakeAPI, tmp_path: Path) -> None:
    system = one_stream(api.url, cursor={"field": "updated_at", "param": "since",
                                         "format": "epoch_ms"})
    with pytest.raises(SourceUnavailable, match="stored cursor 'yesterday'"):
        read_all(system, tmp_path, cursor="yesterday")
    assert api.requests == []


# --- request budget ---------------------------------------------------------------

def test_rate_limit_paces_requests(api: FakeAPI, tmp_path: Path) -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    registry = BucketRegistry(clock=lambda: now[0], sleep=sleep)
    api.route("GET", "/items", [page(1, next_token="a"), page(2, next_token="b"),
                                page(3)])
    system = one_stream(api.url, pagination=CURSOR_NEXT)
    system = system.model_copy(update={"rate_limit": RateLimit(requests=2,
                                                               per_seconds=1.0)})
    assert read_all(system, tmp_path, http_buckets=registry).ids() == [1, 2, 3]
    assert waits == [0.5, 0.5]
    assert len(registry) == 1


# --- the compiler ----------------------------------------------------------------

SPEC = """\
version: 1
systems:
  crm:
    kind: http
    base_url: https://api.crm.example
    auth: {type: bearer, token: "${env:CRM_TOKEN}"}
    timeout: {connect: 5, read: 30}
    rate_limit: {requests: 10, per: second}
    streams:
      deals:
        path: /crm/v3/objects/deals/search
        method: POST
        body: {limit: 100}
        headers: {X-Trace: syncplan}
        records: results
        pagination: {type: cursor, next: paging.next.after, param: after}
        cursor: {field: properties.hs_lastmodifieddate, format: epoch_ms}
        fields:
          id: string
          associations: object
          properties.dealname: string
          properties.amount: decimal
          properties.closedate: {type: datetime, optional: true}
  report: {kind: sheets, spreadsheet: out/report.xlsx}
entities:
  deal:
    key: id
    fields:
      id: {type: string, owner: crm}
      name: {type: string, owner: crm}
      amount: {type: decimal, owner: crm}
flows:
  deals:
    source: {system: crm, stream: deals}
    map:
      entity: deal
      fields: {id: id, name: properties.dealname, amount: properties.amount}
    destinations:
      - {system: report, object: Deals, mode: upsert}
"""


def compiled(tmp_path: Path, text: str) -> Any:
    (tmp_path / "syncplan.yaml").write_text(text, encoding="utf-8")
    return compile_project(tmp_path)


def replaced(old: str, new: str) -> str:
    assert SPEC.count(old) == 1, old
    return SPEC.replace(old, new)


def test_compile_http_spec(tmp_path: Path) -> None:
    result = compiled(tmp_path, SPEC)
    assert result.ok, [d.to_text() for d in result.diagnostics]
    crm = result.plan.systems["crm"]
    assert crm.settings["streams"]["deals"]["records"] == "results"
    assert crm.settings["timeout"] == {"connect": 5, "read": 30}
    assert crm.auth == {"type": "bearer", "token": "${env:CRM_TOKEN}"}
    paths = {m.field: m.source.path for m in result.plan.flow("deals").map.fields}
    assert paths == {"id": ["id"], "name": ["properties", "dealname"],
                     "amount": ["properties", "amount"]}


def test_compile_literal_token_is_e501(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced('token: "${env:CRM_TOKEN}"', "token: abc123"))
    assert [d.code for d in result.diagnostics] == ["E501"]
    assert result.diagnostics[0].pointer == "/systems/crm/auth/token"


def test_compile_literal_client_secret_is_e501(tmp_path: Path) -> None:
    auth = ('{type: oauth2_client_credentials, token_url: "https://auth.crm.example/'
            'token", client_id: app-1, client_secret: s3cr3t-literal}')
    result = compiled(tmp_path, replaced('{type: bearer, token: "${env:CRM_TOKEN}"}',
                                         auth))
    assert [(d.code, d.pointer) for d in result.diagnostics] == [
        ("E501", "/systems/crm/auth/client_secret")]


def test_compile_literal_auth_header_is_e501(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("headers: {X-Trace: syncplan}",
                                         "headers: {Authorization: Bearer abc123}"))
    assert [(d.code, d.pointer) for d in result.diagnostics] == [
        ("E501", "/systems/crm/streams/deals/headers/Authorization")]
    assert "Bearer ${env:AUTHORIZATION}" in result.diagnostics[0].hint


def test_compile_referenced_auth_header_ok(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced(
        "headers: {X-Trace: syncplan}",
        'headers: {Authorization: "Bearer ${env:CRM_TOKEN}"}'))
    assert result.ok, [d.to_text() for d in result.diagnostics]


def test_compile_literal_key_in_query_is_e501(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("body: {limit: 100}",
                                         "body: {limit: 100}\n        query:"
                                         " {hapikey: abc-literal}"))
    assert [(d.code, d.pointer) for d in result.diagnostics] == [
        ("E501", "/systems/crm/streams/deals/query/hapikey")]


def test_compile_unknown_stream_e204(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("{system: crm, stream: deals}",
                                         "{system: crm, stream: deal}"))
    assert [d.code for d in result.diagnostics] == ["E204"]
    assert result.diagnostics[0].hint == "did you mean 'deals'?"


def test_compile_http_without_streams_e204(tmp_path: Path) -> None:
    start = SPEC.index("    streams:\n")
    end = SPEC.index("  report:")
    result = compiled(tmp_path, SPEC[:start] + SPEC[end:])
    assert [d.code for d in result.diagnostics] == ["E204"]
    assert "declare the endpoint under 'streams:'" in result.diagnostics[0].hint


def test_compile_empty_streams_rejected(tmp_path: Path) -> None:
    start = SPEC.index("    streams:\n")
    end = SPEC.index("  report:")
    result = compiled(tmp_path, SPEC[:start] + "    streams: {}\n" + SPEC[end:])
    assert not result.ok
    assert [d.pointer for d in result.diagnostics] == ["/systems/crm/streams"]


def test_compile_undeclared_field_e203(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("amount: properties.amount}",
                                         "amount: properties.amont}"))
    assert [d.code for d in result.diagnostics] == ["E203"]
    assert "'properties.amont'" in result.diagnostics[0].message
    assert result.diagnostics[0].hint == "did you mean 'properties.amount'?"


def test_compile_undeclared_top_field_e203(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("{id: id,", "{id: owner_id,"))
    assert [d.code for d in result.diagnostics] == ["E203"]


def test_compile_below_object_field_ok(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("name: properties.dealname,",
                                         "name: associations.companies.0.id,"))
    assert result.ok, [d.to_text() for d in result.diagnostics]


def test_compile_object_into_string_e401(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("name: properties.dealname,",
                                         "name: associations,"))
    assert [d.code for d in result.diagnostics] == ["E401"]


def test_compile_template_names_heads(tmp_path: Path) -> None:
    ok = compiled(tmp_path, replaced("name: properties.dealname,",
                                     'name: "{{ record.properties.dealname }}",'))
    assert ok.ok, [d.to_text() for d in ok.diagnostics]
    bad = compiled(tmp_path, replaced("name: properties.dealname,",
                                      'name: "{{ record.propertys.dealname }}",'))
    assert [d.code for d in bad.diagnostics] == ["E403"]


def test_compile_bearer_without_token_e103(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced('{type: bearer, token: "${env:CRM_TOKEN}"}',
                                         "{type: bearer}"))
    assert [d.code for d in result.diagnostics] == ["E103"]
    assert "'token'" in result.diagnostics[0].message


def test_compile_api_key_needs_one_place(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced(
        '{type: bearer, token: "${env:CRM_TOKEN}"}',
        '{type: api_key, key: "${env:CRM_KEY}", header: X-Api-Key, query: api_key}'))
    assert [d.code for d in result.diagnostics] == ["E105"]
    assert "exactly one of 'header' and 'query'" in result.diagnostics[0].message


def test_compile_unknown_pagination_key(tmp_path: Path) -> None:
    result = compiled(tmp_path, replaced("param: after}", "param: after, nxt: x}"))
    assert [d.code for d in result.diagnostics] == ["E102"]
