"""Helpers shared by test modules: loopback servers and small spec projects.

- ``google_tokens.TokenIssuer``: signs Google-style ID tokens and serves their
  certificates on 127.0.0.1.
- ``LiveServer``: a WSGI app served by werkzeug on a free loopback port in a
  thread, with ``url(path)``; ``with LiveServer(app) as server: ...``.
- ``write_server_project(root)``: a spec project with manual, blocking,
  permission-restricted and webhook-triggered flows, for backend tests.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

HUBSPOT_SECRET_ENV = "SYNCPLAN_TEST_HUBSPOT_SECRET"
HOOK_SECRET_ENV = "SYNCPLAN_TEST_HOOK_SECRET"

SERVER_PROJECT = """\
version: 1
project: servertest
systems:
  src: {kind: csv, path: rows.csv}
  gated: {kind: csv, path: "${file:gate}"}
  crm:
    kind: json
    path: deals.json
    webhook: {signature: hubspot_v3, secret: "${env:SYNCPLAN_TEST_HUBSPOT_SECRET}"}
  hooks:
    kind: json
    path: deals.json
    webhook:
      signature: hmac_sha256_hex
      secret: "${env:SYNCPLAN_TEST_HOOK_SECRET}"
      header: X-Signature
      event_id: meta.id
      event_type: meta.type
  out: {kind: sheets, spreadsheet: out/report.xlsx}
  gated_out: {kind: sheets, spreadsheet: out/gated.xlsx}
  crm_out: {kind: sheets, spreadsheet: out/crm.xlsx}
entities:
  row:
    key: id
    fields:
      id: {type: integer, owner: src}
      name: {type: string, owner: src}
  slow_row:
    key: id
    fields:
      id: {type: integer, owner: gated}
      name: {type: string, owner: gated}
  deal:
    key: id
    fields:
      id: {type: integer, owner: crm}
      name: {type: string, owner: crm}
  hook_deal:
    key: id
    fields:
      id: {type: integer, owner: hooks}
      name: {type: string, owner: hooks}
flows:
  rows:
    description: Rows for the team.
    source: {system: src}
    map: {entity: row, fields: {id: id, name: name}}
    destinations: [{system: out, object: Rows, mode: upsert}]
    permissions: {emails: [ana@agency.example], domains: [partner.example]}
  private:
    description: Only for API keys.
    source: {system: src}
    map: {entity: row, fields: {id: id, name: name}}
    destinations: [{system: out, object: Private, mode: upsert}]
  slow:
    description: Blocks on the gate FIFO until a test writes to it.
    source: {system: gated}
    map: {entity: slow_row, fields: {id: id, name: name}}
    destinations: [{system: gated_out, object: Slow, mode: upsert}]
    permissions: {emails: [ana@agency.example]}
  deal_changes:
    trigger: {webhook: {system: crm, event: deal.propertyChange}}
    source: {system: crm}
    map: {entity: deal, fields: {id: id, name: name}}
    destinations: [{system: crm_out, object: Deals, mode: upsert}]
  any_crm_event:
    trigger: {webhook: {system: crm}}
    source: {system: crm}
    map: {entity: deal, fields: {id: id, name: name}}
    destinations: [{system: crm_out, object: All deals, mode: upsert}]
  hook_deals:
    trigger: {webhook: {system: hooks, event: deal.created}}
    source: {system: hooks}
    map: {entity: hook_deal, fields: {id: id, name: name}}
    destinations: [{system: crm_out, object: Hook deals, mode: upsert}]
"""


def write_server_project(root: Path, *, gate: bool = True) -> Path:
    """Write the backend test project into ``root``; return ``root``.

    ``rows.csv`` has two good rows and one whose id is not an integer, so each
    run of ``rows`` keeps one error record. With ``gate``, ``gate`` is a FIFO:
    a run of ``slow`` blocks reading it until ``open_gate(root)``.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "syncplan.yaml").write_text(SERVER_PROJECT, encoding="utf-8")
    (root / "rows.csv").write_text("id,name\n1,alpha\n2,beta\nx,broken\n",
                                   encoding="utf-8")
    (root / "deals.json").write_text('[{"id": 1, "name": "Acme renewal"}]',
                                     encoding="utf-8")
    if gate:
        os.mkfifo(root / "gate")
    return root


def open_gate(root: Path) -> bool:
    """Let one blocked run of ``slow`` read its source; return False if none waits."""
    try:
        descriptor = os.open(root / "gate", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader has the FIFO open
        return False
    with os.fdopen(descriptor, "w") as gate:
        gate.write("rows.csv\n")
    return True


def server_env() -> dict[str, str]:
    """Return the webhook secrets the test project refers to."""
    return {HUBSPOT_SECRET_ENV: "hubspot-test-secret",
            HOOK_SECRET_ENV: "hook-test-secret"}


class LiveServer:
    """Serve a WSGI app on a free 127.0.0.1 port from a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # keep-alive handlers end on their own
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="live-server", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

