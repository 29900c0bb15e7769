"""Who may call the backend: Google ID tokens through the real check, API keys, permissions."""

from __future__ import annotations

import base64
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from sheets_addon.cli import cli
from sheets_addon.server import ServerConfigError, create_app
from support import LiveServer, open_gate, server_env, write_server_project
from support.google_tokens import TokenIssuer

ANA = "ana@agency.example"


class Setup:
    def __init__(self, server: LiveServer, issuer: TokenIssuer, root: Path,
                 backend: Any) -> None:
        self.server = server
        self.issuer = issuer
        self.root = root
        self.backend = backend

    def call(self, method: str, path: str, token: str | None = None,
             **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.server.url(path), headers=headers,
                                timeout=10, **kwargs)

    def jobs(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / ".syncplan" / "state.db") as db:
            return db.execute("SELECT run_id, flow, status FROM jobs").fetchall()


@pytest.fixture()
def issuer() -> Iterator[TokenIssuer]:
    with TokenIssuer() as running:
        yield running


@pytest.fixture()
def setup(tmp_path: Path, issuer: TokenIssuer,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    for name, value in server_env().items():
        monkeypatch.setenv(name, value)
    root = write_server_project(tmp_path / "project")
    app = create_app(root, oauth_client_id=issuer.audience,
                     certs_url=issuer.certs_url, poll_seconds=0.2)
    backend = app.extensions["syncplan"]
    server = LiveServer(app).start()
    try:
        yield Setup(server, issuer, root, backend)
    finally:
        server.stop()
        open_gate(root)
        backend.close(wait_seconds=5)


# --- Google ID tokens ------------------------------------------------------------------


def test_valid_token_starts_permitted_flow(setup: Setup) -> None:
    response = setup.call("POST", "/api/v1/flows/rows/runs", setup.issuer.token(ANA))

    assert response.status_code == 202
    assert response.json()["run"]["flow"] == "rows"
    assert len(setup.jobs()) == 1


def test_domain_permission_admits_user(setup: Setup) -> None:
    token = setup.issuer.token("bo@Partner.Example")

    response = setup.call("POST", "/api/v1/flows/rows/runs", token)

    assert response.status_code == 202


def test_invalid_tokens_are_rejected_and_start_nothing(setup: Setup) -> None:
    issuer = setup.issuer
    now = int(time.time())
    cases = {
        "wrong audience": (issuer.token(ANA, audience="someone-else"), 401,
                           "invalid_token"),
        "wrong issuer": (issuer.token(ANA, iss="https://evil.example"), 401,
                         "invalid_token"),
        "expired": (issuer.token(ANA, iat=now - 7200, exp=now - 3600), 401,
                    "invalid_token"),
        "bad signature": (issuer.forged_token(ANA), 401, "invalid_token"),
        "unverified email": (issuer.token(ANA, email_verified=False), 401,
                             "email_not_verified"),
        "no email": (issuer.token(None), 401, "invalid_token"),
        "not a jwt": ("abc.def", 401, "invalid_token"),
        "no permission": (issuer.token("eve@elsewhere.example"), 403, "forbidden"),
    }
    for case, (token, status, code) in cases.items():
        response = setup.call("POST", "/api/v1/flows/rows/runs", token)
        assert response.status_code == status, case
        assert response.json()["error"]["code"] == code, case
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), case
    assert setup.jobs() == []


def test_malformed_token_fetches_no_certificates(tmp_path: Path) -> None:
    root = write_server_project(tmp_path / "project", gate=False)
    # Nothing listens on port 1, so a certificate fetch would fail with a 503.
    app = create_app(root, oauth_client_id="client-1",
                     certs_url="http://127.0.0.1:1/oauth2/v1/certs")
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1"}').decode()
    payload = base64.urlsafe_b64encode(b'{"sub":"1"}').decode()
    cases = {
        "not.a.jwt.at.all": "it is not a JWT",
        "abc.def": "it is not a JWT",
        "e30.e30.c2ln": "its header is not a JSON object with a key id",
        f"{header}.{payload}.c2ln": "it is signed with 'HS256'",
    }
    client = app.test_client()
    try:
        for token, reason in cases.items():
            response = client.get("/api/v1/flows",
                                  headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, token
            error = response.get_json()["error"]
            assert error["code"] == "invalid_token", token
            assert reason in error["message"], token
    finally:
        app.extensions["syncplan"].close()


def test_issuer_without_scheme_is_accepted(setup: Setup) -> None:
    token = setup.issuer.token(ANA, iss="accounts.google.com")

    response = setup.call("GET", "/api/v1/flows", token)

    assert response.status_code == 200


def test_flow_without_permissions_is_hidden_from_users(setup: Setup) -> None:
    token = setup.issuer.token(ANA)

    listed = setup.call("GET", "/api/v1/flows", token)
    started = setup.call("POST", "/api/v1/flows/private/runs", token)

    assert {flow["id"] for flow in listed.json()["flows"]} == {"rows", "slow"}
    assert started.status_code == 403
    assert setup.jobs() == []


def test_domain_user_sees_only_domain_flows(setup: Setup) -> None:
    token = setup.issuer.token("bo@partner.example")

    listed = setup.call("GET", "/api/v1/flows", token)

    assert [flow["id"] for flow in listed.json()["flows"]] == ["rows"]


def test_run_of_other_flow_is_forbidden(setup: Setup) -> None:
    ana = setup.issuer.token(ANA)
    run_id = setup.call("POST", "/api/v1/flows/slow/runs", ana).json()["run"]["id"]
    partner = setup.issuer.token("bo@partner.example")

    status = setup.call("GET", f"/api/v1/runs/{run_id}", partner)
    errors = setup.call("GET", f"/api/v1/runs/{run_id}/errors", partner)
    retry = setup.call("POST", f"/api/v1/runs/{run_id}/retry", partner)
    own = setup.call("GET", f"/api/v1/runs/{run_id}", ana)

    assert status.status_code == 403
    assert errors.status_code == 403
    assert retry.status_code == 403
    assert own.status_code == 200


def test_certificates_fetched_once_while_cached(setup: Setup) -> None:
    first = setup.call("GET", "/api/v1/flows", setup.issuer.token(ANA))
    second = setup.call("GET", "/api/v1/flows", setup.issuer.token("bo@partner.example"))

    assert first.status_code == 200
    assert second.status_code == 200
    assert setup.issuer.fetches == 1


def test_certificates_refetched_after_max_age(tmp_path: Path) -> None:
    root = write_server_project(tmp_path / "project", gate=False)
    with TokenIssuer(max_age=1) as issuer:
        app = create_app(root, oauth_client_id=issuer.audience,
                         certs_url=issuer.certs_url)
        server = LiveServer(app).start()
        try:
            url = server.url("/api/v1/flows")
            headers = {"Authorization": f"Bearer {issuer.token(ANA)}"}
            requests.get(url, headers=headers, timeout=5)
            requests.get(url, headers=headers, timeout=5)
            after_two = issuer.fetches
            time.sleep(1.2)
            requests.get(url, headers=headers, timeout=5)
        finally:
            server.stop()
            app.extensions["syncplan"].close()

    assert after_two == 1
    assert issuer.fetches == 2


def test_missing_credentials_is_401(setup: Setup) -> None:
    response = setup.call("GET", "/api/v1/flows")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"


def test_tokens_never_logged(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    good = setup.issuer.token(ANA)
    forged = setup.issuer.forged_token(ANA)
    with caplog.at_level(logging.DEBUG):
        run_id = setup.call("POST", "/api/v1/flows/rows/runs", good).json()["run"]["id"]
        setup.call("POST", "/api/v1/flows/rows/runs", forged)
        setup.call("GET", "/api/v1/flows", "garbage.token.value")

    assert run_id in caplog.text
    assert ANA in caplog.text  # the caller is named, by email
    for token in (good, forged):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text  # not even the signature
    assert "garbage.token.value" not in caplog.text


# --- API keys ----------------------------------------------------------------------------


def test_api_key_revoked_is_401(setup: Setup) -> None:
    record, key = setup.backend.store.create_api_key("ops")
    before = setup.call("GET", "/api/v1/flows", headers={"X-Api-Key": key})
    setup.backend.store.revoke_api_key(record.key_id)

    after = setup.call("GET", "/api/v1/flows", headers={"X-Api-Key": key})

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_api_key"


def test_api_key_wrong_secret_is_401(setup: Setup) -> None:
    _record, key = setup.backend.store.create_api_key("ops")
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")

    for presented in (tampered, "spk_nothing", "not-a-key", key + "x"):
        response = setup.call("GET", "/api/v1/flows", headers={"X-Api-Key": presented})
        assert response.status_code == 401, presented


def test_api_key_stored_only_as_hash(setup: Setup) -> None:
    _record, key = setup.backend.store.create_api_key("ops")

    with sqlite3.connect(setup.root / ".syncplan" / "state.db") as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()

    secret_part = key.rsplit("_", 1)[1]
    assert rows
    assert all(secret_part not in str(row) for row in rows)


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    runner = CliRunner()

    created = runner.invoke(cli, ["keys", "create", "--name", "billing",
                                  "--state", str(state)])
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    listed = runner.invoke(cli, ["keys", "list", "--state", str(state)])
    revoked = runner.invoke(cli, ["keys", "revoke", key_id, "--state", str(state)])
    again = runner.invoke(cli, ["keys", "revoke", key_id, "--state", str(state)])
    listed_after = runner.invoke(cli, ["keys", "list", "--state", str(state)])

    assert created.exit_code == 0, created.output
    assert key.startswith("spk_")
    assert key_id in listed.stdout
    assert "billing" in listed.stdout
    assert key not in listed.stdout
    assert "active" in listed.stdout
    assert revoked.exit_code == 0
    assert again.exit_code == 1
    assert "revoked" in listed_after.stdout


# --- startup rules --------------------------------------------------------------------


def test_create_app_without_client_id_refuses(tmp_path: Path) -> None:
    root = write_server_project(tmp_path / "project", gate=False)

    with pytest.raises(ServerConfigError, match="OAuth client id"):
        create_app(root)


def test_dev_mode_rejects_bearer_tokens(tmp_path: Path, issuer: TokenIssuer) -> None:
    root = write_server_project(tmp_path / "project", gate=False)
    app = create_app(root, dev_mode=True)
    server = LiveServer(app).start()
    try:
        response = requests.get(server.url("/api/v1/flows"), timeout=5, headers={
            "Authorization": f"Bearer {issuer.token(ANA)}"})
    finally:
        server.stop()
        app.extensions["syncplan"].close()

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "google_sign_in_disabled"


def test_serve_dev_refuses_public_address(tmp_path: Path) -> None:
    root = write_server_project(tmp_path / "project", gate=False)

    result = CliRunner().invoke(cli, ["serve", str(root), "--dev", "--host",
                                      "0.0.0.0"])

    assert result.exit_code != 0
    assert "loopback" in result.output


def test_serve_without_client_id_refuses(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCPLAN_OAUTH_CLIENT_ID", raising=False)
    root = write_server_project(tmp_path / "project", gate=False)

    result = CliRunner().invoke(cli, ["serve", str(root)])

    assert result.exit_code != 0
    assert "OAuth client id" in result.output
