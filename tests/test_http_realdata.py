"""The ``http`` source on real recorded API responses, served from 127.0.0.1.

The recordings are calls made against vendor sandbox accounts (HubSpot,
Salesforce, Pipedrive, Asana, ClickUp, Jira, Trello, Google Calendar and
Sheets). Each ``*.test.json`` contains ``api.<method>.<endpoint>`` with the
request's parameters and the real response body, or a list of them when the
endpoint was called several times. A loopback server responds to each request with
the recorded response whose parameters it matches, and the records are mapped
through ``runtime.values`` to check typed values.

The files are read in place and never copied into the repository. The tests
are skipped when the folder is absent.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest
from support.fake_api import FakeAPI, Received, Reply, json_reply

from compiler.plan import FieldPlan, Normalizer, SystemPlan
from runtime.http import RetryPolicy
from runtime.sources import read_source
from runtime.sources.base import SourceContext, SourceError, SourceRecord
from runtime.values import compile_field

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
TEMPLATES = REALDATA / "integration-templates" / "integrations"

pytestmark = pytest.mark.skipif(
    not TEMPLATES.is_dir(),
    reason=f"the recorded API responses are not at {TEMPLATES}; they live in the"
    " shared realdata folder beside the repository",
)

FAST = RetryPolicy(attempts=2, base_seconds=0.0, max_seconds=0.0, jitter="none")


def recorded_calls(relative: str, method: str, endpoint: str) -> list[dict[str, Any]]:
    """Return the recorded calls of one endpoint, always as a list."""
    document = json.loads((TEMPLATES / relative).read_text(encoding="utf-8"))
    calls = document["api"][method][endpoint]
    return calls if isinstance(calls, list) else [calls]


def matching_call(calls: list[dict[str, Any]], request: Received,
                  ignored: tuple[str, ...] = ()) -> Reply:
    """Return the recorded response whose parameters the request carries.

    ``ignored`` names recorded parameters that the request need not carry.
    """
    for call in calls:
        params = call.get("request", {}).get("params", {})
        if all(request.param(name) == str(value) for name, value in params.items()
               if name not in ignored):
            return json_reply(call["response"], status=call.get("status", 200))
    return json_reply({"error": f"no recording matches {request.query!r}"}, status=404)


def serve(api: FakeAPI, method: str, endpoint: str,
          calls: list[dict[str, Any]]) -> None:
    api.route(method, endpoint, lambda request: matching_call(calls, request))


def read_all(system: SystemPlan, stream: str, tmp_path: Path,
             **options: Any) -> tuple[list[SourceRecord], list[SourceError]]:
    options.setdefault("http_retry_policy", FAST)
    options.setdefault("http_sleep", lambda seconds: None)
    context = SourceContext(base_dir=tmp_path, now=dt.datetime.now(dt.UTC),
                            options=options)
    records: list[SourceRecord] = []
    errors: list[SourceError] = []
    for item in read_source(system, stream, context):
        (records if isinstance(item, SourceRecord) else errors).append(item)
    return records, errors


def http_system(base_url: str, stream: str, spec: dict[str, Any]) -> SystemPlan:
    return SystemPlan(id="api", kind="http",
                      settings={"base_url": base_url, "streams": {stream: spec}})


def value_at(record: SourceRecord, path: str) -> Any:
    value: Any = record.data
    for step in path.split("."):
        value = value[int(step)] if isinstance(value, list) else value[step]
    return value


def converter(field_type: str, **settings: Any) -> Any:
    return compile_field(FieldPlan(name="value", type=field_type, owner="api",
                                   **settings))


@pytest.fixture
def api() -> Any:
    with FakeAPI() as server:
        yield server


# --- HubSpot ---------------------------------------------------------------------

SEARCH = "/crm/v3/objects/deals/search"
DEALS = "/crm/v3/objects/deals"


def hubspot_search_stream() -> dict[str, Any]:
    (call,) = recorded_calls("hubspot/tests/search-deals.test.json", "post", SEARCH)
    return {
        "path": SEARCH,
        "method": "POST",
        "body": call["request"]["data"],
        "records": "results",
        "pagination": {"type": "cursor", "next": "paging.next.after", "param": "after"},
        "cursor": {"field": "properties.hs_lastmodifieddate"},
        "fields": {"id": "string", "properties.amount": "string",
                   "properties.dealname": "string"},
    }


def test_hubspot_search_paging_next_after(api: FakeAPI, tmp_path: Path) -> None:
    (search,) = recorded_calls("hubspot/tests/search-deals.test.json", "post", SEARCH)
    (listing,) = recorded_calls("hubspot/tests/deals.test.json", "get", DEALS)
    first_page = search["response"]
    first_ids = {deal["id"] for deal in first_page["results"]}
    # The second page is served from the recorded list call of the same account:
    # the deals the first page did not contain, and no `paging`, as HubSpot ends.
    last_page = {"total": first_page["total"],
                 "results": [deal for deal in listing["response"]["results"]
                             if deal["id"] not in first_ids]}
    api.route("POST", SEARCH, lambda request: json_reply(
        last_page if "after" in request.json() else first_page))
    options: dict[str, Any] = {"cursor_out": {}}
    records, errors = read_all(http_system(api.url, "deals", hubspot_search_stream()),
                               "deals", tmp_path, **options)
    assert errors == []
    assert len(records) == first_page["total"] == 21
    assert len({record.data["id"] for record in records}) == 21
    first_body, second_body = (request.json() for request in api.received())
    assert first_body == search["request"]["data"]
    assert second_body == {**search["request"]["data"],
                           "after": first_page["paging"]["next"]["after"]}
    stamps = [record.data["properties"]["hs_lastmodifieddate"] for record in records]
    newest = max(stamps, key=lambda text: dt.datetime.fromisoformat(text))
    assert options["cursor_out"] == {"value": newest}


def test_hubspot_search_repeated_after(api: FakeAPI, tmp_path: Path) -> None:
    (search,) = recorded_calls("hubspot/tests/search-deals.test.json", "post", SEARCH)
    api.route("POST", SEARCH, json_reply(search["response"]))
    records, errors = read_all(http_system(api.url, "deals", hubspot_search_stream()),
                               "deals", tmp_path)
    assert [error.code for error in errors] == ["http_pagination_loop"]
    assert "'5'" in errors[0].message
    assert len(api.received()) == 2
    assert len(records) == 2 * len(search["response"]["results"])


def test_hubspot_deals_string_amounts_and_nulls(api: FakeAPI, tmp_path: Path) -> None:
    calls = recorded_calls("hubspot/tests/deals.test.json", "get", DEALS)
    serve(api, "GET", DEALS, calls)
    spec = {"path": DEALS, "query": calls[0]["request"]["params"], "records": "results",
            "pagination": {"type": "cursor", "next": "paging.next.after",
                           "param": "after"},
            "fields": {"id": "string", "properties.amount": "string",
                       "properties.closedate": "datetime",
                       "properties.description": "string"}}
    records, errors = read_all(http_system(api.url, "deals", spec), "deals", tmp_path)
    assert errors == []
    raw = calls[0]["response"]["results"]
    assert len(records) == len(raw) == 21
    amount = converter("decimal")
    closes = converter("datetime")
    amounts = [amount(value_at(record, "properties.amount")) for record in records]
    assert amounts.count(None) == sum(1 for deal in raw
                                      if deal["properties"]["amount"] is None) == 8
    for record, value in zip(records, amounts, strict=True):
        text = value_at(record, "properties.amount")
        if text is not None:
            assert isinstance(value, decimal.Decimal)
            assert str(value) == text  # "5000.00" keeps its two decimals
    assert decimal.Decimal("5000.00") in amounts
    for record in records:
        close = closes(value_at(record, "properties.closedate"))
        assert close is None or close.tzinfo is not None


def test_hubspot_long_decimal_probabilities(api: FakeAPI, tmp_path: Path) -> None:
    body = json.loads((TEMPLATES / "hubspot/mocks/nango/get/proxy/crm/v3/objects/deals/"
                       "deals.json").read_text(encoding="utf-8"))
    api.route("GET", DEALS, json_reply(body))
    spec = {"path": DEALS, "records": "results",
            "fields": {"properties.hs_deal_stage_probability": "string"}}
    records, errors = read_all(http_system(api.url, "deals", spec), "deals", tmp_path)
    assert errors == []
    assert len(records) == len(body["results"]) == 14
    probability = converter("decimal")
    values = [probability(value_at(r, "properties.hs_deal_stage_probability"))
              for r in records]
    longest = "0.90000000000000002220446049250313080847263336181640625"
    assert values[0] == decimal.Decimal(longest)
    assert str(values[0]) == longest
    assert decimal.Decimal("1.000000") in values


# --- Salesforce and Pipedrive ------------------------------------------------------

def test_salesforce_soql_query(api: FakeAPI, tmp_path: Path) -> None:
    endpoint = "/services/data/v59.0/query"
    calls = recorded_calls("salesforce/tests/opportunities.test.json", "get", endpoint)
    serve(api, "GET", endpoint, calls)
    spec = {"path": endpoint, "query": calls[0]["request"]["params"],
            "records": "records",
            "pagination": {"type": "next_url", "next": "nextRecordsUrl",
                           "last": "done"},
            "fields": {"Id": "string", "Amount": "decimal", "CloseDate": "date",
                       "SystemModstamp": "datetime"}}
    records, errors = read_all(http_system(api.url, "opportunities", spec),
                               "opportunities", tmp_path)
    assert errors == []
    assert len(records) == calls[0]["response"]["totalSize"] == 31
    assert api.received()[0].param("q").startswith("SELECT Id, Name, Amount")
    first = records[0]
    assert converter("decimal")(first.data["Amount"]) == decimal.Decimal(15000)
    assert converter("date")(first.data["CloseDate"]) == dt.date(2026, 3, 8)
    stamp = converter("datetime")(first.data["SystemModstamp"])
    assert stamp == dt.datetime(2026, 5, 1, 7, 25, 37, tzinfo=dt.UTC)


def test_pipedrive_additional_data_pagination(api: FakeAPI, tmp_path: Path) -> None:
    calls = recorded_calls("pipedrive/tests/deals.test.json", "get", "/v1/deals")
    serve(api, "GET", "/v1/deals", calls)
    params = dict(calls[0]["request"]["params"])
    params.pop("limit")
    more = "additional_data.pagination.more_items_in_collection"
    spec = {"path": "/v1/deals", "query": params, "records": "data",
            "pagination": {"type": "offset", "param": "start", "limit": 100,
                           "more": more},
            "fields": {"id": "integer", "title": "string", "value": "decimal",
                       "currency": "string", "update_time": "datetime"}}
    records, errors = read_all(http_system(api.url, "deals", spec), "deals", tmp_path)
    assert errors == []
    assert len(records) == len(calls[0]["response"]["data"]) == 8
    (request,) = api.received()
    assert (request.param("start"), request.param("limit")) == ("0", "100")
    values = [converter("decimal")(record.data["value"]) for record in records]
    assert values.count(decimal.Decimal(25000)) == 2
    updated = converter("datetime", timezone="UTC")(records[0].data["update_time"])
    assert updated == dt.datetime(2026, 5, 15, 10, 6, 38, tzinfo=dt.UTC)


# --- project tools -----------------------------------------------------------------

def test_asana_tasks_per_project(api: FakeAPI, tmp_path: Path) -> None:
    calls = recorded_calls("asana/tests/tasks.test.json", "get", "/api/1.0/tasks")
    serve(api, "GET", "/api/1.0/tasks", calls)
    total = 0
    due_dates = []
    for call in calls:
        spec = {"path": "/api/1.0/tasks", "query": call["request"]["params"],
                "records": "data",
                "pagination": {"type": "next_url", "next": "next_page.uri"},
                "fields": {"gid": "string", "name": "string", "completed": "boolean",
                           "due_on": "date", "modified_at": "datetime"}}
        records, errors = read_all(http_system(api.url, "tasks", spec), "tasks",
                                   tmp_path)
        assert errors == []
        assert len(records) == len(call["response"]["data"])
        total += len(records)
        due_dates += [converter("date")(r.data["due_on"]) for r in records]
    assert total == 17
    assert len(api.received()) == len(calls) == 11
    assert dt.date(2025, 9, 25) in due_dates
    assert due_dates.count(None) == sum(task["due_on"] is None for call in calls
                                        for task in call["response"]["data"])


def clickup_lists() -> list[tuple[str, list[dict[str, Any]]]]:
    document = json.loads((TEMPLATES / "clickup/tests/tasks.test.json")
                          .read_text(encoding="utf-8"))
    return [(endpoint, calls if isinstance(calls, list) else [calls])
            for endpoint, calls in document["api"]["get"].items()
            if endpoint.endswith("/task")]


def test_clickup_tasks_names_and_due_dates(api: FakeAPI, tmp_path: Path) -> None:
    lists = clickup_lists()
    names: list[str] = []
    dues: list[dt.datetime | None] = []
    name = converter("string", normalize=[Normalizer(op="strip_invisible")])
    due = converter("datetime")
    for endpoint, calls in lists:
        serve(api, "GET", endpoint, calls)
        spec = {"path": endpoint,
                "query": {"subtasks": "true", "include_closed": "true"},
                "records": "tasks",
                "pagination": {"type": "page", "start": 0, "last": "last_page"},
                "fields": {"id": "string", "name": "string",
                           "due_date": {"type": "string", "optional": True},
                           "date_updated": "string"}}
        records, errors = read_all(http_system(api.url, "tasks", spec), "tasks",
                                   tmp_path)
        assert errors == []
        names += [name(record.data["name"]) for record in records]
        dues += [due(record.data["due_date"]) for record in records]
    assert len(names) == 16
    assert len(api.received()) == len(lists)
    assert [r.param("page") for r in api.received()] == ["0"] * len(lists)
    assert "Task 1" in names
    assert not any("\u200e" in text for text in names)
    assert "🧠 Work Smarter with ClickUp AI" in names
    assert dt.datetime(2026, 5, 23, 7, 59, 55, 463000, tzinfo=dt.UTC) in dues
    assert all(moment is None or moment.utcoffset() == dt.timedelta(0)
               for moment in dues)
    assert sum(moment is not None for moment in dues) == 6


def test_clickup_cursor_on_ms_strings(api: FakeAPI, tmp_path: Path) -> None:
    endpoint, calls = next((e, c) for e, c in clickup_lists()
                           if len(c[0]["response"]["tasks"]) == 6)
    serve(api, "GET", endpoint, calls)
    spec = {"path": endpoint, "query": {"subtasks": "true", "include_closed": "true"},
            "records": "tasks", "pagination": {"type": "page", "start": 0,
                                               "last": "last_page"},
            "cursor": {"field": "date_updated"}}
    stamps = sorted(int(task["date_updated"]) for task in calls[0]["response"]["tasks"])
    options: dict[str, Any] = {"cursor": str(stamps[2]), "cursor_out": {}}
    records, errors = read_all(http_system(api.url, "tasks", spec), "tasks", tmp_path,
                               **options)
    assert errors == []
    assert len(records) == 4  # the two updated before the stored cursor are skipped
    assert options["cursor_out"] == {"value": str(stamps[-1])}


def test_jira_search_jql(api: FakeAPI, tmp_path: Path) -> None:
    document = json.loads((TEMPLATES / "jira/tests/issues.test.json")
                          .read_text(encoding="utf-8"))
    (endpoint,) = document["api"]["get"]
    calls = recorded_calls("jira/tests/issues.test.json", "get", endpoint)
    serve(api, "GET", endpoint, calls)
    request = calls[0]["request"]
    spec = {"path": endpoint, "query": request["params"], "headers": request["headers"],
            "records": "issues",
            "pagination": {"type": "cursor", "next": "nextPageToken",
                           "param": "nextPageToken", "last": "isLast"},
            "fields": {"id": "string", "key": "string", "fields.summary": "string",
                       "fields.status.name": "string", "fields.created": "datetime",
                       "fields.updated": "datetime"}}
    records, errors = read_all(http_system(api.url, "issues", spec), "issues", tmp_path)
    assert errors == []
    assert len(records) == len(calls[0]["response"]["issues"]) == 16
    (received,) = api.received()
    assert received.headers["x-atlassian-token"] == "no-check"
    assert received.param("jql") == 'updated >= "1970-01-01" ORDER BY updated ASC'
    assert value_at(records[0], "fields.created") == "2026-04-28T15:33:15.438+0200"
    created = converter("datetime")(value_at(records[0], "fields.created"))
    assert created == dt.datetime(2026, 4, 28, 13, 33, 15, 438000, tzinfo=dt.UTC)


def test_trello_board_cards(api: FakeAPI, tmp_path: Path) -> None:
    """Read each board's cards as one page, as the recordings hold them.

    Trello's board cards endpoint returns at most ``limit`` cards and pages
    back in time with ``before`` (a card id), not with a page number. syncplan
    has no paginator that takes the next ``before`` from the last record, so
    the stream asks for one page of ``limit`` cards. Each recording is one
    response with fewer cards than its limit, so that page holds the whole
    board. The recorder also sent ``page=0``, which the endpoint does not
    document, so the server here matches on ``filter`` and ``limit`` only.
    """
    document = json.loads((TEMPLATES / "trello/tests/cards.test.json")
                          .read_text(encoding="utf-8"))
    boards = [endpoint for endpoint in document["api"]["get"]
              if endpoint.endswith("/cards")]
    counts = []
    for endpoint in boards:
        calls = recorded_calls("trello/tests/cards.test.json", "get", endpoint)
        (call,) = calls
        limit = int(call["request"]["params"]["limit"])
        assert len(call["response"]) < limit  # the whole board is in this page

        def answer(request: Received, calls: list[dict[str, Any]] = calls) -> Reply:
            return matching_call(calls, request, ignored=("page",))

        api.route("GET", endpoint, answer)
        spec = {"path": endpoint, "query": {"filter": "all", "limit": limit},
                "records": "",
                "fields": {"id": "string", "name": "string", "idList": "string",
                           "dateLastActivity": "datetime", "due": "datetime"}}
        records, errors = read_all(http_system(api.url, "cards", spec), "cards",
                                   tmp_path)
        assert errors == []
        counts.append(len(records))
        if records:
            last_activity = converter("datetime")(records[0].data["dateLastActivity"])
            assert last_activity.tzinfo is not None
    assert counts == [10, 0, 0, 0]
    for endpoint in boards:
        (received,) = api.received(path=endpoint)
        assert received.param("limit") == "100"
        assert received.param("filter") == "all"
        assert received.param("page") is None


# --- Google ------------------------------------------------------------------------

def test_google_calendar_empty_page_with_token(api: FakeAPI, tmp_path: Path) -> None:
    endpoint = "/calendar/v3/calendars/primary/events"
    (listing,) = recorded_calls("google-calendar/tests/list-events.test.json", "get",
                                endpoint)
    instances_file = "google-calendar/tests/get-event-instances.test.json"
    instances_document = json.loads((TEMPLATES / instances_file)
                                    .read_text(encoding="utf-8"))
    (instances_endpoint,) = instances_document["api"]["get"]
    (instances,) = recorded_calls(instances_file, "get", instances_endpoint)
    token = listing["response"]["nextPageToken"]
    assert listing["response"]["items"] == []

    # The recorded instances body, which has items and no nextPageToken, is
    # served as the page that follows the empty one.
    api.route("GET", endpoint, lambda request: json_reply(
        instances["response"] if request.param("pageToken") == token
        else listing["response"]))
    spec = {"path": endpoint, "query": listing["request"]["params"], "records": "items",
            "pagination": {"type": "cursor", "next": "nextPageToken",
                           "param": "pageToken"},
            "fields": {"id": "string", "status": "string", "start.dateTime": "datetime",
                       "location": {"type": "string", "optional": True}}}
    records, errors = read_all(http_system(api.url, "events", spec), "events",
                               tmp_path)

    assert errors == []
    assert len(records) == len(instances["response"]["items"]) == 4
    assert [r.param("pageToken") for r in api.received()] == [None, token]
    assert [r.param("maxResults") for r in api.received()] == ["5", "5"]
    assert records[0].position == "events page 2 item 1"
    assert value_at(records[0], "start.dateTime") == "2026-03-15T10:00:00-03:00"
    start = converter("datetime")(value_at(records[0], "start.dateTime"))
    assert start == dt.datetime(2026, 3, 15, 13, 0, tzinfo=dt.UTC)


def test_google_calendar_instances(api: FakeAPI, tmp_path: Path) -> None:
    relative = "google-calendar/tests/get-event-instances.test.json"
    document = json.loads((TEMPLATES / relative).read_text(encoding="utf-8"))
    (endpoint,) = document["api"]["get"]
    calls = recorded_calls(relative, "get", endpoint)
    serve(api, "GET", endpoint, calls)
    spec = {"path": endpoint, "records": "items",
            "pagination": {"type": "cursor", "next": "nextPageToken",
                           "param": "pageToken"},
            "fields": {"id": "string", "recurringEventId": "string",
                       "originalStartTime.dateTime": "datetime"}}
    records, errors = read_all(http_system(api.url, "instances", spec), "instances",
                               tmp_path)
    assert errors == []
    assert {record.data["recurringEventId"] for record in records} == {
        "qregmrsft1lsl6bi1p6m5vrgf4"}
    assert len(api.received()) == 1


def test_google_sheets_rows_are_not_objects(api: FakeAPI, tmp_path: Path) -> None:
    relative = "google-sheet/tests/rows.test.json"
    document = json.loads((TEMPLATES / relative).read_text(encoding="utf-8"))
    (endpoint,) = document["api"]["get"]
    body = copy.deepcopy(recorded_calls(relative, "get", endpoint)[0]["response"])
    api.route("GET", endpoint, json_reply(body))
    spec = {"path": endpoint, "records": "values"}
    records, errors = read_all(http_system(api.url, "rows", spec), "rows", tmp_path)
    assert records == []
    assert len(errors) == len(body["values"]) == 31
    assert {error.code for error in errors} == {"http_record_not_object"}
    assert "a list of 6 items, not an object" in errors[0].message
