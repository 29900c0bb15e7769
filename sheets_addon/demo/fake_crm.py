"""A local imitation of the parts of HubSpot's CRM v3 API that the closed-won example uses.

Routes (the shapes follow HubSpot's public CRM v3 reference; only what the
example needs is there):

``POST /oauth/v1/token``
    The refresh-token grant: form fields ``grant_type=refresh_token``,
    ``client_id``, ``client_secret`` and ``refresh_token``. Returns
    ``{access_token, refresh_token, expires_in, token_type}``.
``POST /crm/v3/objects/deals/search``
    ``{filterGroups: [{filters: [{propertyName, operator, value}]}], sorts,
    properties, limit, after}``. Filters are ANDed inside a group and groups
    ORed; operators EQ, NEQ, GT, GTE, LT, LTE, HAS_PROPERTY. Returns
    ``{total, results: [{id, properties, createdAt, updatedAt, archived}],
    paging: {next: {after}}}``; ``paging`` is absent on the last page.
``GET /crm/v3/objects/deals/{id}``, ``PATCH /crm/v3/objects/deals/{id}``
    Read one deal; update its ``properties``.
``POST /crm/v3/objects/notes``
    ``{properties: {hs_note_body, hs_timestamp}, associations: [{to: {id},
    types: [...]}]}``. ``hs_timestamp`` is required and every associated deal
    must exist, else 400. A request with an ``Idempotency-Key`` header that
    was seen before gets the first response again with ``Idempotent-Replayed:
    true``. HubSpot does not document such a header, so the closed-won example
    does not rely on it. This fake honors one so that tests can cover APIs
    that do.
``POST /crm/v3/objects/notes/search``
    The same search as for deals, over notes. Besides note properties, a filter can name
    the pseudo-property ``associations.deal`` with operator EQ and a deal id,
    as HubSpot's CRM search does for associated records. Results carry the
    requested ``properties`` (default ``hs_note_body`` and ``hs_timestamp``)
    and the ones every search returns.

Every route but the token endpoint needs ``Authorization: Bearer TOKEN``
with a token from the token endpoint that has not been expired, or one of
``static_tokens``. Property values are strings, as in HubSpot.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from typing import Any

from sheets_addon.demo.fake_server import Call, FakeServer, Reply

__all__ = ["FakeCrm"]

SEARCH_MAX_LIMIT = 200
NOTE_TO_DEAL_ASSOCIATION = 214
_OPERATORS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "HAS_PROPERTY")
# The filter name of "associated with this deal id" in a search.
_DEAL_ASSOCIATION = "associations.deal"
# Properties every search result carries, whatever ``properties`` requests.
_ALWAYS = ("hs_object_id", "createdate", "hs_lastmodifieddate")
# The properties of search results when the request names none: all of a
# deal's (this fake keeps few), and a note's body and timestamp.
_NO_DEFAULT_PROPERTIES = None
_NOTE_PROPERTIES = ["hs_note_body", "hs_timestamp"]


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeCrm(FakeServer):
    """Deals, notes and OAuth tokens of a HubSpot-like CRM, in memory."""

    name = "fake CRM"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 client_id: str = "demo-client", client_secret: str = "",
                 refresh_token: str = "", static_tokens: tuple[str, ...] = (),
                 seed: int = 7) -> None:
        super().__init__(host, port, seed=seed)
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_hex(8)
        self.refresh_token = refresh_token or secrets.token_hex(8)
        self.static_tokens = set(static_tokens)
        self.access_tokens: set[str] = set()
        self.token_requests = 0
        self.deals: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1001)
        self._replays: dict[str, Reply] = {}
        self.route("POST", "/oauth/v1/token", self._token)
        self.route("POST", "/crm/v3/objects/deals/search", self._search_deals)
        self.route("GET", "/crm/v3/objects/deals/{id}", self._get_deal)
        self.route("PATCH", "/crm/v3/objects/deals/{id}", self._patch_deal)
        self.route("POST", "/crm/v3/objects/notes", self._create_note)
        self.route("POST", "/crm/v3/objects/notes/search", self._search_notes)

    # --- data -----------------------------------------------------------------

    def add_deal(self, **properties: Any) -> str:
        """Add a deal with these properties (stored as text) and return its id."""
        with self.lock:
            deal_id = str(next(self._ids))
            stamp = _now_text()
            values = {name: None if value is None else str(value)
                      for name, value in properties.items()}
            values.update(hs_object_id=deal_id, createdate=stamp,
                          hs_lastmodifieddate=stamp)
            self.deals[deal_id] = {"id": deal_id, "properties": values,
                                   "createdAt": stamp, "updatedAt": stamp,
                                   "archived": False}
            return deal_id

    def update_deal(self, deal_id: str, **properties: Any) -> None:
        """Change properties of a deal, as a salesperson would in the CRM."""
        with self.lock:
            deal = self.deals[deal_id]
            stamp = _now_text()
            deal["properties"].update({name: None if value is None else str(value)
                                       for name, value in properties.items()})
            deal["properties"]["hs_lastmodifieddate"] = stamp
            deal["updatedAt"] = stamp

    def notes_for(self, deal_id: str) -> list[dict[str, Any]]:
        """Return the notes associated with one deal, oldest first."""
        with self.lock:
            return [note for note in self.notes.values()
                    if deal_id in note["associated_deals"]]

    # --- auth -----------------------------------------------------------------

    def authorized(self, call: Call) -> Reply | None:
        if call.route == "POST /oauth/v1/token":
            return None
        header = call.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            valid = token in self.access_tokens or token in self.static_tokens
        if valid:
            return None
        category = "EXPIRED_AUTHENTICATION" if token else "INVALID_AUTHENTICATION"
        return Reply(401, {"status": "error", "category": category,
                           "message": "Authentication credentials not found or"
                           " expired."})

    def expire_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def _token(self, call: Call) -> Reply:
        form = call.form
        with self.lock:
            self.token_requests += 1
            good = (form.get("grant_type") == "refresh_token"
                    and form.get("client_id") == self.client_id
                    and form.get("client_secret") == self.client_secret
                    and form.get("refresh_token") == self.refresh_token)
            if not good:
                return Reply(400, {"status": "BAD_REFRESH_TOKEN",
                                   "message": "missing or unknown refresh token"})
            token = "crm-access-" + secrets.token_hex(12)
            self.access_tokens.add(token)
        return Reply(200, {"access_token": token, "refresh_token": self.refresh_token,
                           "expires_in": 1800, "token_type": "bearer"})

    # --- deals ----------------------------------------------------------------

    def _search_deals(self, call: Call) -> Reply:
        return self._search(call, self.deals, _NO_DEFAULT_PROPERTIES)

    def _search_notes(self, call: Call) -> Reply:
        return self._search(call, self.notes, _NOTE_PROPERTIES)

    def _search(self, call: Call, objects: dict[str, dict[str, Any]],
                default_properties: list[str] | None) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= SEARCH_MAX_LIMIT:
            return _bad_request(f"limit must be 1 to {SEARCH_MAX_LIMIT}, got {limit!r}")
        try:
            after = int(body.get("after") or 0)
        except (TypeError, ValueError):
            return _bad_request(f"after must be a number, got {body.get('after')!r}")
        groups = body.get("filterGroups") or []
        problem = _filter_problem(groups)
        if problem:
            return _bad_request(problem)
        wanted = body.get("properties") or default_properties
        with self.lock:
            found = [item for item in objects.values() if _passes(item, groups)]
            found = _sorted(found, body.get("sorts") or [])
            page = found[after:after + limit]
            results = [_shown(item, wanted) for item in page]
        reply: dict[str, Any] = {"total": len(found), "results": results}
        next_after = after + limit
        if "repeat_cursor" in call.faults and body.get("after"):
            next_after = after
        if next_after < len(found) or "repeat_cursor" in call.faults:
            reply["paging"] = {"next": {"after": str(next_after)}}
        return Reply(200, reply)

    def _get_deal(self, call: Call) -> Reply:
        with self.lock:
            deal = self.deals.get(call.params["id"])
            return Reply(200, _shown(deal, None)) if deal else _not_found("deal")

    def _patch_deal(self, call: Call) -> Reply:
        properties = (call.body or {}).get("properties")
        if not isinstance(properties, dict):
            return _bad_request("the body needs a properties object")
        with self.lock:
            deal = self.deals.get(call.params["id"])
            if deal is None:
                return _not_found("deal")
            stamp = _now_text()
            deal["properties"].update({k: None if v is None else str(v)
                                       for k, v in properties.items()})
            deal["properties"]["hs_lastmodifieddate"] = stamp
            deal["updatedAt"] = stamp
            return Reply(200, _shown(deal, None))

    # --- notes ----------------------------------------------------------------

    def _create_note(self, call: Call) -> Reply:
        key = call.headers.get("idempotency-key")
        with self.lock:
            if key is not None and key in self._replays:
                first = self._replays[key]
                return Reply(first.status, first.body, {"Idempotent-Replayed": "true"})
            reply = self._new_note(call.body if isinstance(call.body, dict) else {})
            if key is not None and reply.status < 300:
                self._replays[key] = reply
            return reply

    def _new_note(self, body: dict[str, Any]) -> Reply:
        properties = body.get("properties")
        if not isinstance(properties, dict) or not properties.get("hs_timestamp"):
            return _bad_request("Property values were not valid: hs_timestamp is"
                                " required")
        deal_ids = []
        for association in body.get("associations") or []:
            target = str(((association or {}).get("to") or {}).get("id", ""))
            if target not in self.deals:
                return _bad_request(f"association target deal {target!r} does not"
                                    " exist")
            deal_ids.append(target)
        note_id = str(next(self._ids))
        stamp = _now_text()
        note = {"id": note_id, "properties": {**{k: str(v) for k, v in
                                                  properties.items()},
                                               "hs_object_id": note_id},
                "createdAt": stamp, "updatedAt": stamp, "archived": False,
                "associated_deals": deal_ids}
        self.notes[note_id] = note
        shown = {k: v for k, v in note.items() if k != "associated_deals"}
        return Reply(201, shown)


def _filter_problem(groups: Any) -> str | None:
    if not isinstance(groups, list):
        return "filterGroups must be a list"
    for group in groups:
        for rule in (group or {}).get("filters") or []:
            if rule.get("operator") not in _OPERATORS:
                return f"unknown operator {rule.get('operator')!r}"
            if rule.get("propertyName") == _DEAL_ASSOCIATION \
                    and rule["operator"] != "EQ":
                return (f"{_DEAL_ASSOCIATION} takes operator EQ only, got"
                        f" {rule['operator']!r}")
    return None


def _passes(item: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
    if not groups:
        return True
    return any(all(_test_item(item, rule) for rule in group.get("filters", []))
               for group in groups)


def _test_item(item: dict[str, Any], rule: dict[str, Any]) -> bool:
    if rule.get("propertyName") == _DEAL_ASSOCIATION:
        return str(rule.get("value")) in item.get("associated_deals", [])
    return _test(item["properties"], rule)


def _test(properties: dict[str, Any], rule: dict[str, Any]) -> bool:
    value = properties.get(rule.get("propertyName"))
    wanted = rule.get("value")
    operator = rule["operator"]
    if operator == "HAS_PROPERTY":
        return value not in (None, "")
    if value is None:
        return operator == "NEQ"
    if operator == "EQ":
        return value == str(wanted)
    if operator == "NEQ":
        return value != str(wanted)
    left, right = _comparable(value), _comparable(wanted)
    return {"GT": left > right, "GTE": left >= right, "LT": left < right,
            "LTE": left <= right}[operator]


def _comparable(value: Any) -> tuple[int, Any]:
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))


def _sorted(deals: list[dict[str, Any]], sorts: list[Any]) -> list[dict[str, Any]]:
    ordered = sorted(deals, key=lambda deal: int(deal["id"]))
    for rule in reversed(sorts):
        name = rule.get("propertyName") if isinstance(rule, dict) else None
        if not name:
            continue
        ordered.sort(key=lambda deal: _comparable(deal["properties"].get(name) or ""),
                     reverse=rule.get("direction") == "DESCENDING")
    return ordered


def _shown(item: dict[str, Any], wanted: Any) -> dict[str, Any]:
    """Return a deal or note as the API shows it, with the ``wanted`` properties."""
    properties = item["properties"]
    if isinstance(wanted, list):
        always = [name for name in _ALWAYS if name in properties and name not in wanted]
        properties = {name: properties.get(name) for name in [*wanted, *always]}
    shown = {name: value for name, value in item.items()
             if name != "associated_deals"}
    return {**shown, "properties": dict(properties)}


def _bad_request(message: str) -> Reply:
    return Reply(400, {"status": "error", "category": "VALIDATION_ERROR",
                       "message": message})


def _not_found(what: str) -> Reply:
    return Reply(404, {"status": "error", "category": "OBJECT_NOT_FOUND",
                       "message": f"{what} not found"})
