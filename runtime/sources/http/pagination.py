"""Pagination of an ``http`` stream: the next request, the end, or a loop.

``make_paginator`` returns the paginator of ``pagination.type``:

``cursor``
    The response body carries a token (``next``, such as ``paging.next.after``
    or ``nextPageToken``) that goes into ``param`` of the next request, in the
    query or in the JSON body (``in``). The stream ends when the token is
    missing, null or empty. An empty page with a token is not the end.
``next_url``
    The body carries the URL of the next page (``next``, such as
    ``next_page.uri``), absolute or relative to the current request. It is
    requested as given, without the stream's ``query``.
``link_header``
    Like ``next_url``, from the ``Link`` response header's ``rel="next"``.
``offset``
    ``param`` (default ``offset``) starts at ``start`` (default 0) and grows by
    the number of records of each page; ``limit_param`` carries ``limit``.
``page``
    ``param`` (default ``page``) counts pages from ``start`` (default 1);
    ``limit_param`` carries ``limit``.

``offset`` and ``page`` end on an empty page, when ``total`` (a selector of the
number of records) is reached, or when ``total_pages`` pages were read. Every
kind also ends when ``last`` selects a true value (such as Jira's ``isLast``)
or ``more`` selects a false one (such as Pipedrive's
``additional_data.pagination.more_items_in_collection``), and after
``max_pages`` pages, which leaves the stream incomplete.

A token or next URL seen before, or an ``offset``/``page`` page with exactly
the records of the page before, is a loop: ``PaginationProblem`` stops the
stream instead of reading the same pages again. A next URL outside the base
URL's origin is a ``PaginationProblem`` too, and nothing is sent there.
"""

from __future__ import annotations

import copy
import decimal
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from runtime.http import redact_url
from runtime.sources.http.client import ForeignURL, PageRequest
from runtime.sources.http.selectors import describe_value
from runtime.sources.http.settings import PaginationSettings

__all__ = [
    "EndOfStream",
    "NextPage",
    "Page",
    "PaginationProblem",
    "Paginator",
    "Step",
    "full_url",
    "make_paginator",
    "with_parameter",
]

# How many characters of a token a message shows.
MAX_SHOWN_TOKEN = 60


@dataclass(slots=True)
class Page:
    """One page read: its request, response, parsed body and records."""

    number: int  # 1-based
    request: PageRequest
    response: requests.Response
    document: Any
    records: list[Any] | None  # None when the records selector found nothing


@dataclass(frozen=True, slots=True)
class NextPage:
    """The request of the next page."""

    request: PageRequest


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """No page follows. ``complete`` is False when pages were left unread."""

    reason: str
    complete: bool = True


@dataclass(frozen=True, slots=True)
class PaginationProblem:
    """Pagination cannot go on; the stream stops with this error."""

    code: str
    message: str


Step = NextPage | EndOfStream | PaginationProblem


def full_url(request: PageRequest) -> str:
    """Return the request's URL with its query string, as it is sent."""
    prepared = requests.Request("GET", request.url, params=request.params).prepare()
    return prepared.url or request.url


def with_parameter(request: PageRequest, name: str, value: Any,
                   location: str) -> PageRequest:
    """Return ``request`` with ``name`` set to ``value`` in the query or the body.

    In the body, ``name`` is a dotted path (``filterGroups.0.filters.0.value``)
    whose missing objects are created.
    """
    if location == "query":
        params = dict(request.params)
        params[name] = _query_text(value)
        return PageRequest(request.method, request.url, params, request.body)
    body = copy.deepcopy(request.body) if isinstance(request.body, dict) else {}
    _set_path(body, name.split("."), value)
    return PageRequest(request.method, request.url, dict(request.params), body)


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _set_path(target: Any, segments: list[str], value: Any) -> None:
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        in_list = isinstance(target, list) and segment.isdigit()
        if in_list and int(segment) < len(target):
            key: Any = int(segment)
        elif isinstance(target, dict):
            key = segment
        else:
            raise ValueError(f"cannot set {'.'.join(segments)!r} in the request body:"
                             f" {segment!r} is inside {describe_value(target)}")
        if last:
            target[key] = value
            return
        if isinstance(target, dict) and not isinstance(target.get(key), dict | list):
            target[key] = {}
        target = target[key]


def _is_true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no")
    return bool(value)


def _as_count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(decimal.Decimal(str(value)))
    except (decimal.InvalidOperation, ValueError):
        return None


def _shown(token: Any) -> str:
    text = str(token)
    return text if len(text) <= MAX_SHOWN_TOKEN else text[: MAX_SHOWN_TOKEN - 3] + "..."


class Paginator:
    """Reads one page and returns no next page; the base of every kind."""

    def __init__(self, settings: PaginationSettings) -> None:
        self.settings = settings

    def first_request(self, request: PageRequest) -> PageRequest:
        """Return the request of the first page."""
        return request

    def next_step(self, page: Page) -> Step:
        """Decide what follows ``page``."""
        flagged = self._flagged_end(page.document)
        if flagged is not None:
            return EndOfStream(flagged)
        try:
            step = self._next(page)
        except ValueError as exc:
            return PaginationProblem("http_pagination", f"page {page.number}: {exc}")
        limit = self.settings.max_pages
        if isinstance(step, NextPage) and limit is not None and page.number >= limit:
            return EndOfStream(f"`pagination.max_pages` ({limit}) pages were read and"
                               " more remain", complete=False)
        return step

    def _next(self, page: Page) -> Step:
        return EndOfStream("the stream has no pagination")

    def _flagged_end(self, document: Any) -> str | None:
        last = self.settings.last
        if last is not None:
            found = last.lookup(document)
            if found.found and _is_true(found.value):
                return f"{last.text!r} is {found.value!r}"
        more = self.settings.more
        if more is not None:
            found = more.lookup(document)
            if found.found and not _is_true(found.value):
                return f"{more.text!r} is {found.value!r}"
        return None


class CursorPaginator(Paginator):
    """A next token from the body, sent back in ``param``."""

    def __init__(self, settings: PaginationSettings) -> None:
        super().__init__(settings)
        self._seen: dict[str, int] = {}

    def _next(self, page: Page) -> Step:
        selector = self.settings.next
        assert selector is not None and self.settings.param is not None
        found = selector.lookup(page.document)
        token = found.value if found.found else None
        if token is None or token == "":
            return EndOfStream(f"page {page.number} has no {selector.text!r}")
        if isinstance(token, dict | list | bool):
            return PaginationProblem(
                "http_pagination",
                f"page {page.number}: {selector.text!r} is {describe_value(token)},"
                " not a token; point `pagination.next` at the token itself",
            )
        key = str(token)
        if key in self._seen:
            return PaginationProblem(
                "http_pagination_loop",
                f"page {page.number} returned the next token {_shown(token)!r}, which"
                f" page {self._seen[key]} returned already; reading stopped instead of"
                " requesting the same pages again",
            )
        self._seen[key] = page.number
        return NextPage(with_parameter(page.request, self.settings.param, token,
                                       self.settings.location))


class NextUrlPaginator(Paginator):
    """A next-page URL from the body, requested as given on the same origin."""

    def __init__(self, settings: PaginationSettings,
                 check_origin: Callable[[str], None]) -> None:
        super().__init__(settings)
        self._check_origin = check_origin
        self._seen: dict[str, int] = {}

    def first_request(self, request: PageRequest) -> PageRequest:
        self._seen[full_url(request)] = 1
        return request

    def _next_link(self, page: Page) -> tuple[Any, str]:
        selector = self.settings.next
        assert selector is not None
        found = selector.lookup(page.document)
        return (found.value if found.found else None), repr(selector.text)

    def _next(self, page: Page) -> Step:
        link, where = self._next_link(page)
        if link is None or link == "":
            return EndOfStream(f"page {page.number} has no {where}")
        if not isinstance(link, str):
            return PaginationProblem(
                "http_pagination",
                f"page {page.number}: {where} is {describe_value(link)}, not a URL;"
                " point `pagination.next` at the URL itself",
            )
        target = urljoin(page.request.url, link)
        try:
            self._check_origin(target)
        except ForeignURL as exc:
            return PaginationProblem("http_foreign_url", f"page {page.number}: the"
                                     f" next page URL in {where} was rejected: {exc}")
        if target in self._seen:
            return PaginationProblem(
                "http_pagination_loop",
                f"page {page.number} links to {redact_url(target)!r} as its next page,"
                f" which is page {self._seen[target]}; reading stopped instead of"
                " requesting the same pages again",
            )
        self._seen[target] = page.number + 1
        return NextPage(PageRequest(page.request.method, target, {}, page.request.body))


class LinkHeaderPaginator(NextUrlPaginator):
    """The ``rel="next"`` URL of the ``Link`` response header."""

    def _next_link(self, page: Page) -> tuple[Any, str]:
        link = page.response.links.get("next", {}).get("url")
        return link, 'the Link header\'s rel="next"'


class _CountingPaginator(Paginator):
    """Shared end rules of ``offset`` and ``page``: empty page, totals, repeats."""

    def __init__(self, settings: PaginationSettings) -> None:
        super().__init__(settings)
        self.position = settings.start
        self.records_read = 0
        self._previous_fingerprint: str | None = None

    def first_request(self, request: PageRequest) -> PageRequest:
        assert self.settings.param is not None
        request = with_parameter(request, self.settings.param, self.position,
                                 self.settings.location)
        if self.settings.limit is not None and self.settings.limit_param:
            request = with_parameter(request, self.settings.limit_param,
                                     self.settings.limit, self.settings.location)
        return request

    def _next(self, page: Page) -> Step:
        records = page.records
        if records is None:
            return EndOfStream(f"the records of page {page.number} were not found, so"
                               " the next page is unknown", complete=False)
        if not records:
            return EndOfStream(f"page {page.number} is empty")
        fingerprint = hashlib.sha256(
            json.dumps(records, sort_keys=True, default=str).encode("utf-8")
        ).hexdigest()
        if fingerprint == self._previous_fingerprint:
            return PaginationProblem(
                "http_pagination_loop",
                f"page {page.number} has the same records as page {page.number - 1};"
                f" the API seems to ignore `{self.settings.param}`, so reading stopped",
            )
        self._previous_fingerprint = fingerprint
        self.records_read += len(records)
        ended = self._total_reached(page)
        if ended is not None:
            return EndOfStream(ended)
        self.position = self._advance(len(records))
        assert self.settings.param is not None
        return NextPage(with_parameter(page.request, self.settings.param,
                                       self.position, self.settings.location))

    def _advance(self, count: int) -> int:
        raise NotImplementedError

    def _total_reached(self, page: Page) -> str | None:
        total = self.settings.total
        if total is not None:
            found = total.lookup(page.document)
            count = _as_count(found.value) if found.found else None
            if count is not None and self.records_read >= count:
                return f"{self.records_read} records read of {total.text!r} = {count}"
        total_pages = self.settings.total_pages
        if total_pages is not None:
            found = total_pages.lookup(page.document)
            count = _as_count(found.value) if found.found else None
            if count is not None and page.number >= count:
                return f"{page.number} pages read of {total_pages.text!r} = {count}"
        return None


class OffsetPaginator(_CountingPaginator):
    """``param`` is the offset of the first record of the page."""

    def _advance(self, count: int) -> int:
        return self.position + count


class PageNumberPaginator(_CountingPaginator):
    """``param`` is the page number."""

    def _advance(self, count: int) -> int:
        return self.position + 1


def make_paginator(settings: PaginationSettings,
                   check_origin: Callable[[str], None]) -> Paginator:
    """Return the paginator of ``settings.type``."""
    if settings.type == "cursor":
        return CursorPaginator(settings)
    if settings.type == "next_url":
        return NextUrlPaginator(settings, check_origin)
    if settings.type == "link_header":
        return LinkHeaderPaginator(settings, check_origin)
    if settings.type == "offset":
        return OffsetPaginator(settings)
    if settings.type == "page":
        return PageNumberPaginator(settings)
    return Paginator(settings)

