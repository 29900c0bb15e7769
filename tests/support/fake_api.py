"""A scriptable REST API on 127.0.0.1, for tests of the ``http`` source.

``FakeAPI`` runs a ``ThreadingHTTPServer`` in a thread, records every request it
receives and responds to each one from the route of its method and path. A route is
a ``Reply``, a list of replies served in order (then a 500 naming the route once
the list is used up), or a function of the ``Received`` request.

Usage::

    with FakeAPI() as api:
        api.route("GET", "/deals", [json_reply({"results": [...], "next": "p2"}),
                                    json_reply({"results": []})])
        ...read from api.url...
        assert api.received("GET", "/deals")[1].query["after"] == ["p2"]

A request without a route gets a 404 with a JSON body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeAPI", "Received", "Reply", "json_reply", "text_reply"]


@dataclass(frozen=True)
class Received:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def param(self, name: str) -> str | None:
        """Return the first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """Return the form-encoded body as a dict of first values."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {name: values[0] for name, values in parsed.items()}


@dataclass
class Reply:
    """One scripted response, sent after ``delay`` seconds."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def json_reply(document: Any, status: int = 200,
               headers: dict[str, str] | None = None, delay: float = 0.0) -> Reply:
    """Return a reply with ``document`` as its JSON body."""
    return Reply(status, json.dumps(document).encode("utf-8"),
                 {"Content-Type": "application/json", **(headers or {})}, delay)


def text_reply(text: str, status: int = 200, content_type: str = "text/plain",
               headers: dict[str, str] | None = None) -> Reply:
    """Return a reply with a text body of the given content type."""
    return Reply(status, text.encode("utf-8"),
                 {"Content-Type": content_type, **(headers or {})})


Route = Reply | list[Reply] | Callable[[Received], Reply]


class FakeAPI:
    """The loopback server; see the module docstring."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._routes: dict[tuple[str, str], Route] = {}
        self._served: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval makes stop() return quickly.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02},
                                        name="fake-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, route: Route) -> None:
        """Respond to ``method path`` (the path without query) with ``route``."""
        with self._lock:
            self._routes[(method.upper(), path)] = route
            self._served[(method.upper(), path)] = 0

    def received(self, method: str | None = None, path: str | None = None
                 ) -> list[Received]:
        """Return the requests received, optionally only those of a method and path."""
        with self._lock:
            return [request for request in self.requests
                    if (method is None or request.method == method.upper())
                    and (path is None or request.path == path)]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answer(self, request: Received) -> Reply:
        key = (request.method, request.path)
        with self._lock:
            self.requests.append(request)
            route = self._routes.get(key)
            served = self._served.get(key, 0)
            self._served[key] = served + 1
        if route is None:
            missing = f"no route for {request.method} {request.path}"
            return json_reply({"error": missing}, status=404)
        if isinstance(route, Reply):
            return route
        if isinstance(route, list):
            if served < len(route):
                return route[served]
            return json_reply({"error": f"{request.method} {request.path} was asked"
                               f" {served + 1} times, but only {len(route)} replies"
                               " were scripted"}, status=500)
        return route(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Received(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={name.lower(): value
                             for name, value in self.headers.items()},
                    body=body,
                )
                reply = api._answer(request)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first, as a timeout test intends

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests are kept in api.requests instead

        return Handler
