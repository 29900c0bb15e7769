"""The loopback JSON server under the fake APIs, with fault injection and a request log.

``FakeServer`` runs a ``ThreadingHTTPServer`` on 127.0.0.1 (an ephemeral
port by default) in a background thread. It binds loopback addresses only and
raises ``ValueError`` for any other host. Subclasses declare their routes as
``(method, pattern, handler)``; a handler gets a ``Call`` and returns a
``Reply``.

Faults are ``FaultRule`` values added with ``FakeServer.add_fault``. Each
request is matched against the rules in the order they were added, and every
rule that fires applies, except that a rule rejecting the request
(``rate_limit``, ``server_error``) ends the matching:

``rate_limit``
    429 with ``Retry-After: seconds`` before the handler runs.
``server_error``
    500 before the handler runs, so nothing is applied.
``slow``
    The handler runs, and the response comes ``seconds`` later.
``timeout_after_apply``
    The handler runs (the write is applied), then the server waits
    ``seconds`` before responding, longer than a client's read timeout.
``drop_after_apply``
    The handler runs, then the connection is closed without a response.
``expire_token``
    Every access token issued so far stops working; this request gets the
    API's 401.
``repeat_cursor``
    Handled by the API's paging code: the page names the cursor it was asked
    with as its next cursor.

A rule fires on the matching requests after the first ``skip``, at most
``times`` times (None: without limit), or, with ``ratio``, on that share of
matching requests drawn from a seeded random generator.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FAULT_KINDS",
    "LOOPBACK_HOSTS",
    "Call",
    "FakeServer",
    "FaultRule",
    "LoggedRequest",
    "Reply",
]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
FAULT_KINDS = ("rate_limit", "server_error", "slow", "timeout_after_apply",
               "drop_after_apply", "expire_token", "repeat_cursor")
MAX_BODY_BYTES = 4 * 1024 * 1024
_REJECTING = ("rate_limit", "server_error")


@dataclass
class FaultRule:
    """One injected fault: what happens, to which route, and how often."""

    kind: str
    route: str = "*"
    times: int | None = 1
    skip: int = 0
    ratio: float | None = None
    seconds: float = 0.0
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of"
                             f" {', '.join(FAULT_KINDS)}")

    def matches(self, route: str) -> bool:
        return self.route in ("*", route)

    def fire(self, rng: random.Random) -> bool:
        """Count one matching request and tell whether the fault hits it."""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.ratio is not None and rng.random() >= self.ratio:
            return False
        self.fired += 1
        return True


@dataclass
class Call:
    """One request as a handler receives it."""

    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    form: dict[str, str]
    faults: set[str] = field(default_factory=set)


@dataclass
class Reply:
    """What a handler returns: a status, a JSON body and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server responded to (or dropped), for tests and benchmarks."""

    method: str
    path: str
    route: str
    status: int
    fault: str | None


Handler = Callable[[Call], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.fake = fake
        super().__init__(address, _RequestHandler)


class FakeServer:
    """A JSON API on loopback; subclasses fill ``routes`` and the data behind them."""

    name = "fake API"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 seed: int = 7) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the fake APIs bind to loopback only, not {host!r}; use"
                             " 127.0.0.1")
        self.host = host
        self.port = port
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.faults: list[FaultRule] = []
        self.log: list[LoggedRequest] = []
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> Self:
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        # A short poll interval makes stop() return quickly.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"{self.name} on {self.port}",
                                        daemon=True)
        self._thread.start()
        logger.info("%s listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        logger.info("%s stopped", self.name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- configuration ----------------------------------------------------------

    def route(self, method: str, template: str, handler: Handler) -> None:
        """Declare a route; ``{name}`` in ``template`` matches one path segment."""
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self.routes.append((method, re.compile(f"^{pattern}$"), f"{method} {template}",
                            handler))

    def add_fault(self, kind: str, route: str = "*", **settings: Any) -> FaultRule:
        """Add a ``FaultRule`` (see the module docstring) and return it."""
        rule = FaultRule(kind, route, **settings)
        with self.lock:
            self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def requests(self, route: str | None = None) -> list[LoggedRequest]:
        """Return the logged requests, all or those of one route."""
        with self.lock:
            return [entry for entry in self.log if route is None or entry.route == route]

    # --- request handling -------------------------------------------------------

    def authorized(self, call: Call) -> Reply | None:
        """Return the 401 reply for a call without valid credentials, or None."""
        return None

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid (the expire_token fault)."""

    def resolve(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        for route_method, pattern, name, handler in self.routes:
            if route_method != method:
                continue
            found = pattern.match(path)
            if found:
                return name, handler, found.groupdict()
        return None

    def pick_faults(self, route: str) -> list[FaultRule]:
        """Return the rules that fire on one request, in the order they were added.

        A rule that rejects the request (rate_limit, server_error) ends the list,
        so the rules after it neither see nor count a request that never ran.
        """
        fired = []
        with self.lock:
            for rule in self.faults:
                if not rule.matches(route) or not rule.fire(self.rng):
                    continue
                fired.append(rule)
                if rule.kind in _REJECTING:
                    break
        return fired

    def record(self, call: Call | None, method: str, path: str, status: int,
               fault: str | None) -> None:
        with self.lock:
            self.log.append(LoggedRequest(method, path, call.route if call else "",
                                          status, fault))


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes. With Nagle's algorithm the
    # second waits for the client's delayed ACK, about 40 ms on Linux.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        call = self._call(method, parts.path, parts.query)
        if call is None:
            return
        found = fake.resolve(method, parts.path)
        if found is None:
            self._reply(Reply(404, {"message": f"no route {method} {parts.path}"}))
            fake.record(None, method, parts.path, 404, None)
            return
        call.route, handler, call.params = found
        rules = fake.pick_faults(call.route)
        kinds = {rule.kind for rule in rules}
        call.faults = kinds
        before = self._fault_reply(fake, call, rules)
        if before is not None:
            self._reply(before[0])
            fake.record(call, method, parts.path, before[0].status, before[1])
            return
        denied = fake.authorized(call)
        if denied is not None:
            self._reply(denied)
            fake.record(call, method, parts.path, denied.status, None)
            return
        reply = handler(call)
        self._after_apply(fake, call, rules, reply, method, parts.path)

    def _call(self, method: str, path: str, query_text: str) -> Call | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(Reply(413, {"message": "body too large"}))
            return None
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        form: dict[str, str] = {}
        content_type = self.headers.get("Content-Type", "")
        if raw and "application/x-www-form-urlencoded" in content_type:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._reply(Reply(400, {"message": "the body is not valid JSON"}))
                return None
        query = parse_qs(query_text, keep_blank_values=True)
        return Call(method=method, path=path, route="", params={}, query=query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body, form=form)

    def _fault_reply(self, fake: FakeServer, call: Call,
                     rules: list[FaultRule]) -> tuple[Reply, str] | None:
        for rule in rules:
            if rule.kind == "rate_limit":
                return Reply(429, {"message": "rate limit reached; retry later"},
                             {"Retry-After": f"{rule.seconds:g}"}), rule.kind
            if rule.kind == "server_error":
                return Reply(500, {"message": "internal error"}), rule.kind
            if rule.kind == "expire_token":
                fake.expire_tokens()
        return None

    def _after_apply(self, fake: FakeServer, call: Call, rules: list[FaultRule],
                     reply: Reply, method: str, path: str) -> None:
        # The request is logged as soon as it is applied, so it is in the log
        # even when the client gave up waiting.
        fault = next((rule.kind for rule in rules if rule.kind in
                      ("drop_after_apply", "slow", "timeout_after_apply",
                       "repeat_cursor")), None)
        fake.record(call, method, path, reply.status, fault)
        for rule in rules:
            if rule.kind == "drop_after_apply":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if rule.kind in ("slow", "timeout_after_apply"):
                time.sleep(rule.seconds)
        try:
            self._reply(reply)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("the client disconnected before the response to %s %s", method, path)

    def _reply(self, reply: Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
