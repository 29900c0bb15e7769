"""Write canonical records to a REST API: the destination writer of ``http`` systems.

The compiler lowers a destination's ``http`` block into
``DestinationPlan.options["http"]``:

``create``, ``update``
    Request templates ``{method, path, query, headers, body}``. ``path`` is a
    template. ``body`` is a JSON tree whose string leaves are templates. A leaf
    that is a single ``{{ expression }}`` keeps the expression's type, so
    ``"{{ record.amount }}"`` sends a number. Other templates render as text.
``id``
    Selector of the new record's id in the create response, such as
    ``data.gid``.
``idempotency_header``
    Header sent with every create, whose value is derived from the flow, the
    destination and the record key, so a resent create is one create on an API
    that honors such keys.
``lookup``
    ``{method, path, query, body, records, match: {field, value}, id, next,
    param, max_pages}``: how to find a record that a create may already have
    made. It runs when a create fails in a way that may have applied it, before
    anything is resent, and before the create of a key whose last create has no
    recorded outcome. In ``update`` mode it also maps keys that the id map
    lacks.
``depends_on``
    Labels (``system/object``) of earlier destinations of the flow that the
    templates read through ``written``.

Templates run in the spec sandbox (``compiler.plan.make_environment``) and
see ``record`` (the canonical record, limited to the destination's fields and
keys), ``key`` (the record key text), ``id`` (this destination's id of the
record, in ``update``), ``written`` (``{label: id}`` of earlier destinations of
this run), ``flow``, ``run`` and ``now``. ``${env:...}`` and ``${file:...}``
references in templates are resolved once per write and handed to the
template as values, so a record value can never become a reference. In
``path``, ``id``, ``key`` and ``written`` are percent-encoded.

Modes: ``create`` sends the create of each key missing from the id map and
leaves mapped keys alone; ``upsert`` creates or updates; ``update`` updates
mapped keys and reports ``key_not_found`` for the others. The id map
(``StateStore.set_remote_id``) is written as soon as a create succeeds, so a
rerun does not create again. With ``lookup``, each key is also marked pending
in the ``http_writes`` table of the state file before its create is sent, and
the mark is cleared once the id is stored or the API rejected the create. A
process that dies in between (after the API applied the create, before the id
was stored) leaves the mark, so the next run looks the record up before it
creates anything. Without ``lookup`` or ``idempotency_header``, such a crash
can create the record a second time on the next run. A hash of the last update
request per key is kept in ``http_writes`` too, and an update whose request has
the same hash is counted ``unchanged`` and not sent.

Requests go only to the origin of ``base_url`` and never follow a redirect.
Retries of 429, 5xx and transport failures, ``Retry-After`` and the deadline
are those of ``runtime.http.send`` under the flow's ``on_error.retry``, paced by
the token bucket of the system in ``BucketRegistry.shared()``. A 401 gets one
credential refresh (OAuth2); a second 401 fails the destination. Any other
status outside 2xx becomes an error record for that record, and the run goes
on. Headers are never logged, and credential values are masked in messages.
The first problems of single records are logged on
``runtime.destinations.http.records``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from jinja2 import TemplateError, Undefined

from compiler.plan import (
    DestinationPlan,
    FlowPlan,
    SystemPlan,
    make_environment,
)
from runtime.destinations import (
    WriteContext,
    WriteProblem,
    WriteResult,
    destination_label,
    register,
)
from runtime.http import (
    AmbiguousWrite,
    AmbiguousWriteApplied,
    BucketRegistry,
    HTTPFailure,
    TokenBucket,
    flow_retry_policy,
    redact_url,
    send,
)
from runtime.pipeline import key_string
from runtime.references import UnresolvedReference, resolve
from runtime.sheets.base import BackendError
from runtime.sources.base import SourceUnavailable
from runtime.sources.http.auth import Authenticator, AuthFailed, build_authenticator
from runtime.sources.http.client import masked_secrets
from runtime.sources.http.selectors import Selector, SelectorSyntaxError
from runtime.sources.http.settings import origin_of
from runtime.values import to_json_value

__all__ = ["HttpWriter", "idempotency_value"]

logger = logging.getLogger(__name__)
# The problems of single records have a logger of their own, so that a command
# that prints the error records itself can leave out these copies.
record_logger = logging.getLogger(__name__ + ".records")

DEFAULT_TIMEOUT = (10.0, 60.0)
WRITE_METHODS = ("POST", "PUT", "PATCH")
LOOKUP_METHODS = ("GET", "POST")
DEFAULT_LOOKUP_PAGES = 100
# After this many records in a row whose requests failed for good (retries
# spent, deadline passed), the API is taken to be down. The rest of the records
# are then reported as not sent, instead of each waiting through its retries.
MAX_CONSECUTIVE_FAILURES = 3
# How much of an error response's body goes into an error record.
MAX_BODY_TEXT = 200
# How many record problems are logged one by one before only their count is.
MAX_LOGGED_PROBLEMS = 5
# Hashes of sent requests are stored in batches, because losing the last batch
# to a crash only costs one repeated update per key.
HASH_BATCH = 500
# The id a dry run reports for a record it would create.
DRY_RUN_ID = "(created by this run)"

_REFERENCE = re.compile(r"\$\{(?:env|file):[^}]*\}")
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<inner>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)
_ENV = make_environment()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS http_writes (
    system TEXT NOT NULL,
    object TEXT NOT NULL,
    record_key TEXT NOT NULL,
    request_hash TEXT,
    pending INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (system, object, record_key)
);
"""


class _Invalid(Exception):
    """The destination's options are invalid; the message names the setting."""


class _Skip(Exception):
    """One record cannot be written; carries the problem for its error record."""

    def __init__(self, code: str, message: str, raw: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.raw = raw


class _Outage(_Skip):
    """A record failed without a usable response from the API, which may be down."""


class _LookupFailed(Exception):
    """The lookup could not tell whether the record exists."""


# --------------------------------------------------------------------------
# Templates


class _Leaf:
    """One compiled string of a request: constant text, a template or an expression."""

    def __init__(self, text: str, references: list[str]) -> None:
        source = _REFERENCE.sub(lambda match: _reference_slot(match, references), text)
        self.constant: str | None = None
        self._expression = None
        self._template = None
        single = _SINGLE_EXPRESSION.match(source)
        if "{{" not in source and "{%" not in source:
            self.constant = source
        elif single is not None:
            self._expression = _ENV.compile_expression(single.group("inner"),
                                                       undefined_to_none=False)
        else:
            self._template = _ENV.from_string(source)

    def render(self, variables: Mapping[str, Any]) -> Any:
        if self.constant is not None:
            return self.constant
        if self._expression is not None:
            value = self._expression(**variables)
            if isinstance(value, Undefined):
                str(value)  # StrictUndefined raises here, naming the missing name
            return value
        assert self._template is not None
        return self._template.render(**variables)


def _reference_slot(match: re.Match[str], references: list[str]) -> str:
    references.append(match.group())
    return f"{{{{ references[{len(references) - 1}] }}}}"


def _compile_tree(value: Any, references: list[str]) -> Any:
    if isinstance(value, str):
        return _Leaf(value, references)
    if isinstance(value, dict):
        return {str(name): _compile_tree(item, references)
                for name, item in value.items()}
    if isinstance(value, list):
        return [_compile_tree(item, references) for item in value]
    return value


def _render_tree(tree: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(tree, _Leaf):
        return _json_value(tree.render(variables))
    if isinstance(tree, dict):
        return {name: _render_tree(item, variables) for name, item in tree.items()}
    if isinstance(tree, list):
        return [_render_tree(item, variables) for item in tree]
    return tree


def _json_value(value: Any) -> Any:
    """Return a rendered value as JSON: decimals as numbers, dates as ISO text."""
    if isinstance(value, bool) or value is None or isinstance(value, int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(name): _json_value(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return to_json_value(value)
    raise TypeError(f"a template produced {type(value).__name__} {value!r}, which"
                    " JSON cannot carry; render it as text with a filter such as"
                    " | string")


@dataclass(frozen=True)
class _RequestTemplate:
    method: str
    path: _Leaf
    query: dict[str, Any]
    headers: dict[str, Any]
    body: Any


@dataclass(frozen=True)
class _Request:
    """One rendered request: the URL without query, its query, headers and body."""

    method: str
    url: str
    params: dict[str, Any] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    body: Any = field(repr=False)

    def digest(self) -> str:
        text = json.dumps([self.method, self.url, self.params, self.body],
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def target(self) -> str:
        return f"{self.method} {_without_query(self.url)}"


@dataclass(frozen=True)
class _Lookup:
    request: _RequestTemplate
    records: Selector
    match_field: Selector
    match_value: _Leaf
    id: Selector
    next: Selector | None
    param: str | None
    max_pages: int


@dataclass(frozen=True)
class _Options:
    create: _RequestTemplate | None
    update: _RequestTemplate | None
    id: Selector | None
    idempotency_header: str | None
    lookup: _Lookup | None
    depends_on: tuple[str, ...]
    references: tuple[str, ...]


def _parse_options(raw: Any, mode: str) -> _Options:
    if not isinstance(raw, dict):
        raise _Invalid("the destination has no `http` settings; add `http: {create:"
                       " {method: POST, path: /items, body: {...}}, id: id}`")
    references: list[str] = []
    create = _parse_request(raw.get("create"), "create", WRITE_METHODS, references)
    update = _parse_request(raw.get("update"), "update", WRITE_METHODS, references)
    if mode in ("create", "upsert") and create is None:
        raise _Invalid(f"mode {mode!r} needs `http.create`")
    if mode in ("upsert", "update") and update is None:
        raise _Invalid(f"mode {mode!r} needs `http.update`")
    if mode not in ("create", "upsert", "update"):
        raise _Invalid(f"mode {mode!r} is not supported by http destinations; use"
                       " create, upsert or update")
    id_selector = _parse_selector(raw.get("id"), "id") if create is not None else None
    header = raw.get("idempotency_header")
    if header is not None and (not isinstance(header, str) or not header):
        raise _Invalid(f"`http.idempotency_header` must be a header name such as"
                       f" 'Idempotency-Key', got {header!r}")
    lookup = _parse_lookup(raw.get("lookup"), references)
    depends_on = tuple(str(label) for label in raw.get("depends_on", []))
    return _Options(create, update, id_selector, header, lookup, depends_on,
                    tuple(references))


def _parse_request(raw: Any, name: str, methods: tuple[str, ...],
                   references: list[str]) -> _RequestTemplate | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
        raise _Invalid(f"`http.{name}` must be {{method, path, body}}, got {raw!r}")
    method = str(raw.get("method", "POST")).upper()
    if method not in methods:
        raise _Invalid(f"`http.{name}.method` must be one of {', '.join(methods)},"
                       f" got {raw.get('method')!r}")
    for part in ("query", "headers"):
        if not isinstance(raw.get(part, {}), dict):
            raise _Invalid(f"`http.{name}.{part}` must map names to values, got"
                           f" {raw.get(part)!r}")
    try:
        return _RequestTemplate(
            method=method,
            path=_Leaf(raw["path"], references),
            query=_compile_tree(raw.get("query", {}), references),
            headers=_compile_tree(raw.get("headers", {}), references),
            body=_compile_tree(raw.get("body"), references),
        )
    except TemplateError as exc:
        raise _Invalid(f"a template of `http.{name}` does not compile: {exc}") from None


def _parse_selector(raw: Any, name: str) -> Selector:
    try:
        return Selector(raw)
    except SelectorSyntaxError as exc:
        raise _Invalid(f"`http.{name}`: {exc}") from None


def _parse_lookup(raw: Any, references: list[str]) -> _Lookup | None:
    if raw is None:
        return None
    request = _parse_request(raw, "lookup", LOOKUP_METHODS, references)
    assert request is not None
    match = raw.get("match")
    if not isinstance(match, dict) or not isinstance(match.get("value"), str):
        raise _Invalid("`http.lookup.match` must be {field: PATH, value: TEMPLATE},"
                       f" got {match!r}")
    next_selector = raw.get("next")
    max_pages = raw.get("max_pages", DEFAULT_LOOKUP_PAGES)
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
        raise _Invalid(f"`http.lookup.max_pages` must be a positive integer, got"
                       f" {max_pages!r}")
    return _Lookup(
        request=request,
        records=_parse_selector(raw.get("records", ""), "lookup.records"),
        match_field=_parse_selector(match.get("field"), "lookup.match.field"),
        match_value=_Leaf(match["value"], references),
        id=_parse_selector(raw.get("id", "id"), "lookup.id"),
        next=None if next_selector is None else _parse_selector(next_selector,
                                                                "lookup.next"),
        param=raw.get("param"),
        max_pages=max_pages,
    )


# --------------------------------------------------------------------------
# Settings of the system


def _parse_timeout(value: Any) -> tuple[float, float]:
    if value is None:
        return DEFAULT_TIMEOUT
    if _is_number(value) and value > 0:
        return float(value), float(value)
    if isinstance(value, dict) and set(value) <= {"connect", "read"}:
        connect = value.get("connect", DEFAULT_TIMEOUT[0])
        read = value.get("read", DEFAULT_TIMEOUT[1])
        if _is_number(connect) and _is_number(read) and connect > 0 and read > 0:
            return float(connect), float(read)
    raise _Invalid("`timeout` must be a positive number of seconds, or {connect:"
                   f" SECONDS, read: SECONDS}}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def idempotency_value(flow_id: str, label: str, key: str) -> str:
    """Return the idempotency key of one record's create: the same on every run."""
    text = f"{flow_id}\x1f{label}\x1f{key}"
    return "syncplan-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _without_query(url: str) -> str:
    parts = urlsplit(redact_url(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


# --------------------------------------------------------------------------
# State: request hashes and unsettled creates


class _WriteLog:
    """The ``http_writes`` table: last update hash and unsettled creates per key."""

    def __init__(self, state: Any, system: str, object_name: str,
                 dry_run: bool) -> None:
        self._state = state
        self._system = system
        self._object = object_name
        self._dry_run = dry_run
        self._hashes: dict[str, str | None] = {}
        self.pending: set[str] = set()
        self._unsaved: dict[str, str] = {}
        with state.transaction() as db:
            db.execute(_SCHEMA)
            rows = db.execute("SELECT record_key, request_hash, pending FROM"
                              " http_writes WHERE system = ? AND object = ?",
                              (system, object_name)).fetchall()
        for key, digest, pending in rows:
            self._hashes[key] = digest
            if pending:
                self.pending.add(key)

    def digest(self, key: str) -> str | None:
        return self._hashes.get(key)

    def remember(self, key: str, digest: str) -> None:
        self._hashes[key] = digest
        self._unsaved[key] = digest
        self.pending.discard(key)
        if len(self._unsaved) >= HASH_BATCH:
            self.flush()

    def mark_pending(self, key: str, pending: bool) -> None:
        """Store at once whether a create of ``key`` may have applied unrecorded."""
        if self._dry_run:
            return
        if pending:
            self.pending.add(key)
        else:
            self.pending.discard(key)
        with self._state.transaction() as db:
            db.execute("INSERT INTO http_writes (system, object, record_key, pending)"
                       " VALUES (?, ?, ?, ?) ON CONFLICT (system, object, record_key)"
                       " DO UPDATE SET pending = excluded.pending",
                       (self._system, self._object, key, int(pending)))

    def flush(self) -> None:
        if self._dry_run or not self._unsaved:
            self._unsaved.clear()
            return
        rows = [(self._system, self._object, key, digest)
                for key, digest in self._unsaved.items()]
        with self._state.transaction() as db:
            db.executemany("INSERT INTO http_writes (system, object, record_key,"
                           " request_hash, pending) VALUES (?, ?, ?, ?, 0)"
                           " ON CONFLICT (system, object, record_key) DO UPDATE SET"
                           " request_hash = excluded.request_hash, pending = 0", rows)
        self._unsaved.clear()


# --------------------------------------------------------------------------
# The writer


class HttpWriter:
    """The ``DestinationWriter`` of ``http`` systems; one per destination and run.

    ``system`` has its top-level settings resolved already (the runner does
    that); ``system.auth`` keeps its references, resolved just before use.
    """

    def __init__(self, system: SystemPlan, root: Path) -> None:
        self.system = system
        self.root = root
        self.requests_sent = 0

    def write(self, flow: FlowPlan, destination: DestinationPlan,
              records: list[tuple[str, Mapping[str, Any]]],
              context: WriteContext) -> WriteResult:
        """Write ``records`` as the module docstring describes; see ``WriteResult``.

        Raises ``BackendError`` when the destination cannot be written at all:
        invalid settings, credentials that cannot be obtained or are rejected.
        """
        label = destination_label(destination)
        where = f"http destination {label}"
        try:
            options = _parse_options(destination.options.get("http"), destination.mode)
            base_url = self.system.settings.get("base_url")
            if not isinstance(base_url, str) or origin_of(base_url) is None:
                raise _Invalid(f"`base_url` of system {self.system.id!r} must be an"
                               f" absolute http or https URL, got {base_url!r}")
            timeout = _parse_timeout(self.system.settings.get("timeout"))
            references = [resolve(text, self.root) for text in options.references]
        except (_Invalid, UnresolvedReference) as exc:
            raise BackendError(f"{where}: {exc}") from None
        session = context.options.get("http_session")
        owns_session = session is None
        if session is None:
            session = requests.Session()
        run = _DestinationRun(self, flow, destination, context, options,
                              base_url, timeout, references, session)
        try:
            return run.write(records)
        finally:
            self.requests_sent += run.requests_sent
            if owns_session:
                session.close()


class _DestinationRun:
    """The state of one write of one destination: ids, hashes, counts, problems."""

    def __init__(self, writer: HttpWriter, flow: FlowPlan,
                 destination: DestinationPlan, context: WriteContext,
                 options: _Options, base_url: str, timeout: tuple[float, float],
                 references: list[str], session: requests.Session) -> None:
        self.system = writer.system
        self.flow = flow
        self.destination = destination
        self.context = context
        self.options = options
        self.base_url = base_url
        self.origin = origin_of(base_url)
        self.timeout = timeout
        self.references = references
        self.session = session
        self.label = destination_label(destination)
        self.mode = destination.mode
        self.key_fields = list(destination.key or destination.idempotency_key)
        self.fields = ({column.field for column in destination.columns}
                       | set(self.key_fields))
        self.policy = (context.options.get("http_retry_policy")
                       or flow_retry_policy(flow.on_error.retry))
        self.sleep: Callable[[float], None] = context.options.get("http_sleep") \
            or time.sleep
        self.bucket = self._bucket()
        self.dry_run = context.dry_run
        self.result = WriteResult(location=_without_query(base_url).rstrip("/"))
        self.requests_sent = 0
        self.logged_problems = 0
        self.auth = self._authenticator(writer.root)
        self.ids: dict[str, str] = dict(context.state.remote_ids(self.system.id,
                                                                 destination.object))
        self.log = _WriteLog(context.state, self.system.id, destination.object,
                             self.dry_run)

    # --- setup ----------------------------------------------------------------

    def _bucket(self) -> TokenBucket | None:
        limit = self.system.rate_limit
        if limit is None:
            return None
        registry = self.context.options.get("http_buckets") or BucketRegistry.shared()
        # The same key as the http source's, so that a registry shared with the
        # source paces the reads and the writes of the system as one budget.
        key = f"http:{self.system.id}:{limit.requests}/{limit.per_seconds:g}s"
        return registry.get(key, limit.requests, limit.per_seconds)

    def _authenticator(self, root: Path) -> Authenticator:
        clock = self.context.options.get("http_clock") or time.monotonic
        try:
            return build_authenticator(self.system.auth, system_id=self.system.id,
                                       base_dir=root, post=self._post_token,
                                       clock=clock)
        except SourceUnavailable as exc:
            raise BackendError(f"http destination {self.label}: {exc}") from None

    def _post_token(self, url: str, form: dict[str, str],
                    basic: tuple[str, str] | None) -> requests.Response:
        try:
            return send(self.session, "POST", url, policy=self.policy,
                        sleep=self.sleep, timeout=self.timeout, allow_redirects=False,
                        data=form, auth=basic, headers={"Accept": "application/json"})
        except HTTPFailure as exc:
            raise AuthFailed(f"the token request failed: {exc}") from None
        except requests.RequestException as exc:
            raise AuthFailed(f"the token request to {_without_query(url)} failed with"
                             f" {type(exc).__name__}") from None

    # --- the record loop --------------------------------------------------------

    def write(self, records: list[tuple[str, Mapping[str, Any]]]) -> WriteResult:
        logger.info("writing %d records to %s at %s (%s)%s", len(records), self.label,
                    self.result.location, self.mode,
                    " (dry run)" if self.dry_run else "")
        failures = 0
        try:
            with masked_secrets(self.auth.secrets()):
                for index, (record_key, record) in enumerate(records):
                    if failures >= MAX_CONSECUTIVE_FAILURES:
                        self._give_up(records[index:])
                        break
                    failures = self._write_record(record_key, record, failures)
        except AuthFailed as exc:
            raise BackendError(f"http destination {self.label}: {exc}") from None
        finally:
            self.log.flush()
        self._log_summary()
        return self.result

    def _write_record(self, record_key: str, record: Mapping[str, Any],
                      failures: int) -> int:
        """Write one record; return the count of failed requests in a row after it."""
        try:
            remote = self._write_one(record_key, record)
        except _Outage as skip:
            self._problem(record_key, skip.code, str(skip), skip.raw)
            return failures + 1
        except _Skip as skip:
            self._problem(record_key, skip.code, str(skip), skip.raw)
            return 0
        if remote is not None:
            self.result.ids[record_key] = remote
        return 0

    def _give_up(self, rest: list[tuple[str, Mapping[str, Any]]]) -> None:
        logger.error("%s: the last %d records failed without a response from the API;"
                     " the other %d records are not sent", self.label,
                     MAX_CONSECUTIVE_FAILURES, len(rest))
        for record_key, _record in rest:
            self.result.problems.append(WriteProblem(
                record_key, "not_sent",
                f"not sent to {self.label}: the {MAX_CONSECUTIVE_FAILURES} records"
                " before it failed without a response from the API, so the run"
                " stopped writing there; rerun the flow once the API responds"))

    def _write_one(self, record_key: str, record: Mapping[str, Any]) -> str | None:
        key = key_string([record.get(name) for name in self.key_fields])
        variables = self._variables(record_key, record)
        remote = self.ids.get(key)
        if remote is None and self._should_look_up(key):
            remote = self._adopt(key, variables)
        if remote is None and self.mode == "update" and self.dry_run \
                and self.options.lookup is not None:
            # A dry run sends no lookup, so a key the lookup may find counts as
            # an update rather than as an error that a real run might not have.
            self.result.updated += 1
            return None
        if remote is None and self.mode == "update":
            raise _Skip("key_not_found", f"{self.label} has no record for key {key!r}"
                        " in the id map, so there is nothing to update; create it"
                        " with mode upsert, or declare `http.lookup` to find it")
        if remote is None:
            return self._create(key, variables)
        return self._update(key, remote, variables)

    def _should_look_up(self, key: str) -> bool:
        if self.options.lookup is None or self.dry_run:
            return False
        return self.mode == "update" or key in self.log.pending

    def _adopt(self, key: str, variables: dict[str, Any]) -> str | None:
        """Look a key up and map it to the record found, if any."""
        try:
            found = self._lookup(variables)
        except _LookupFailed as exc:
            raise _Outage("lookup_failed", f"cannot tell whether {self.label} has a"
                          f" record for key {key!r} already: {exc}; nothing was"
                          " created") from None
        if found is not None:
            logger.info("%s: key %r found as %r by the lookup", self.label, key, found)
            self._map(key, found)
        elif key in self.log.pending:
            self.log.mark_pending(key, False)
        return found

    def _variables(self, record_key: str, record: Mapping[str, Any]) -> dict[str, Any]:
        written = {}
        for label in self.options.depends_on:
            remote = self.context.earlier.get(label, {}).get(record_key)
            if remote is None:
                raise _Skip("dependency_missing", f"{label} has no id for this record"
                            " in this run (its write failed or was skipped), so"
                            f" nothing was sent to {self.label}; it is sent on the"
                            f" run after {label} has the record")
            written[label] = remote
        return {
            "record": {name: record.get(name) for name in self.fields},
            "key": record_key,
            "id": None,
            "written": written,
            "flow": {"id": self.flow.id},
            "run": {"id": self.context.run_id},
            "now": self.context.now,
            "references": self.references,
        }

    # --- create and update ------------------------------------------------------

    def _create(self, key: str, variables: dict[str, Any]) -> str | None:
        assert self.options.create is not None
        request = self._render(self.options.create, variables)

        if self.dry_run:
            self.result.created += 1
            # Later destinations of a dry run see this stand-in, so a write-back
            # counts as one more create instead of a missing dependency.
            return DRY_RUN_ID
        header = self.options.idempotency_header
        if header is not None:
            request.headers[header] = idempotency_value(self.flow.id, self.label, key)

        if self.options.lookup is not None and key not in self.log.pending:
            # Stored before the request goes out, so that a crash after the API
            # applied the create but before its id is stored makes the next run
            # look the record up instead of creating it again.
            self.log.mark_pending(key, True)

        found: dict[str, str] = {}
        try:
            response = self._send(request, idempotent=header is not None,
                                  on_ambiguous=self._ambiguity_check(variables, found))
        except AmbiguousWriteApplied:
            self._map(key, found["id"])
            logger.warning("%s: %s for key %r failed in a way that may have"
                           " applied it, and the lookup found the record it made"
                           " (%r); not sent again", self.label, request.target(), key,
                           found["id"])
            self._remember_update(key, found["id"], variables)
            self.result.created += 1
            return found["id"]
        except (AmbiguousWrite, _LookupFailed, HTTPFailure,
                requests.RequestException) as exc:
            self.log.mark_pending(key, True)
            raise self._create_failure(request, exc) from None

        if _rejected(response.status_code) and key in self.log.pending:
            self.log.mark_pending(key, False)
        document = self._checked_json(request, response)
        remote = self._created_id(request, response, document, key)
        self._map(key, remote)
        self._remember_update(key, remote, variables)
        self.result.created += 1
        return remote

    def _ambiguity_check(self, variables: dict[str, Any], found: dict[str, str]
                         ) -> Callable[[Exception], bool] | None:
        """Return the ``on_ambiguous`` callback of a create: True means resend."""
        if self.options.lookup is None or self.options.idempotency_header is not None:
            return None

        def check(error: Exception) -> bool:
            logger.warning("%s: a create failed with %s and may have applied; looking"
                           " the record up before resending", self.label,
                           type(error).__name__)
            remote = self._lookup(variables)
            if remote is None:
                return True
            found["id"] = remote
            return False

        return check

    def _create_failure(self, request: _Request, exc: Exception) -> _Skip:
        target = request.target()
        if isinstance(exc, AmbiguousWrite):
            return _Outage("ambiguous_write", f"{target} may have created the record"
                           f" in {self.label}: it failed with {_failure_cause(exc)}"
                           " after the request was sent, so it was not resent. If"
                           " the record is there, delete it before the next run,"
                           " which creates it again. Declare `http.lookup` or"
                           " `http.idempotency_header` so that syncplan checks by"
                           " itself")
        if isinstance(exc, _LookupFailed):
            return _Outage("lookup_failed", f"{target} may have applied, and the"
                           f" lookup that should tell failed: {exc}; the next run"
                           " looks the record up again before creating it")
        if isinstance(exc, HTTPFailure):
            return _Outage("request_failed", str(exc))
        return _Outage("request_failed", f"{target} failed with"
                       f" {type(exc).__name__}")

    def _created_id(self, request: _Request, response: requests.Response,
                    document: Any, key: str) -> str:
        assert self.options.id is not None
        found = self.options.id.lookup(document)
        if found.found and found.value not in (None, ""):
            return str(_json_value(found.value))
        self.log.mark_pending(key, True)
        problem = found.problem or f"{self.options.id.text!r} is empty"
        raise _Skip("id_not_found", f"{request.target()} returned HTTP"
                    f" {response.status_code} without an id: {problem}. The record"
                    " was probably created but is not in the id map; fix `http.id`"
                    " and declare `http.lookup`, or the next run creates it again",
                    raw=self._masked(response.text[:MAX_BODY_TEXT]))

    def _update(self, key: str, remote: str, variables: dict[str, Any]) -> str:
        template = self.options.update
        if self.mode == "create" or template is None:
            self.result.unchanged += 1
            return remote
        variables = {**variables, "id": remote}
        request = self._render(template, variables)
        digest = request.digest()
        if self.log.digest(key) == digest:
            self.result.unchanged += 1
            return remote
        if self.dry_run:
            self.result.updated += 1
            return remote
        try:
            response = self._send(request, idempotent=request.method != "POST")
        except (HTTPFailure, requests.RequestException) as exc:
            raise self._update_failure(request, exc) from None
        if response.status_code in (404, 410):
            raise _Skip("remote_not_found", f"{request.target()} returned HTTP"
                        f" {response.status_code}: the record {remote!r} that key"
                        f" {key!r} was created as is gone from {self.label}; restore"
                        " it, or remove the key from the id map to create it again")
        self._checked_json(request, response)
        self.log.remember(key, digest)
        self.result.updated += 1
        return remote

    def _update_failure(self, request: _Request, exc: Exception) -> _Skip:
        if isinstance(exc, HTTPFailure):
            return _Outage("request_failed", str(exc))
        return _Outage("request_failed", f"{request.target()} failed with"
                       f" {type(exc).__name__}")

    def _remember_update(self, key: str, remote: str, variables: dict[str, Any]) -> None:
        """Store the hash of the update the record would get now, after its create.

        The next run then sends an update only when the record (or the update
        template) changed since the create.
        """
        if self.options.update is None:
            return
        try:
            request = self._render(self.options.update, {**variables, "id": remote})
        except _Skip:
            return  # the update will fail visibly when a run first needs it
        self.log.remember(key, request.digest())

    def _map(self, key: str, remote: str) -> None:
        self.ids[key] = remote
        if not self.dry_run:
            self.context.state.set_remote_id(self.system.id, self.destination.object,
                                             key, remote)
        if key in self.log.pending:
            self.log.mark_pending(key, False)

    # --- lookup -------------------------------------------------------------------

    def _lookup(self, variables: dict[str, Any]) -> str | None:
        """Return the id of the record the lookup matches, or None if there is none.

        Raises ``_LookupFailed`` when the outcome is unknown, because treating
        that as "none" would risk a duplicate.
        """
        lookup = self.options.lookup
        assert lookup is not None
        try:
            request = self._render(lookup.request, variables)
            expected = _json_value(lookup.match_value.render(variables))
        except (_Skip, TemplateError, TypeError) as exc:
            raise _LookupFailed(f"its request cannot be rendered: {exc}") from None
        seen: set[str] = set()
        for _page in range(lookup.max_pages):
            items, token = self._lookup_page(request, lookup)
            for item in items:
                value = lookup.match_field.lookup(item)
                if value.found and str(_json_value(value.value)) == str(expected):
                    found = lookup.id.lookup(item)
                    if found.found and found.value not in (None, ""):
                        return str(_json_value(found.value))
            if token is None:
                return None
            if token in seen:
                raise _LookupFailed(f"the next-page token {token[:60]!r} came back"
                                    " twice, so the pages loop")
            seen.add(token)
            request = _with_parameter(request, lookup.param or "offset", token)
        raise _LookupFailed(f"no match in the first {lookup.max_pages} pages; raise"
                            " `http.lookup.max_pages` or narrow its query")

    def _lookup_page(self, request: _Request, lookup: _Lookup
                     ) -> tuple[list[Any], str | None]:
        try:
            response = self._send(request, idempotent=True)
        except (HTTPFailure, requests.RequestException) as exc:
            raise _LookupFailed(f"{request.target()} failed: {exc}") from None
        try:
            document = self._checked_json(request, response)
        except _Skip as exc:
            raise _LookupFailed(str(exc)) from None
        found = lookup.records.lookup(document)
        if not found.found or not isinstance(found.value, list | type(None)):
            raise _LookupFailed(f"`http.lookup.records` {lookup.records.text!r} found"
                                f" no list: {found.problem or 'another value'}")
        items = [item for item in found.value or [] if isinstance(item, dict)]
        token = None
        if lookup.next is not None:
            next_value = lookup.next.lookup(document)
            if next_value.found and next_value.value not in (None, ""):
                token = str(next_value.value)
        return items, token

    # --- requests -----------------------------------------------------------------

    def _render(self, template: _RequestTemplate, variables: dict[str, Any]) -> _Request:
        try:
            path = str(template.path.render(_path_variables(variables)))
            params = _render_tree(template.query, variables)
            headers = {name: str(value) for name, value in
                       _render_tree(template.headers, variables).items()}
            body = _render_tree(template.body, variables)
        except (TemplateError, TypeError, ValueError) as exc:
            raise _Skip("template_error", f"a template of {self.label} failed:"
                        f" {type(exc).__name__}: {exc}") from None
        url = self._url(path)
        return _Request(template.method, url, params, headers, body)

    def _url(self, path: str) -> str:
        url = path if "://" in path else self.base_url.rstrip("/") + "/" + \
            path.lstrip("/")
        if origin_of(url) != self.origin:
            raise _Skip("host_not_allowed", f"the request URL {_without_query(url)!r}"
                        f" is not on the origin of `base_url`"
                        f" {_without_query(self.base_url)!r}, so it was not sent;"
                        " requests go only to the base URL's scheme, host and port")
        return url

    def _send(self, request: _Request, *, idempotent: bool,
              on_ambiguous: Callable[[Exception], bool] | None = None
              ) -> requests.Response:
        response = self._send_once(request, idempotent, on_ambiguous)
        if response.status_code != 401:
            return response
        response.close()
        if not self.auth.refreshable:
            raise AuthFailed(f"{request.target()} returned HTTP 401: the credentials"
                             f" under `auth` of system {self.system.id!r} were"
                             " rejected; check the secret they refer to")
        self.auth.refresh()
        response = self._send_once(request, idempotent, on_ambiguous)
        if response.status_code == 401:
            response.close()
            raise AuthFailed(f"{request.target()} returned HTTP 401 again with a new"
                             " access token; check the client's permissions and"
                             " `auth.scope`")
        return response

    def _send_once(self, request: _Request, idempotent: bool,
                   on_ambiguous: Callable[[Exception], bool] | None
                   ) -> requests.Response:
        headers = {"Accept": "application/json", **request.headers}
        params = dict(request.params)
        data = None
        if request.body is not None:
            headers.setdefault("Content-Type", "application/json")
            data = json.dumps(request.body, separators=(",", ":")).encode("utf-8")
        self.auth.apply(headers, params)
        self.requests_sent += 1
        return send(self.session, request.method, request.url, policy=self.policy,
                    bucket=self.bucket, idempotent=idempotent,
                    on_ambiguous=on_ambiguous, sleep=self.sleep, timeout=self.timeout,
                    allow_redirects=False, headers=headers, params=params, data=data)

    def _checked_json(self, request: _Request, response: requests.Response) -> Any:
        """Return the parsed body of a 2xx response, or raise ``_Skip``."""
        if not 200 <= response.status_code < 300:
            text = self._masked(response.text.strip().replace("\n", " "))
            snippet = f": {text[:MAX_BODY_TEXT]!r}" if text else ""
            advice = ""
            if 300 <= response.status_code < 400:
                advice = ("; redirects are not followed, so that requests stay on the"
                          " origin of `base_url`: fix the path")
            raise _Skip(f"http_{response.status_code}", f"{request.target()} returned"
                        f" HTTP {response.status_code}{snippet}{advice}",
                        raw=text[:MAX_BODY_TEXT] or None)
        if not response.content.strip():
            return None
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError:
            text = self._masked(response.text[:MAX_BODY_TEXT])
            raise _Skip("http_invalid_json", f"{request.target()} returned HTTP"
                        f" {response.status_code} with a body that is not JSON",
                        raw=text) from None

    # --- reporting ----------------------------------------------------------------

    def _masked(self, text: str) -> str:
        for secret in self.auth.secrets():
            text = text.replace(secret, "***")
        return text

    def _problem(self, record_key: str, code: str, message: str, raw: Any) -> None:
        message = self._masked(message)
        self.result.problems.append(WriteProblem(record_key, code, message, raw=raw))
        self.logged_problems += 1
        if self.logged_problems <= MAX_LOGGED_PROBLEMS:
            record_logger.warning("%s: record %r: [%s] %s", self.label, record_key,
                                  code, message)

    def _log_summary(self) -> None:
        result = self.result
        if self.logged_problems > MAX_LOGGED_PROBLEMS:
            record_logger.warning("%s: %d more record problems not logged one by one",
                                  self.label,
                                  self.logged_problems - MAX_LOGGED_PROBLEMS)
        logger.info("%s: %d created, %d updated, %d unchanged, %d problems, %d"
                    " requests", self.label, result.created, result.updated,
                    result.unchanged, len(result.problems), self.requests_sent)


def _failure_cause(exc: HTTPFailure) -> str:
    if exc.last_response is not None:
        return f"HTTP {exc.last_response.status_code}"
    if exc.__cause__ is not None:
        return type(exc.__cause__).__name__
    return "an error"


def _rejected(status: int) -> bool:
    """Tell whether a create's response means the API did not apply it.

    A 409 is left out, because it often means the record exists already, which
    the lookup of the next run can then find and map.
    """
    return 400 <= status < 500 and status != 409


def _path_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """Percent-encode the ids and keys that a path template puts into the URL."""
    encoded = dict(variables)
    for name in ("id", "key"):
        if variables.get(name) is not None:
            encoded[name] = quote(str(variables[name]), safe="")
    encoded["written"] = {label: quote(str(remote), safe="")
                          for label, remote in variables["written"].items()}
    return encoded


def _with_parameter(request: _Request, name: str, value: str) -> _Request:
    """Return the request of the next lookup page: the token in query or body."""
    if request.method == "GET" or not isinstance(request.body, dict):
        return _Request(request.method, request.url, {**request.params, name: value},
                        request.headers, request.body)
    return _Request(request.method, request.url, request.params, request.headers,
                    {**request.body, name: value})


register("http", HttpWriter)
