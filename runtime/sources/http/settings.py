"""Validated settings of one stream of an ``http`` system.

``parse_settings`` turns ``system.settings`` into frozen dataclasses and raises
``SourceUnavailable`` naming the setting and the fix when one is invalid. The
compiler's schema checks the same shapes, so these errors mostly catch plans
written by hand. References (``${env:NAME}``, ``${file:PATH}``) inside the
stream's ``path``, ``query``, ``headers`` and ``body`` are resolved here, and
the resolved values are kept out of every ``repr``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compiler.plan import SystemPlan
from runtime.http import DEFAULT_TIMEOUT
from runtime.references import UnresolvedReference, resolve
from runtime.sources.base import SourceUnavailable
from runtime.sources.http.selectors import Selector, SelectorSyntaxError

__all__ = [
    "CURSOR_FORMATS",
    "PAGINATION_TYPES",
    "CursorSettings",
    "FieldSpec",
    "Origin",
    "PaginationSettings",
    "StreamSettings",
    "SystemSettings",
    "origin_of",
    "parse_settings",
]

METHODS = ("GET", "POST")
PAGINATION_TYPES = ("cursor", "next_url", "link_header", "offset", "page")
CURSOR_FORMATS = ("raw", "iso", "date", "epoch_ms", "epoch_seconds")
LOCATIONS = ("query", "body")
FIELD_TYPES = (
    "string",
    "integer",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "duration",
    "email",
    "url",
    "enum",
    "money",
    "list",
    "object",
)

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin | None:
    """Return (scheme, host, port) of an absolute http(s) URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port or default_port


@dataclass(frozen=True, slots=True)
class PaginationSettings:
    """The pagination of a stream: the next page's request and the end rules."""

    type: str | None  # None reads one page
    next: Selector | None = None
    param: str | None = None
    location: str = "query"
    limit_param: str | None = None
    limit: int | None = None
    start: int = 0
    total: Selector | None = None
    total_pages: Selector | None = None
    more: Selector | None = None
    last: Selector | None = None
    max_pages: int | None = None


@dataclass(frozen=True, slots=True)
class CursorSettings:
    """The incremental cursor: the record field it follows and how it is sent."""

    field: Selector
    param: str | None
    location: str
    format: str
    initial: str | None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One declared field: a dotted path into each record, and its type."""

    name: str
    selector: Selector
    type: str
    optional: bool


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """One stream: the request of its first page and how its pages are read."""

    name: str
    url: str
    method: str
    query: dict[str, Any] = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    body: Any = field(repr=False)
    records: Selector
    pagination: PaginationSettings
    cursor: CursorSettings | None
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True, slots=True)
class SystemSettings:
    """The parts of an http system one stream needs."""

    system_id: str
    base_url: str
    origin: Origin
    timeout: tuple[float, float]
    stream: StreamSettings


class _Invalid(Exception):
    """A setting is invalid. The message names it and the fix."""


def parse_settings(system: SystemPlan, stream: str, base_dir: Path) -> SystemSettings:
    """Validate the settings of ``stream``, raising ``SourceUnavailable`` if invalid."""
    prefix = f"http system {system.id!r}"
    try:
        base_url, origin = _parse_base_url(system.settings.get("base_url"))
        timeout = _parse_timeout(system.settings.get("timeout"))
        streams = system.settings.get("streams")
        if not isinstance(streams, dict) or not streams:
            raise _Invalid(
                f"`streams` must name at least one stream, got {streams!r}; add"
                " `streams: {NAME: {path: /endpoint, records: results}}`"
            )
        if stream not in streams:
            raise _Invalid(
                f"no stream {stream!r}; the streams are "
                f"{', '.join(repr(name) for name in streams)}"
            )
        spec = streams[stream]
        if not isinstance(spec, dict):
            raise _Invalid(f"stream {stream!r} must be an object, got {spec!r}")
        prefix = f"{prefix} stream {stream!r}"
        parsed = _parse_stream(stream, spec, base_url, origin, base_dir)
    except _Invalid as exc:
        raise SourceUnavailable(f"{prefix}: {exc}") from None
    except UnresolvedReference as exc:
        raise SourceUnavailable(f"{prefix}: {exc}") from None
    return SystemSettings(
        system_id=system.id,
        base_url=base_url,
        origin=origin,
        timeout=timeout,
        stream=parsed,
    )


def _parse_base_url(value: Any) -> tuple[str, Origin]:
    origin = origin_of(value) if isinstance(value, str) else None
    if origin is None:
        raise _Invalid(
            f"`base_url` must be an absolute http or https URL such as"
            f" 'https://api.example.com/v1', got {value!r}"
        )
    return value, origin


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
    raise _Invalid(
        "`timeout` must be a positive number of seconds, or {connect: SECONDS,"
        f" read: SECONDS}}, got {value!r}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_stream(
    name: str, spec: dict[str, Any], base_url: str, origin: Origin, base_dir: Path
) -> StreamSettings:
    def resolved(value: Any) -> Any:
        return _resolve_nested(value, lambda text: resolve(text, base_dir))

    method = str(spec.get("method", "GET")).upper()
    if method not in METHODS:
        raise _Invalid(f"`method` must be GET or POST, got {spec.get('method')!r}")
    path = spec.get("path")
    if not isinstance(path, str) or not path:
        raise _Invalid(f"`path` must be the endpoint path such as '/deals', got"
                       f" {path!r}")
    url = _join_url(base_url, origin, resolved(path))
    query = {name: _query_value(value)
             for name, value in _parse_mapping(spec, "query", resolved).items()}
    headers = {key: str(value) for key, value in _parse_mapping(spec, "headers",
                                                                  resolved).items()}
    body = resolved(spec.get("body"))
    if body is not None and method == "GET":
        raise _Invalid("`body` is sent only with `method: POST`; remove it or set"
                       " the method")
    default_location = "body" if method == "POST" else "query"
    return StreamSettings(
        name=name,
        url=url,
        method=method,
        query=query,
        headers=headers,
        body=body,
        records=_selector(spec.get("records", ""), "records"),
        pagination=_parse_pagination(spec.get("pagination"), default_location),
        cursor=_parse_cursor(spec.get("cursor"), default_location),
        fields=_parse_fields(spec.get("fields")),
    )


def _resolve_nested(value: Any, resolve_text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return resolve_text(value)
    if isinstance(value, dict):
        return {key: _resolve_nested(item, resolve_text) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_nested(item, resolve_text) for item in value]
    return value


def _query_value(value: Any) -> Any:
    """Write a query value as text the way JSON does: true, false, 42."""
    if isinstance(value, list):
        return [_query_value(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _join_url(base_url: str, origin: Origin, path: str) -> str:
    if "://" in path:
        if origin_of(path) != origin:
            raise _Invalid(
                f"`path` {path!r} is a URL on another host than `base_url`"
                f" {base_url!r}; requests go only to the base URL's host, so write"
                " the path relative to it"
            )
        return path
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def _parse_mapping(
    spec: dict[str, Any], name: str, resolved: Callable[[Any], Any]
) -> dict[str, Any]:
    value = spec.get(name, {})
    if not isinstance(value, dict):
        raise _Invalid(f"`{name}` must be an object of names and values, got {value!r}")
    return resolved(value)


def _selector(value: Any, name: str) -> Selector:
    try:
        return Selector(value)
    except SelectorSyntaxError as exc:
        raise _Invalid(f"`{name}`: {exc}") from None


def _optional_selector(spec: dict[str, Any], name: str) -> Selector | None:
    if spec.get(name) is None:
        return None
    return _selector(spec[name], f"pagination.{name}")


def _parse_pagination(spec: Any, default_location: str) -> PaginationSettings:
    if spec is None:
        return PaginationSettings(type=None)
    kind = spec.get("type") if isinstance(spec, dict) else spec
    if kind not in PAGINATION_TYPES:
        raise _Invalid(
            f"`pagination.type` must be one of {', '.join(PAGINATION_TYPES)}, got"
            f" {kind!r}"
        )

    defaults = {"cursor": None, "offset": "offset", "page": "page"}
    param = spec.get("param", defaults.get(kind))
    if kind in ("cursor", "offset", "page") and not isinstance(param, str):
        raise _Invalid(f"`pagination.param` must name the request parameter that"
                       f" carries the {kind}, got {param!r}")

    next_selector = _optional_selector(spec, "next")
    if kind in ("cursor", "next_url") and next_selector is None:
        target = "page URL, such as 'next_page.uri'"
        if kind == "cursor":
            target = "token, such as 'paging.next.after'"
        raise _Invalid(f"`pagination.next` must select the next {target} in the"
                       " response body")

    location = spec.get("in", default_location)
    if location not in LOCATIONS:
        raise _Invalid(f"`pagination.in` must be query or body, got {location!r}")
    start = _optional_count(spec, "start", minimum=0)
    if start is None:
        start = 1 if kind == "page" else 0
    return PaginationSettings(
        type=kind,
        next=next_selector,
        param=param,
        location=location,
        limit_param=spec.get("limit_param", "limit" if "limit" in spec else None),
        limit=_optional_count(spec, "limit", minimum=1),
        start=start,
        total=_optional_selector(spec, "total"),
        total_pages=_optional_selector(spec, "total_pages"),
        more=_optional_selector(spec, "more"),
        last=_optional_selector(spec, "last"),
        max_pages=_optional_count(spec, "max_pages", minimum=1),
    )


def _optional_count(spec: dict[str, Any], name: str, *, minimum: int) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _Invalid(f"`pagination.{name}` must be an integer of at least {minimum},"
                       f" got {value!r}")
    return value


def _parse_cursor(spec: Any, default_location: str) -> CursorSettings | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
        raise _Invalid(f"`cursor.field` must name the record field the cursor follows,"
                       f" such as 'updated_at', got {spec!r}")
    cursor_format = spec.get("format", "raw")
    if cursor_format not in CURSOR_FORMATS and "%" not in str(cursor_format):
        raise _Invalid(
            f"`cursor.format` must be one of {', '.join(CURSOR_FORMATS)} or a strftime"
            f" pattern such as '%Y-%m-%dT%H:%M:%SZ', got {cursor_format!r}"
        )
    if "%" in str(cursor_format):
        try:
            dt.datetime(2000, 1, 2, tzinfo=dt.UTC).strftime(cursor_format)
        except ValueError as exc:
            raise _Invalid(f"`cursor.format` {cursor_format!r}: {exc}") from None
    location = spec.get("in", default_location)
    if location not in LOCATIONS:
        raise _Invalid(f"`cursor.in` must be query or body, got {location!r}")
    initial = spec.get("initial")
    return CursorSettings(
        field=_selector(spec["field"], "cursor.field"),
        param=spec.get("param"),
        location=location,
        format=cursor_format,
        initial=None if initial is None else str(initial),
    )


def _parse_fields(spec: Any) -> tuple[FieldSpec, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict):
        raise _Invalid(f"`fields` must map field names to types, got {spec!r}")
    fields = []
    for name, declared in spec.items():
        optional = False
        field_type = declared
        if isinstance(declared, dict):
            field_type = declared.get("type")
            optional = bool(declared.get("optional", False))
        if field_type not in FIELD_TYPES:
            raise _Invalid(f"`fields.{name}` must be one of {', '.join(FIELD_TYPES)},"
                           f" got {declared!r}")
        selector = _selector(name, f"fields.{name}")
        if name.startswith("$"):
            raise _Invalid(f"`fields` names dotted paths such as 'properties.amount',"
                           f" not JSONPath; got {name!r}")
        fields.append(FieldSpec(name=name, selector=selector, type=field_type,
                                optional=optional))
    return tuple(fields)
