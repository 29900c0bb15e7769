"""The emulator's HTTP server and its Python control surface.

:class:`SheetsEmulator` runs a ``ThreadingHTTPServer`` on a loopback address
(``127.0.0.1`` and an ephemeral port by default) in a background thread.
Use it as a context manager or call :meth:`~SheetsEmulator.start` and
:meth:`~SheetsEmulator.stop`.  It only binds loopback addresses: any other
host raises ``ValueError``.

Per request, in order: authentication (any ``Authorization: Bearer <token>``
passes, none gives Google's 401), fault injection (see :mod:`faults`), the API
method itself, then a :class:`~requestlog.RequestRecord` in :attr:`log`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from . import errors
from .faults import Fault, FaultQueue
from .requestlog import RequestLog, RequestRecord
from .routes import JSON_TYPE, Response, Route, error_response, resolve_route
from .state import Spreadsheet, Store
from .transport import LOOPBACK_HOSTS, EmulatorSession

logger = logging.getLogger(__name__)

# Google method names reported in the 401 body, by request kind.
_RPC_METHODS = {
    "values.get": "google.apps.sheets.v4.SpreadsheetsService.GetValues",
    "values.update": "google.apps.sheets.v4.SpreadsheetsService.UpdateValues",
    "values.append": "google.apps.sheets.v4.SpreadsheetsService.AppendValues",
    "values.clear": "google.apps.sheets.v4.SpreadsheetsService.ClearValues",
    "values.batchGet": "google.apps.sheets.v4.SpreadsheetsService.BatchGetValues",
    "values.batchGetByDataFilter": "google.apps.sheets.v4.SpreadsheetsService.BatchGetValuesByDataFilter",
    "values.batchUpdate": "google.apps.sheets.v4.SpreadsheetsService.BatchUpdateValues",
    "values.batchClear": "google.apps.sheets.v4.SpreadsheetsService.BatchClearValues",
    "spreadsheets.get": "google.apps.sheets.v4.SpreadsheetsService.GetSpreadsheet",
    "spreadsheets.create": "google.apps.sheets.v4.SpreadsheetsService.CreateSpreadsheet",
    "spreadsheets.batchUpdate": "google.apps.sheets.v4.SpreadsheetsService.BatchUpdateSpreadsheet",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: "SheetsEmulator") -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, delayed
        # ACKs add about 40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self.server.emulator._handle(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except Exception:
            # An emulator bug must not kill the connection silently.
            logger.exception("sheets emulator failed on %s %s", self.command, self.path)
            self.close_connection = True


class SheetsEmulator:
    """A local Sheets API v4 (plus Drive v3 files) emulator on loopback.

    :param host: loopback address to bind (``127.0.0.1``, ``localhost``, ``::1``).
    :param port: TCP port, 0 for an ephemeral one.
    :param seed: seed for spreadsheet and sheet ids, for reproducible runs.
    :param project_number: project number quoted in quota error bodies.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        project_number: str = "123456789012",
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"host {host!r} is not a loopback address; use 127.0.0.1, localhost or ::1")
        self.host = "127.0.0.1" if host == "localhost" else host
        self._requested_port = port
        self.project_number = project_number
        self.store = Store(seed)
        self.log = RequestLog()
        self.faults = FaultQueue()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle -------------------------------------------------------

    def start(self) -> "SheetsEmulator":
        """Bind the port and serve in a daemon thread; return ``self``."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running; call stop() first")
        self._stopping.clear()
        self._server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"sheets-emulator-{self.port}", daemon=True,
        )
        self._thread.start()
        logger.info("sheets emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, release held responses and close connections."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("sheets emulator on port %s stopped", self.port)
        self._server = None
        self._thread = None

    def __enter__(self) -> "SheetsEmulator":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- clients ---------------------------------------------------------

    def session(self, token: str | None = "emulator-token") -> EmulatorSession:
        """Return a requests session that sends Google API calls here only."""
        return EmulatorSession(self.host, self.port, token)

    def gspread_client(self, token: str | None = "emulator-token", http_client: Any = None) -> Any:
        """Return a ``gspread.Client`` whose every request reaches this emulator.

        ``http_client`` picks gspread's HTTP client class, for example
        ``gspread.BackOffHTTPClient`` to exercise its retries.
        """
        import gspread

        client_class = http_client or gspread.HTTPClient
        return gspread.Client(auth=None, session=self.session(token), http_client=client_class)  # type: ignore[arg-type]

    # --- state -----------------------------------------------------------

    def create_spreadsheet(self, title: str, sheets: list[dict[str, Any]] | None = None) -> str:
        """Create a spreadsheet directly (no HTTP request) and return its id."""
        with self.store.lock:
            return self.store.create(title, sheets).spreadsheet_id

    def spreadsheet(self, spreadsheet_id: str) -> Spreadsheet:
        """Return the live state object of a spreadsheet, for assertions."""
        with self.store.lock:
            return self.store.get(spreadsheet_id)

    # --- request log -----------------------------------------------------

    @property
    def requests_count(self) -> int:
        return self.log.requests_count

    @property
    def bytes_received(self) -> int:
        return self.log.bytes_received

    @property
    def bytes_sent(self) -> int:
        return self.log.bytes_sent

    def counts_by_kind(self) -> dict[str, int]:
        return self.log.counts_by_kind()

    def reset_log(self) -> None:
        self.log.reset()

    # --- faults ----------------------------------------------------------

    def inject_quota_exceeded(
        self,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        scope: str = "user",
        operation: str | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        """Respond to the next ``times`` matching requests with Google's 429.

        ``operation`` (``"read"``/``"write"``) defaults to the request's own
        kind; ``scope`` picks the per-user or per-project limit message.
        """
        errors.quota_exceeded(operation or "write", scope, self.project_number)

        def build(request_method: str, request_path: str) -> errors.ApiError:
            kind = operation or ("read" if request_method == "GET" else "write")
            return errors.quota_exceeded(kind, scope, self.project_number, retry_after)

        return self.faults.add(Fault("error", times, method, path, error=build))

    def inject_error(
        self,
        status: int = 503,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        """Respond to the next matching requests with Google's 500 or 503 body."""
        builders = {500: errors.internal_error, 503: errors.service_unavailable}
        if status not in builders:
            raise ValueError(f"status {status!r} is not injectable; use 500 or 503 (429 via inject_quota_exceeded)")
        error = builders[status]()
        if retry_after is not None:
            error.headers["Retry-After"] = str(retry_after)
        return self.faults.add(Fault("error", times, method, path, error=error))

    def inject_error_after_apply(
        self,
        status: int = 503,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        """Apply the next matching requests, then respond with Google's 500 or 503.

        The client sees a failure although the write happened, like
        :meth:`inject_timeout_after_apply` but with a response.
        """
        builders = {500: errors.internal_error, 503: errors.service_unavailable}
        if status not in builders:
            raise ValueError(f"status {status!r} is not injectable after apply; use 500 or 503")
        error = builders[status]()
        if retry_after is not None:
            error.headers["Retry-After"] = str(retry_after)
        return self.faults.add(Fault("error_after_apply", times, method, path, error=error))

    def inject_delay(self, seconds: float, times: int = 1, method: str | None = None, path: str | None = None) -> Fault:
        """Sleep ``seconds`` before handling the next matching requests."""
        return self.faults.add(Fault("delay", times, method, path, seconds=seconds))

    def inject_timeout_after_apply(
        self,
        seconds: float = 5.0,
        drop: bool = False,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Apply the next matching requests, then stall or drop the response.

        With ``drop=False`` the response is held for ``seconds`` (make it
        longer than the client's read timeout); with ``drop=True`` the
        connection is closed without any response.
        """
        return self.faults.add(Fault("timeout_after_apply", times, method, path, seconds=seconds, drop=drop))

    def clear_faults(self) -> None:
        self.faults.clear()

    # --- request handling ------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        started = time.monotonic()
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length) if length else b""
        params = parse_qs(url.query, keep_blank_values=True)
        method = handler.command
        route = resolve_route(self.store, method, url.path, params, raw_body)
        decoded_path = unquote(url.path)

        fault = None
        response: Response | None
        if not _has_bearer_token(handler.headers.get("Authorization")):
            response = error_response(errors.unauthenticated(_RPC_METHODS.get(route.kind, route.kind)))
            headers: dict[str, str] = {}
        else:
            fault = self.faults.take(method, decoded_path)
            response, headers = self._run(route, fault, method, decoded_path)

        if response is not None and params.get("prettyPrint") == ["false"]:
            response = _compact(response)
        dropped = fault is not None and fault.kind == "timeout_after_apply" and fault.drop
        # Logged before sending, so a client that has its response also finds
        # the request in the log.
        self.log.add(
            RequestRecord(
                method=method,
                path=decoded_path,
                query=url.query,
                kind=route.kind,
                request_bytes=len(raw_body),
                response_bytes=0 if dropped else len(response.body),
                status=None if dropped else response.status,
                fault=fault.kind if fault else None,
                duration_seconds=time.monotonic() - started,
            )
        )
        self._deliver(handler, response, headers, fault)

    def _run(self, route: Route, fault: Fault | None, method: str, path: str) -> tuple[Response, dict[str, str]]:
        if fault is not None and fault.kind == "error":
            error = fault.error_for(method, path)
            logger.info("injected %d for %s %s", error.code, method, path)
            return error_response(error), dict(error.headers)
        if fault is not None and fault.kind == "delay":
            self._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "error_after_apply":
            applied, _ = self._run(route, None, method, path)
            error = fault.error_for(method, path)
            logger.info("applied %s %s (status %d), responding with %d", method, path, applied.status, error.code)
            return error_response(error), dict(error.headers)
        try:
            return route.run(), {}
        except errors.ApiError as error:
            return error_response(error), dict(error.headers)
        except Exception:
            # A bug in the emulator must not look like a network failure.
            logger.exception("emulator failed on %s %s", method, path)
            return error_response(errors.internal_error()), {}

    def _deliver(self, handler: _Handler, response: Response, headers: dict[str, str], fault: Fault | None) -> None:
        """Send the response, or withhold it for a timeout fault."""
        if fault is not None and fault.kind == "timeout_after_apply":
            if fault.drop:
                logger.info("dropping the connection after applying %s", handler.path)
                handler.close_connection = True
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError as error:
                    logger.debug("shutdown of a dropped connection failed: %s", error)
                return
            logger.info("holding the response to %s for %.1fs", handler.path, fault.seconds)
            self._stopping.wait(fault.seconds)
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(response.body)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(response.body)
        except OSError as error:
            logger.info("client disconnected before the response to %s: %s", handler.path, error)
            handler.close_connection = True


def _compact(response: Response) -> Response:
    """Re-serialize a JSON answer without indentation, as ``prettyPrint=false`` asks.

    Google's APIs indent their JSON unless that system parameter is false.
    """
    if response.content_type != JSON_TYPE or not response.body:
        return response
    payload = json.loads(response.body)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(response.status, body, response.content_type)


def _has_bearer_token(header: str | None) -> bool:
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def running_emulator(**options: Any) -> Iterator[SheetsEmulator]:
    """Yield a started emulator and stop it afterwards (a fixture body).

    Use it as ``sheets_emulator = pytest.fixture(running_emulator)`` or
    ``with contextlib.contextmanager(running_emulator)() as emulator:``.
    """
    with SheetsEmulator(**options) as emulator:
        yield emulator
