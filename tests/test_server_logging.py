"""What the backend logs: runs, retries and webhook events with their ids, never a secret.

The first tests run ``create_app_from_env`` under gunicorn and under waitress,
the production commands of ``docs/server.md``, and read the server's stderr.
The others capture log records in this process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sheets_addon.server import ServerConfigError, create_app, create_app_from_env
from sheets_addon.server.logs import configure_logging, parse_level
from sheets_addon.server.store import ServerStore
from support import LiveServer, server_env, write_server_project

SECRETS = server_env()
HOOK_SECRET = SECRETS["SYNCPLAN_TEST_HOOK_SECRET"]
FINAL = ("succeeded", "failed", "interrupted")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command(kind: str, port: int) -> list[str]:
    if kind == "gunicorn":
        # No control socket: its default path in $HOME would be shared by
        # every gunicorn started at once.
        return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--threads", "4", "--no-control-socket",
                "sheets_addon.server:create_app_from_env()"]
    return [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
            "--threads=4", "--call", "sheets_addon.server:create_app_from_env"]


def wait_until_serving(port: int, process: subprocess.Popen[bytes],
                       log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(encoding="utf-8", errors="replace")
            raise AssertionError(f"the server exited with {process.returncode}:"
                                 f"\n{output[-3000:]}")
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except requests.RequestException:  # not listening yet
            time.sleep(0.1)
    raise AssertionError("the server did not start within 60 s")


def wait_for_run(port: int, key: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = requests.get(f"http://127.0.0.1:{port}/api/v1/runs/{run_id}",
                           headers={"X-Api-Key": key}, timeout=5).json()["run"]
        if run["status"] in FINAL:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end within 30 s")


def signed_hook(port: int, body: bytes, secret: str) -> requests.Response:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(f"http://127.0.0.1:{port}/api/v1/hooks/hooks", data=body,
                         timeout=10, headers={"Content-Type": "application/json",
                                              "X-Signature": signature})


class ServedLog:
    """What one server process wrote to stderr, with the values it must not show."""

    def __init__(self, text: str, key: str, run_id: str, signatures: list[str]
                 ) -> None:
        self.text = text
        self.key = key
        self.run_id = run_id
        self.signatures = signatures


def serve_and_log(kind: str, tmp_path: Path) -> ServedLog:
    root = write_server_project(tmp_path / "project", gate=False)
    state = root / ".syncplan" / "state.db"
    store = ServerStore(state)
    _record, key = store.create_api_key("logging-test")
    store.close()
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {key_name: value for key_name, value in os.environ.items()
           if not key_name.startswith("SYNCPLAN_")}
    env.update(SECRETS, SYNCPLAN_PROJECT=str(root), SYNCPLAN_DEV="1")
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(server_command(kind, port), env=env,
                                   stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(port, process, log_path)
            started = requests.post(f"http://127.0.0.1:{port}/api/v1/flows/rows/runs",
                                    headers={"X-Api-Key": key}, timeout=10)
            assert started.status_code == 202, started.text
            run_id = started.json()["run"]["id"]
            wait_for_run(port, key, run_id)
            body = json.dumps({"meta": {"id": "evt-log-1", "type": "deal.created"}}
                              ).encode()
            accepted = signed_hook(port, body, HOOK_SECRET)
            assert accepted.status_code == 202, accepted.text
            forged = signed_hook(port, body, "not-the-secret")
            assert forged.status_code == 401, forged.text
            requests.get(f"http://127.0.0.1:{port}/api/v1/flows",
                         headers={"X-Api-Key": key + "x"}, timeout=5)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    signatures = [hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                  for secret in (HOOK_SECRET, "not-the-secret")]
    return ServedLog(log_path.read_text(encoding="utf-8", errors="replace"), key,
                     run_id, signatures)


@pytest.fixture(params=["gunicorn", "waitress"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> ServedLog:
    return serve_and_log(request.param, tmp_path)


def test_wsgi_server_logs_queued_run(served: ServedLog) -> None:
    assert f"run {served.run_id} of flow rows queued by api-key" in served.text
    assert f"run {served.run_id} of flow rows started by" in served.text
    assert f"run {served.run_id} of flow rows succeeded" in served.text


def test_wsgi_server_logs_webhook_event_ids(served: ServedLog) -> None:
    assert "webhook event evt-log-1 (deal.created) of system hooks received: new" \
        in served.text
    assert "of flow hook_deals queued by webhook of system hooks" in served.text
    rejected = ("webhook delivery for system hooks from 127.0.0.1 rejected:"
                " invalid_signature")
    assert rejected in served.text


def test_wsgi_server_logs_no_secret(served: ServedLog) -> None:
    assert served.key not in served.text
    assert served.key.rsplit("_", 1)[1] not in served.text
    assert HOOK_SECRET not in served.text
    for signature in served.signatures:
        assert signature not in served.text


# --- in this process -------------------------------------------------------------


@pytest.fixture()
def restore_loggers() -> Iterator[None]:
    saved = {name: (logging.getLogger(name).level,
                    list(logging.getLogger(name).handlers))
             for name in ("sheets_addon", "runtime")}
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers


def test_configure_logging_keeps_existing_handler(restore_loggers: None) -> None:
    # pytest's capture handler on the root logger takes every record already.
    logging.getLogger("sheets_addon").setLevel(logging.NOTSET)

    added = configure_logging(None)

    assert added == []
    assert logging.getLogger("sheets_addon").level == logging.INFO


def test_configure_logging_adds_handler_once(restore_loggers: None) -> None:
    for name in ("sheets_addon", "runtime"):
        logging.getLogger(name).propagate = False
    try:
        first = configure_logging(logging.WARNING)
        second = configure_logging(logging.WARNING)
    finally:
        for name in ("sheets_addon", "runtime"):
            logging.getLogger(name).propagate = True

    assert len(first) == 2
    assert second == []
    assert logging.getLogger("runtime").level == logging.WARNING


def test_log_level_names_are_checked() -> None:
    assert parse_level("debug") == logging.DEBUG
    assert parse_level("") is None
    with pytest.raises(ValueError, match="SYNCPLAN_LOG_LEVEL='loud'"):
        parse_level("loud")


def test_create_app_from_env_bad_log_level(monkeypatch: pytest.MonkeyPatch,
                                           restore_loggers: None) -> None:
    monkeypatch.setenv("SYNCPLAN_LOG_LEVEL", "chatty")

    with pytest.raises(ServerConfigError, match="one of DEBUG, INFO"):
        create_app_from_env()


def test_serve_bad_log_level(tmp_path: Path) -> None:
    root = write_server_project(tmp_path / "project", gate=False)
    env = dict(os.environ, SYNCPLAN_LOG_LEVEL="chatty")

    done = subprocess.run([sys.executable, "-m", "sheets_addon.cli", "serve", str(root),
                           "--dev", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    assert "SYNCPLAN_LOG_LEVEL='chatty' is not a valid log level" in done.stderr
    assert "Traceback" not in done.stderr


def webhook_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> tuple[LiveServer, Any]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    root = write_server_project(tmp_path / "project", gate=False)
    app = create_app(root, dev_mode=True, poll_seconds=0.2, workers=1)
    return LiveServer(app).start(), app.extensions["syncplan"]


def test_webhook_logs_event_ids_not_secrets(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture
                                            ) -> None:
    server, backend = webhook_backend(tmp_path, monkeypatch)
    body = json.dumps([{"meta": {"id": "evt-a", "type": "deal.created"}},
                       {"meta": {"id": "evt-b", "type": "deal.deleted"}}]).encode()
    good = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    bad = hmac.new(b"wrong", body, hashlib.sha256).hexdigest()
    url = server.url("/api/v1/hooks/hooks")
    try:
        with caplog.at_level(logging.DEBUG):
            first = requests.post(url, data=body, timeout=10,
                                  headers={"X-Signature": good})
            repeat = requests.post(url, data=body, timeout=10,
                                   headers={"X-Signature": "sha256=" + good})
            forged = requests.post(url, data=body, timeout=10,
                                   headers={"X-Signature": bad})
    finally:
        server.stop()
        backend.close(wait_seconds=5)

    assert first.status_code == 202
    assert repeat.status_code == 202
    assert forged.status_code == 401
    run_id = first.json()["runs"][0]["id"]
    assert "webhook event evt-a (deal.created) of system hooks received: new" \
        in caplog.text
    assert "webhook event evt-b (deal.deleted) of system hooks received: new" \
        in caplog.text
    assert "webhook event evt-a (deal.created) of system hooks received: duplicate" \
        in caplog.text
    assert f"run {run_id} of flow hook_deals queued by webhook of system hooks" \
        in caplog.text
    assert "rejected: invalid_signature" in caplog.text
    assert HOOK_SECRET not in caplog.text
    assert good not in caplog.text
    assert bad not in caplog.text


def test_hubspot_webhook_logs_no_signature(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture
                                           ) -> None:
    from sheets_addon.server.webhooks import hubspot_v3_signature

    server, backend = webhook_backend(tmp_path, monkeypatch)
    secret = SECRETS["SYNCPLAN_TEST_HUBSPOT_SECRET"]
    body = json.dumps([{"eventId": 77, "subscriptionType": "deal.creation"}]).encode()
    stamp = str(int(time.time() * 1000))
    path = "/api/v1/hooks/crm"
    signature = hubspot_v3_signature(secret, "POST", server.url(path), body, stamp)
    stale = str(int(time.time() * 1000) - 10 * 60 * 1000)
    stale_signature = hubspot_v3_signature(secret, "POST", server.url(path), body,
                                           stale)
    try:
        with caplog.at_level(logging.DEBUG):
            accepted = requests.post(server.url(path), data=body, timeout=10, headers={
                "X-HubSpot-Signature-v3": signature,
                "X-HubSpot-Request-Timestamp": stamp})
            rejected = requests.post(server.url(path), data=body, timeout=10, headers={
                "X-HubSpot-Signature-v3": stale_signature,
                "X-HubSpot-Request-Timestamp": stale})
    finally:
        server.stop()
        backend.close(wait_seconds=5)

    assert accepted.status_code == 202
    assert rejected.status_code == 401
    assert "webhook event 77 (deal.creation) of system crm received: new" \
        in caplog.text
    assert "rejected: stale_timestamp" in caplog.text
    assert secret not in caplog.text
    assert signature not in caplog.text
    assert stale_signature not in caplog.text
