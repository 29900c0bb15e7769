"""Read the pages of one ``http`` stream into records and error records.

The package docstring describes the spec and the options. This module contains
the page loop: fetch, parse, select the records, check the declared fields,
follow the cursor, and ask the paginator what comes next.

A read that did not cover the whole stream appends the reason to
``context.incomplete``: a stream that stopped early (a page that failed after
its retries, a repeated next-page token, ``max_pages``), and a read that started
from a stored incremental cursor. The runner then deletes no mirror rows and
keeps the stored records the read did not reach.
"""

from __future__ import annotations

import decimal
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import requests

from compiler.plan import SystemPlan
from runtime.http import BucketRegistry, RetryPolicy, TokenBucket, redact_url
from runtime.sources.base import (
    SourceContext,
    SourceError,
    SourceRecord,
    SourceUnavailable,
)
from runtime.sources.http.auth import AuthFailed, build_authenticator
from runtime.sources.http.client import (
    Fetcher,
    ForeignURL,
    PageRequest,
    RequestFailed,
    masked_secrets,
)
from runtime.sources.http.cursor import CursorTracker
from runtime.sources.http.pagination import (
    EndOfStream,
    NextPage,
    Page,
    Paginator,
    Step,
    make_paginator,
    with_parameter,
)
from runtime.sources.http.selectors import (
    Selector,
    SelectorSyntaxError,
    describe_value,
)
from runtime.sources.http.settings import SystemSettings, parse_settings

__all__ = ["read"]

logger = logging.getLogger(__name__)

# How much of a response body an error record keeps as its raw value.
MAX_RAW_TEXT = 500
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_BUCKETS = BucketRegistry.shared()


class _BodyProblem(Exception):
    """A page body is not the JSON the stream expects."""

    def __init__(self, code: str, message: str, raw: str) -> None:
        super().__init__(message)
        self.code = code
        self.raw = raw


def read(system: SystemPlan, stream: str,
         context: SourceContext) -> Iterator[SourceRecord | SourceError]:
    """Yield the records of one stream of an http system, page by page."""
    settings = parse_settings(system, stream, context.base_dir)
    options = context.options
    session = options.get("http_session")
    owns_session = session is None
    if session is None:
        session = requests.Session()
    policy = options.get("http_retry_policy")
    fetcher = Fetcher(
        settings=settings,
        session=session,
        policy=RetryPolicy() if policy is None else policy,
        bucket=_bucket(system, options),
        sleep=options.get("http_sleep", time.sleep),
    )
    fetcher.auth = build_authenticator(
        system.auth, system_id=system.id, base_dir=context.base_dir,
        post=fetcher.post_token, clock=options.get("http_clock", time.monotonic),
    )
    try:
        with masked_secrets(fetcher.auth.secrets()):
            yield from _StreamReader(settings, fetcher, context).read()
    finally:
        if owns_session:
            session.close()


def _bucket(system: SystemPlan, options: dict[str, Any]) -> TokenBucket | None:
    limit = system.rate_limit
    if limit is None:
        return None
    registry = options.get("http_buckets")
    if registry is None:
        registry = _BUCKETS
    # The limits are part of the key, so a plan reloaded with other limits gets
    # a new bucket instead of a conflict with the old one.
    key = f"http:{system.id}:{limit.requests}/{limit.per_seconds:g}s"
    return registry.get(key, limit.requests, limit.per_seconds)


class _StreamReader:
    """The page loop of one read of one stream."""

    def __init__(self, settings: SystemSettings, fetcher: Fetcher,
                 context: SourceContext) -> None:
        self.settings = settings
        self.stream = settings.stream
        self.fetcher = fetcher
        self.context = context
        self.options = context.options
        self.label = f"http system {settings.system_id!r} stream {self.stream.name!r}"
        self.paginator: Paginator = make_paginator(self.stream.pagination,
                                                   fetcher.check_origin)
        self.cursor = self._cursor_tracker()
        self.records = 0
        self.errors = 0
        self._warned: set[str] = set()

    def _cursor_tracker(self) -> CursorTracker:
        cursor = self.stream.cursor
        field: Selector | None = cursor.field if cursor is not None else None
        override = self.options.get("cursor_field")
        if field is None and isinstance(override, str) and override:
            try:
                field = Selector(override)
            except SelectorSyntaxError as exc:
                raise SourceUnavailable(
                    f"{self.label}: the cursor field: {exc}") from None
        stored = self.options.get("cursor")
        return CursorTracker(cursor, field, None if stored is None else str(stored))

    def read(self) -> Iterator[SourceRecord | SourceError]:
        logger.info("reading %s from %s", self.label, redact_url(self.stream.url))
        request: PageRequest | None = self._first_request()
        number = 0
        complete = True
        while request is not None:
            number += 1
            items, step = self._read_page(number, request)
            for item in items:
                if isinstance(item, SourceRecord):
                    self.records += 1
                else:
                    self.errors += 1
                yield item
            request = None
            if isinstance(step, NextPage):
                request = step.request
            elif isinstance(step, EndOfStream):
                logger.debug("%s ends: %s", self.label, step.reason)
                if not step.complete:
                    complete = False
                    self._stopped_early(step.reason)
            else:
                complete = False
                self._stopped_early(_stop_reason(number, items))
        self._finish(number, complete)

    def _stopped_early(self, reason: str) -> None:
        """Tell the run summary and the runner that pages were left unread."""
        message = f"{self.label} stopped early: {reason}"
        self._warn(message)
        self.context.incomplete.append(message)

    def _first_request(self) -> PageRequest:
        request = PageRequest(self.stream.method, self.stream.url,
                              dict(self.stream.query), self.stream.body)
        try:
            value = self.cursor.request_value()
            cursor = self.stream.cursor
            if value is not None and cursor is not None and cursor.param is not None:
                request = with_parameter(request, cursor.param, value, cursor.location)
            return self.paginator.first_request(request)
        except ValueError as exc:
            raise SourceUnavailable(f"{self.label}: {exc}") from None

    def _read_page(self, number: int, request: PageRequest
                   ) -> tuple[list[SourceRecord | SourceError], Step | None]:
        """Read one page and return its items and the paginator's next step.

        The step is None when the page ended the stream with an error.
        """
        position = f"{self.stream.name} page {number}"
        try:
            response = self.fetcher.fetch(request)
        except (RequestFailed, AuthFailed) as exc:
            if number == 1:
                raise SourceUnavailable(f"{self.label}: {exc}{_advice(exc)}") from None
            return [self._page_error(position, "http_request",
                                     f"page {number} could not be read, so the pages"
                                     f" after it were not read either: {exc}")], None
        except ForeignURL as exc:
            return [self._page_error(position, "http_foreign_url",
                                     f"page {number} was redirected elsewhere: {exc}")
                    ], None
        try:
            document = _parse_body(response, number)
        except _BodyProblem as problem:
            self._warn_shape(str(problem))
            return [self._page_error(position, problem.code, str(problem),
                                     raw=self._masked(problem.raw))], None
        items: list[SourceRecord | SourceError] = []
        records = self._select_records(number, document, items)
        if records is not None:
            items.extend(self._page_items(number, records))
        step = self.paginator.next_step(Page(number, request, response, document,
                                             records))
        if isinstance(step, NextPage | EndOfStream):
            return items, step
        items.append(self._page_error(position, step.code, step.message))
        return items, None

    def _select_records(self, number: int, document: Any,
                        items: list[SourceRecord | SourceError]) -> list[Any] | None:
        selector = self.stream.records
        found = selector.lookup(document)
        problem = None
        value = found.value
        if not found.found:
            problem = (f"the records selector {selector.text!r} found nothing:"
                       f" {found.problem}")
        else:
            if not selector.singular and len(value) == 1 and isinstance(value[0], list):
                value = value[0]
            if value is None:
                value = []
            if not isinstance(value, list):
                problem = (f"the records selector {selector.text!r} found"
                           f" {describe_value(value)}, not a list of records")
        if problem is None:
            return value
        message = f"page {number}: {problem}; check `records` of the stream"
        self._warn_shape(message)
        items.append(self._page_error(f"{self.stream.name} page {number}",
                                      "http_records_selector", message))
        return None

    def _page_items(self, number: int,
                    records: list[Any]) -> Iterator[SourceRecord | SourceError]:
        objects: list[dict[str, Any]] = []
        for index, item in enumerate(records, start=1):
            position = f"{self.stream.name} page {number} item {index}"
            if not isinstance(item, dict):
                yield SourceError(
                    position=position, code="http_record_not_object",
                    message=f"item {index} of page {number} is {describe_value(item)},"
                    " not an object; point `records` at a list of objects",
                    raw=_shown_json(item),
                )
                continue
            objects.append(item)
            if self.cursor.keep(item):
                yield SourceRecord(data=item, position=position)
        yield from self._check_fields(number, objects)

    def _check_fields(self, number: int,
                      objects: list[dict[str, Any]]) -> Iterator[SourceError]:
        if not objects:
            return
        for spec in self.stream.fields:
            if spec.optional:
                continue
            missing = [index for index, item in enumerate(objects, start=1)
                       if not spec.selector.lookup(item).found]
            if not missing:
                continue
            first = objects[missing[0] - 1]
            found = spec.selector.lookup(first).problem
            if len(missing) == len(objects):
                message = (f"declared field {spec.name!r} is missing from all"
                           f" {len(objects)} records of page {number}: {found}")
                self._warn_shape(f"declared field {spec.name!r} is missing: {found}")
            else:
                shown = ", ".join(str(index) for index in missing[:10])
                more = "" if len(missing) <= 10 else f" and {len(missing) - 10} more"
                message = (f"declared field {spec.name!r} is missing from"
                           f" {len(missing)} of {len(objects)} records of page {number}"
                           f" (items {shown}{more}); mark it `optional: true` under"
                           " `fields` if the API leaves it out of some records")
            yield SourceError(position=f"{self.stream.name} page {number}",
                              code="http_field_missing", message=message,
                              field=spec.name, scope="note")

    def _page_error(self, position: str, code: str, message: str,
                    raw: str | None = None) -> SourceError:
        logger.warning("%s: %s", self.label, message)
        return SourceError(position=position, code=code, message=message, raw=raw)

    def _masked(self, text: str) -> str:
        for secret in self.fetcher.auth.secrets():
            text = text.replace(secret, "***")
        return text

    def _warn_shape(self, detail: str) -> None:
        self._warn(f"source changed shape: {self.label}: {detail}")

    def _warn(self, message: str) -> None:
        if message in self._warned:
            return
        self._warned.add(message)
        self.options.setdefault("warnings", []).append(message)

    def _finish(self, pages: int, complete: bool) -> None:
        cursor = self.cursor
        if cursor.stored is not None and (
                cursor.active or cursor.request_value() is not None):
            # Records at or below the stored cursor were left out (by the API or
            # by `keep`), so a record missing from this read may still exist.
            self.context.incomplete.append(
                f"{self.label} was read incrementally, from the stored cursor"
                f" {cursor.stored!r}")
        if cursor.active:
            self._report_cursor(complete)
        logger.info("read %d records and %d errors from %s in %d pages (%d requests,"
                    " not counting retries)",
                    self.records, self.errors, self.label, pages,
                    self.fetcher.requests_sent)

    def _report_cursor(self, complete: bool) -> None:
        cursor = self.cursor
        field = cursor.field.text if cursor.field is not None else ""
        if cursor.skipped:
            logger.info("%s: skipped %d records whose %r is below the stored cursor %r",
                        self.label, cursor.skipped, field, cursor.stored)
        if cursor.missing:
            detail = (f"{cursor.missing} of {cursor.observed} records have no usable"
                      f" cursor value at {field!r}")
            if cursor.missing == cursor.observed:
                self._warn_shape(detail)
            else:
                self._warn(f"{self.label}: {detail}")
        value = cursor.new_value()
        if not complete:
            if value is not None:
                self._warn(f"{self.label}: the cursor was not advanced because the"
                           " stream was not read to its end")
            return
        if value is not None:
            self.options.setdefault("cursor_out", {})["value"] = value
            logger.info("%s: cursor %r advances to %r", self.label, field, value)


def _stop_reason(number: int, items: list[SourceRecord | SourceError]) -> str:
    """Return why page ``number`` ended the stream, from its last error record."""
    errors = [item for item in items if isinstance(item, SourceError)]
    if not errors:
        return f"page {number} ended the stream"
    return f"{errors[-1].message} ({errors[-1].code})"


def _parse_body(response: requests.Response, number: int) -> Any:
    body = response.content
    content_type = response.headers.get("Content-Type", "")
    if not body.strip():
        raise _BodyProblem("http_invalid_json", f"page {number} has an empty body"
                           f" (HTTP {response.status_code}), not JSON", "")
    try:
        return json.loads(body, parse_float=decimal.Decimal,
                          parse_constant=_reject_constant)
    except ValueError as exc:
        raw = body[:MAX_RAW_TEXT].decode("utf-8", "replace")
        if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
            title = _TITLE.search(body)
            named = ""
            if title:
                named = f" titled {title.group(1).decode('utf-8', 'replace').strip()!r}"
            raise _BodyProblem(
                "http_not_json",
                f"page {number} is an HTML page{named} (Content-Type"
                f" {content_type!r}), not JSON; the API may be failing or `path` may"
                " lead to a web page", raw) from None
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        where = (f" at line {exc.lineno} column {exc.colno}"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise _BodyProblem("http_invalid_json",
                           f"page {number} is not valid JSON: {detail}{where}",
                           raw) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _shown_json(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text[:MAX_RAW_TEXT]


def _advice(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return "; check the credentials under `auth` and what they are allowed to read"
    if status == 404:
        return "; check `base_url` and the stream's `path`"
    return ""
