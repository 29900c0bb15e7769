"""Tests of send() against a scripted HTTP server on 127.0.0.1.

The server sends the next scripted response to each request and records what
it received. Sleeps and the clock are fake, so the tests assert the exact
delays that send() requested without waiting for them. Only the hanging
response costs real time, because the client's read timeout has to expire.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from requests.adapters import HTTPAdapter

from runtime.http import (
    AmbiguousWrite,
    AmbiguousWriteApplied,
    DeadlineExceeded,
    GoogleErrorKind,
    HTTPFailure,
    RetryExhausted,
    RetryPolicy,
    TokenBucket,
    classify_google_error,
    parse_retry_after,
    redact_url,
    send,
)

# Long enough for a loaded machine to serve a normal request in time, and the
# real time that each hanging response costs.
READ_TIMEOUT = 1.0
SEED = 1234

USER_QUOTA_BODY = {
    "error": {
        "code": 429,
        "message": (
            "Quota exceeded for quota metric 'Write requests' and limit 'Write "
            "requests per minute per user' of service 'sheets.googleapis.com' for "
            "consumer 'project_number:1234'."
        ),
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "consumer": "projects/1234",
                    "quota_limit": "WriteRequestsPerMinutePerUser",
                    "quota_metric": "sheets.googleapis.com/write_requests",
                    "service": "sheets.googleapis.com",
                },
            }
        ],
    }
}

PROJECT_QUOTA_BODY = {
    "error": {
        "code": 429,
        "message": (
            "Quota exceeded for quota metric 'Write requests' and limit 'Write "
            "requests per minute' of service 'sheets.googleapis.com' for consumer "
            "'project_number:1234'."
        ),
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "consumer": "projects/1234",
                    "quota_limit": "WriteRequestsPerMinutePerProject",
                    "quota_metric": "sheets.googleapis.com/write_requests",
                    "quota_unit": "1/min/{project}",
                    "service": "sheets.googleapis.com",
                },
            },
            {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
        ],
    }
}

LEGACY_USER_RATE_BODY = {
    "error": {
        "code": 403,
        "message": "User Rate Limit Exceeded",
        "errors": [
            {
                "domain": "usageLimits",
                "reason": "userRateLimitExceeded",
                "message": "User Rate Limit Exceeded",
            }
        ],
    }
}

PERMISSION_DENIED_BODY = {
    "error": {
        "code": 403,
        "message": "The caller does not have permission",
        "status": "PERMISSION_DENIED",
    }
}


# --------------------------------------------------------------------------
# Scripted server


@dataclass
class ScriptedResponse:
    status: int = 200
    body: bytes | dict = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Hold the response back until the test ends, so the client times out after
    # the server has received the request.
    hang: bool = False


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """A ThreadingHTTPServer on 127.0.0.1 that plays a list of responses in order."""

    def __init__(self) -> None:
        self.responses: list[ScriptedResponse] = []
        self.received: list[Received] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedHandler)
        self._httpd.daemon_threads = True
        self._httpd.scripted = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()

    def script(self, *responses: ScriptedResponse) -> None:
        self.responses.extend(responses)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def record(self, received: Received) -> ScriptedResponse:
        with self._lock:
            self.received.append(received)
            if self.responses:
                return self.responses.pop(0)
        return ScriptedResponse(400, b"no scripted response left")

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


class _ScriptedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._respond()

    def do_POST(self) -> None:
        self._respond()

    def do_PUT(self) -> None:
        self._respond()

    def _respond(self) -> None:
        scripted: ScriptedServer = self.server.scripted
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        scripted_response = scripted.record(
            Received(self.command, self.path, dict(self.headers.items()), body)
        )
        if scripted_response.hang:
            scripted.release.wait(timeout=30)
        payload = scripted_response.body
        if isinstance(payload, dict):
            payload = json.dumps(payload).encode()
        try:
            self.send_response(scripted_response.status)
            for name, value in scripted_response.headers.items():
                self.send_header(name, value)
            if isinstance(scripted_response.body, dict):
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up on a hanging response.
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


class FakeClock:
    """A clock that moves only when send() or a bucket sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture
def session():
    with requests.Session() as http:
        yield http


@pytest.fixture
def clock():
    return FakeClock()


def seeded_policy(**overrides) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(SEED), **overrides)


def expected_backoffs(
    count: int, base: float = 0.5, maximum: float = 30.0
) -> list[float]:
    rng = random.Random(SEED)
    return [rng.uniform(0, min(maximum, base * 2**retry)) for retry in range(count)]


def call(session, clock, method, url, policy, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", READ_TIMEOUT)
    return send(
        session,
        method,
        url,
        policy=policy,
        sleep=clock.sleep,
        clock=clock,
        **kwargs,
    )


def closed_port_url() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}/v4/spreadsheets/abc/values/A1:append"


def fetch(server, session, scripted_response: ScriptedResponse) -> requests.Response:
    server.script(scripted_response)
    return session.get(server.url("/probe"), timeout=READ_TIMEOUT)


# --------------------------------------------------------------------------
# Retries on statuses


def test_send_success_sends_once(server, session, clock):
    server.script(ScriptedResponse(200, b"ok"))

    response = call(session, clock, "GET", server.url("/v4/ok"), seeded_policy())

    assert response.status_code == 200
    assert response.text == "ok"
    assert len(server.received) == 1
    assert clock.sleeps == []


def test_send_503_then_200(server, session, clock):
    server.script(ScriptedResponse(503), ScriptedResponse(200, b"done"))

    response = call(session, clock, "GET", server.url("/v4/flaky"), seeded_policy())

    assert response.status_code == 200
    assert response.text == "done"
    assert len(server.received) == 2
    assert clock.sleeps == expected_backoffs(1)


def test_send_exhausted_after_attempts(server, session, clock):
    server.script(*[ScriptedResponse(503) for _ in range(5)])

    with pytest.raises(RetryExhausted) as caught:
        call(session, clock, "GET", server.url("/v4/down?alt=json"), seeded_policy())

    error = caught.value
    assert error.attempts == 5
    assert error.last_response is not None
    assert error.last_response.status_code == 503
    assert error.__cause__ is None
    assert len(server.received) == 5
    assert clock.sleeps == expected_backoffs(4)
    message = str(error)
    assert "/v4/down" in message
    assert "5 attempt(s)" in message
    assert "HTTP 503" in message
    assert "rerun the flow later" in message


def test_send_jitter_none_exact_delays(server, session, clock):
    server.script(*[ScriptedResponse(500) for _ in range(5)])
    policy = seeded_policy(jitter="none", base_seconds=0.5, max_seconds=1.5)

    with pytest.raises(RetryExhausted):
        call(session, clock, "GET", server.url("/v4/down"), policy)

    assert clock.sleeps == [0.5, 1.0, 1.5, 1.5]


def test_send_400_not_retried(server, session, clock, caplog):
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    server.script(
        ScriptedResponse(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}})
    )

    response = call(session, clock, "POST", server.url("/v4/bad"), seeded_policy())

    assert response.status_code == 400
    assert len(server.received) == 1
    assert clock.sleeps == []
    assert caplog.records == []


@pytest.mark.parametrize("status", [401, 404, 409])
def test_send_other_client_errors_returned(server, session, clock, status):
    server.script(ScriptedResponse(status))

    response = call(session, clock, "GET", server.url("/v4/x"), seeded_policy())

    assert response.status_code == status
    assert len(server.received) == 1


def test_send_403_without_quota_reason_returned(server, session, clock):
    server.script(ScriptedResponse(403, PERMISSION_DENIED_BODY))

    response = call(session, clock, "GET", server.url("/v4/private"), seeded_policy())

    assert response.status_code == 403
    assert len(server.received) == 1
    assert clock.sleeps == []


def test_send_403_rate_limit_reason_retried(server, session, clock):
    server.script(
        ScriptedResponse(403, LEGACY_USER_RATE_BODY), ScriptedResponse(200, b"ok")
    )

    response = call(
        session, clock, "GET", server.url("/drive/v3/files"), seeded_policy()
    )

    assert response.status_code == 200
    assert len(server.received) == 2
    assert clock.sleeps == [2.0]


# --------------------------------------------------------------------------
# Retry-After, quota floors and the deadline


def test_send_honors_retry_after_seconds(server, session, clock):
    server.script(
        ScriptedResponse(429, headers={"Retry-After": "7"}), ScriptedResponse(200)
    )

    response = call(session, clock, "GET", server.url("/v4/limited"), seeded_policy())

    assert response.status_code == 200
    assert len(server.received) == 2
    assert clock.sleeps == [7.0]


def test_send_caps_retry_after(server, session, clock):
    server.script(
        ScriptedResponse(429, headers={"Retry-After": "600"}),
        ScriptedResponse(503, headers={"Retry-After": "600"}),
        ScriptedResponse(200),
    )

    response = call(session, clock, "GET", server.url("/v4/limited"), seeded_policy())

    assert response.status_code == 200
    assert clock.sleeps == [60.0, 60.0]


def test_send_retry_after_custom_cap(server, session, clock):
    server.script(
        ScriptedResponse(429, headers={"Retry-After": "45"}), ScriptedResponse(200)
    )

    call(
        session,
        clock,
        "GET",
        server.url("/v4/limited"),
        seeded_policy(retry_after_cap_seconds=5),
    )

    assert clock.sleeps == [5.0]


def test_send_retry_after_http_date(server, session, clock):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    server.script(
        ScriptedResponse(
            429,
            headers={"Retry-After": email.utils.format_datetime(later, usegmt=True)},
        ),
        ScriptedResponse(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        ScriptedResponse(200),
    )

    response = call(session, clock, "GET", server.url("/v4/limited"), seeded_policy())

    assert response.status_code == 200
    assert clock.sleeps == [60.0, 0.0]


def test_send_invalid_retry_after_uses_backoff(server, session, clock):
    server.script(
        ScriptedResponse(429, headers={"Retry-After": "soon"}), ScriptedResponse(200)
    )

    call(session, clock, "GET", server.url("/v4/limited"), seeded_policy())

    assert clock.sleeps == expected_backoffs(1)


def test_send_user_quota_minimum_delay(server, session, clock, caplog):
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    server.script(ScriptedResponse(429, USER_QUOTA_BODY), ScriptedResponse(200))

    call(
        session,
        clock,
        "POST",
        server.url("/v4/spreadsheets/abc:batchUpdate"),
        seeded_policy(),
    )

    assert clock.sleeps == [2.0]
    assert "per-user quota WriteRequestsPerMinutePerUser" in caplog.text


def test_send_project_quota_longer_delay(server, session, clock, caplog):
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    server.script(ScriptedResponse(429, PROJECT_QUOTA_BODY), ScriptedResponse(200))

    call(
        session,
        clock,
        "POST",
        server.url("/v4/spreadsheets/abc:batchUpdate"),
        seeded_policy(),
    )

    assert clock.sleeps == [10.0]
    assert clock.sleeps[0] > seeded_policy().user_quota_min_seconds
    assert "per-project quota WriteRequestsPerMinutePerProject" in caplog.text


def test_send_project_quota_exhausted_advice(server, session, clock):
    server.script(
        ScriptedResponse(429, PROJECT_QUOTA_BODY),
        ScriptedResponse(429, PROJECT_QUOTA_BODY),
    )

    with pytest.raises(RetryExhausted) as caught:
        call(session, clock, "GET", server.url("/v4/x"), seeded_policy(attempts=2))

    message = str(caught.value)
    assert "per-project quota WriteRequestsPerMinutePerProject" in message
    assert "request a higher quota" in message


def test_send_deadline_stops_before_sleep(server, session, clock):
    server.script(
        ScriptedResponse(429, headers={"Retry-After": "8"}),
        ScriptedResponse(429, headers={"Retry-After": "8"}),
        ScriptedResponse(200),
    )

    with pytest.raises(DeadlineExceeded) as caught:
        call(
            session,
            clock,
            "GET",
            server.url("/v4/slow"),
            seeded_policy(deadline_seconds=10),
        )

    error = caught.value
    assert error.attempts == 2
    assert error.last_response.status_code == 429
    assert len(server.received) == 2
    assert clock.sleeps == [8.0]
    assert clock.now <= 10
    assert "10 s deadline" in str(error)
    assert "/v4/slow" in str(error)


def test_send_deadline_counts_bucket_waits(server, session, clock):
    server.script(ScriptedResponse(503), ScriptedResponse(503), ScriptedResponse(200))
    bucket = TokenBucket(1, 20, clock=clock, sleep=clock.sleep)
    policy = seeded_policy(jitter="none", base_seconds=1, deadline_seconds=15)

    with pytest.raises(DeadlineExceeded):
        call(session, clock, "GET", server.url("/v4/x"), policy, bucket=bucket)

    # Attempt 1 at 0 s, back-off 1 s, bucket wait 19 s: the second back-off
    # of 2 s would end at 22 s, past the 15 s deadline.
    assert clock.sleeps == [1.0, pytest.approx(19.0)]
    assert len(server.received) == 2


# --------------------------------------------------------------------------
# Token bucket


def test_send_takes_token_before_each_attempt(server, session, clock):
    server.script(ScriptedResponse(503), ScriptedResponse(503), ScriptedResponse(200))
    bucket = TokenBucket(1, 4, clock=clock, sleep=clock.sleep)
    policy = seeded_policy(jitter="none", base_seconds=1)

    response = call(session, clock, "GET", server.url("/v4/x"), policy, bucket=bucket)

    assert response.status_code == 200
    assert len(server.received) == 3
    # back-off 1 s, bucket wait 3 s (refill every 4 s), back-off 2 s, bucket wait 2 s.
    assert clock.sleeps == [1.0, 3.0, 2.0, 2.0]


def test_send_bucket_paces_separate_calls(server, session, clock):
    server.script(ScriptedResponse(200), ScriptedResponse(200), ScriptedResponse(200))
    bucket = TokenBucket(60, 60, clock=clock, sleep=clock.sleep)

    for _ in range(3):
        call(session, clock, "GET", server.url("/v4/x"), seeded_policy(), bucket=bucket)

    assert clock.sleeps == [1.0, 1.0]
    assert len(server.received) == 3


# --------------------------------------------------------------------------
# Timeouts and ambiguous writes


def test_send_retries_timeout_when_idempotent(server, session, clock):
    server.script(ScriptedResponse(hang=True), ScriptedResponse(200, b"late but fine"))

    response = call(session, clock, "GET", server.url("/v4/values/A1"), seeded_policy())

    assert response.text == "late but fine"
    assert len(server.received) == 2
    assert clock.sleeps == expected_backoffs(1)


def test_send_ambiguous_write_not_resent(server, session, clock):
    server.script(ScriptedResponse(hang=True), ScriptedResponse(200))

    with pytest.raises(AmbiguousWrite) as caught:
        call(
            session,
            clock,
            "POST",
            server.url("/v4/spreadsheets/abc/values/A1:append"),
            seeded_policy(),
            idempotent=False,
            json={"values": [[1]]},
        )

    error = caught.value
    assert not isinstance(error, AmbiguousWriteApplied)
    assert isinstance(error.__cause__, requests.ReadTimeout)
    assert error.attempts == 1
    assert len(server.received) == 1
    assert server.received[0].body == b'{"values": [[1]]}'
    assert clock.sleeps == []
    assert str(error) == (
        f"POST {server.url('/v4/spreadsheets/abc/values/A1:append')} may have been"
        " applied: it failed with ReadTimeout after the request was sent. It was"
        " not resent, because a resend could apply it twice. Check whether the"
        " change is there before running again"
    )
    # Advice for developers stays out of what users read.
    assert "on_ambiguous" not in str(error)
    assert "send()" not in str(error)
    assert "range" not in str(error)


def test_send_ambiguous_write_resent_when_safe(server, session, clock, caplog):
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    server.script(ScriptedResponse(hang=True), ScriptedResponse(200, b"appended"))
    seen: list[Exception] = []

    def write_did_not_apply(exc: Exception) -> bool:
        seen.append(exc)
        return True

    response = call(
        session,
        clock,
        "POST",
        server.url("/v4/spreadsheets/abc/values/A1:append"),
        seeded_policy(),
        idempotent=False,
        on_ambiguous=write_did_not_apply,
    )

    assert response.text == "appended"
    assert len(server.received) == 2
    assert len(seen) == 1
    assert isinstance(seen[0], requests.ReadTimeout)
    assert "write reported not applied" in caplog.text


def test_send_ambiguous_write_applied_not_resent(server, session, clock):
    server.script(ScriptedResponse(hang=True), ScriptedResponse(200))
    seen: list[Exception] = []

    def write_applied(exc: Exception) -> bool:
        seen.append(exc)
        return False

    with pytest.raises(AmbiguousWriteApplied) as caught:
        call(
            session,
            clock,
            "POST",
            server.url("/v4/spreadsheets/abc/values:batchUpdate"),
            seeded_policy(),
            idempotent=False,
            on_ambiguous=write_applied,
        )

    assert isinstance(caught.value, AmbiguousWrite)
    assert isinstance(caught.value.__cause__, requests.ReadTimeout)
    assert len(seen) == 1
    assert len(server.received) == 1
    assert clock.sleeps == []


def test_send_ambiguous_504_on_write(server, session, clock):
    server.script(ScriptedResponse(504), ScriptedResponse(200))
    seen: list[Exception] = []

    def write_applied(exc: Exception) -> bool:
        seen.append(exc)
        return False

    with pytest.raises(AmbiguousWriteApplied) as caught:
        call(
            session,
            clock,
            "POST",
            server.url("/v4/append"),
            seeded_policy(),
            idempotent=False,
            on_ambiguous=write_applied,
        )

    assert caught.value.last_response.status_code == 504
    assert isinstance(seen[0], requests.HTTPError)
    assert seen[0].response.status_code == 504
    assert len(server.received) == 1


def test_send_write_retries_503(server, session, clock):
    server.script(
        ScriptedResponse(503),
        ScriptedResponse(429, headers={"Retry-After": "1"}),
        ScriptedResponse(200),
    )

    response = call(
        session,
        clock,
        "POST",
        server.url("/v4/append"),
        seeded_policy(),
        idempotent=False,
    )

    assert response.status_code == 200
    assert len(server.received) == 3
    assert clock.sleeps == [expected_backoffs(1)[0], 1.0]


def test_send_write_refused_connection_resent(session, clock):
    # A refused connection never carried the request, so a write is not ambiguous.
    url = closed_port_url()

    with pytest.raises(RetryExhausted) as caught:
        call(session, clock, "POST", url, seeded_policy(attempts=3), idempotent=False)

    error = caught.value
    assert not isinstance(error, AmbiguousWrite)
    assert isinstance(error.__cause__, requests.ConnectionError)
    assert error.last_response is None
    assert error.attempts == 3
    assert len(clock.sleeps) == 2
    assert "ConnectionError" in str(error)
    assert "127.0.0.1 is reachable" in str(error)


# --------------------------------------------------------------------------
# Logging and secrets


def test_send_logs_retry_without_secrets(server, session, clock, caplog):
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    server.script(ScriptedResponse(429, USER_QUOTA_BODY), ScriptedResponse(200))
    url = server.url(
        "/v4/spreadsheets/abc/values/A1:append?alt=json&access_token=SECRET&key=APIKEY"
    )

    call(
        session,
        clock,
        "POST",
        url,
        seeded_policy(),
        headers={"Authorization": "Bearer HEADERTOKEN"},
        json={"values": [["BODYVALUE"]]},
    )

    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.name == "runtime.http.retry"
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert "attempt 1 of 5" in text
    assert "retrying in 2.00 s" in text
    assert "HTTP 429 RESOURCE_EXHAUSTED RATE_LIMIT_EXCEEDED" in text
    assert "POST" in text
    assert "/v4/spreadsheets/abc/values/A1:append?alt=json" in text
    assert record.http_delay_seconds == 2.0
    assert record.http_attempt == 1
    for secret in ("SECRET", "APIKEY", "HEADERTOKEN", "BODYVALUE", "Authorization"):
        assert secret not in caplog.text
    # Only the log is redacted: the server still got the credentials.
    assert "access_token=SECRET" in server.received[0].path
    assert server.received[0].headers["Authorization"] == "Bearer HEADERTOKEN"


def test_send_logs_exception_class(server, session, clock, caplog):
    caplog.set_level(logging.WARNING, logger="runtime.http.retry")
    server.script(ScriptedResponse(hang=True), ScriptedResponse(200))

    call(session, clock, "GET", server.url("/v4/x?token=SECRET"), seeded_policy())

    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "failed with ReadTimeout" in text
    assert f"retrying in {expected_backoffs(1)[0]:.2f} s" in text
    assert "SECRET" not in caplog.text


def test_send_error_message_without_secrets(server, session, clock):
    server.script(ScriptedResponse(503), ScriptedResponse(503))
    url = server.url("/v4/x?access_token=SECRET&alt=json")

    with pytest.raises(RetryExhausted) as caught:
        call(session, clock, "GET", url, seeded_policy(attempts=2))

    assert "SECRET" not in str(caught.value)
    assert "SECRET" not in caught.value.url
    assert caught.value.url.endswith("/v4/x?alt=json")


def test_send_rejects_adapter_retries(server, clock):
    server.script(ScriptedResponse(200))
    with requests.Session() as http:
        http.mount("http://", HTTPAdapter(max_retries=3))

        with pytest.raises(ValueError, match=r"urllib3 retries enabled"):
            call(http, clock, "GET", server.url("/v4/x"), seeded_policy())

    assert server.received == []


def test_exceptions_share_base():
    assert issubclass(RetryExhausted, HTTPFailure)
    assert issubclass(DeadlineExceeded, HTTPFailure)
    assert issubclass(AmbiguousWrite, HTTPFailure)
    assert issubclass(AmbiguousWriteApplied, AmbiguousWrite)
    assert not issubclass(DeadlineExceeded, RetryExhausted)


# --------------------------------------------------------------------------
# classify_google_error, parse_retry_after, redact_url, RetryPolicy


def test_classify_user_quota(server, session):
    error = classify_google_error(
        fetch(server, session, ScriptedResponse(429, USER_QUOTA_BODY))
    )

    assert error is not None
    assert error.kind is GoogleErrorKind.USER_QUOTA
    assert error.code == 429
    assert error.status == "RESOURCE_EXHAUSTED"
    assert error.reason == "RATE_LIMIT_EXCEEDED"
    assert error.quota_limit == "WriteRequestsPerMinutePerUser"
    assert error.quota_metric == "sheets.googleapis.com/write_requests"
    assert error.is_rate_limit


def test_classify_project_quota(server, session):
    error = classify_google_error(
        fetch(server, session, ScriptedResponse(429, PROJECT_QUOTA_BODY))
    )

    assert error.kind is GoogleErrorKind.PROJECT_QUOTA
    assert error.quota_limit == "WriteRequestsPerMinutePerProject"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (403, LEGACY_USER_RATE_BODY, GoogleErrorKind.USER_QUOTA),
        (
            403,
            {"error": {"code": 403, "errors": [{"reason": "rateLimitExceeded"}]}},
            GoogleErrorKind.RATE_LIMIT,
        ),
        (
            429,
            {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}},
            GoogleErrorKind.RATE_LIMIT,
        ),
        (
            503,
            {"error": {"code": 503, "status": "UNAVAILABLE"}},
            GoogleErrorKind.BACKEND,
        ),
        (500, {"error": {"code": 500, "status": "INTERNAL"}}, GoogleErrorKind.BACKEND),
        (
            500,
            {"error": {"code": 500, "errors": [{"reason": "backendError"}]}},
            GoogleErrorKind.BACKEND,
        ),
        (403, PERMISSION_DENIED_BODY, GoogleErrorKind.OTHER),
        (
            403,
            {"error": {"code": 403, "errors": [{"reason": "dailyLimitExceeded"}]}},
            GoogleErrorKind.OTHER,
        ),
    ],
)
def test_classify_kinds(server, session, status, body, kind):
    error = classify_google_error(
        fetch(server, session, ScriptedResponse(status, body))
    )

    assert error is not None
    assert error.kind is kind


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b"",
        b"{not json",
        b'{"message": "no error key"}',
        b"[1, 2]",
    ],
)
def test_classify_non_google_body(server, session, body):
    assert (
        classify_google_error(fetch(server, session, ScriptedResponse(502, body)))
        is None
    )


def test_parse_retry_after_values():
    now = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)

    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_redact_url_removes_secrets():
    url = (
        "https://user:pw@sheets.example.test:8443/v4/x?alt=json&KEY=a"
        "&access_token=b&token=c&range=A1#frag"
    )

    redacted = redact_url(url)

    assert redacted == "https://sheets.example.test:8443/v4/x?alt=json&range=A1"


def test_redact_url_keeps_plain_url():
    assert redact_url("http://127.0.0.1/v4/x") == "http://127.0.0.1/v4/x"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attempts": 0}, "attempts must be at least 1, got 0"),
        ({"jitter": "equal"}, "jitter must be one of"),
        ({"base_seconds": -1}, "base_seconds must be a non-negative number, got -1"),
        ({"deadline_seconds": 0}, "deadline_seconds must be positive, got 0"),
        ({"statuses": frozenset({429, 700})}, "got 700"),
    ],
)
def test_policy_rejects_invalid_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attempts": 2.5}, "attempts must be an integer, got 2.5"),
        ({"statuses": {429}}, "statuses must be a frozenset"),
    ],
)
def test_policy_rejects_invalid_types(overrides, message):
    with pytest.raises(TypeError, match=message):
        RetryPolicy(**overrides)


def test_policy_defaults():
    policy = RetryPolicy()

    assert policy.attempts == 5
    assert policy.base_seconds == 0.5
    assert policy.max_seconds == 30
    assert policy.deadline_seconds == 120
    assert policy.retry_after_cap_seconds == 60
    assert policy.statuses == frozenset({429, 500, 502, 503, 504})
    assert policy.jitter == "full"
    assert policy.project_quota_min_seconds > policy.user_quota_min_seconds
