"""Run the Apps Script add-on's tests (``tests/addon``) against a real backend.

The backend is the Flask app of ``sheets_addon.server`` serving a copy of
``examples/agency`` on 127.0.0.1. Every flow of the copy allows
``lead@agency.example``, and one more flow, ``bulk``, maps a generated NDJSON
file whose run takes a few seconds, so a second start request finds it running.
ID tokens come from ``TokenIssuer``, whose certificates the backend fetches, so
tokens go through the real signature, audience and expiry checks.

Each test runs one Node test file with ``node --test`` and the backend's address
and tokens in ``SYNCPLAN_ADDON_*`` variables: the Code.gs tests under Node, and
the sidebar and settings pages in headless Chromium driven by playwright-core.
Without node, Chromium or ``tests/addon/node_modules`` they skip, and fail when
``CI=true``; ``.ci/setup-browser`` installs Chromium and the npm packages.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from werkzeug.serving import BaseWSGIServer, make_server

from sheets_addon.server import create_app
from support.google_tokens import TokenIssuer

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
ADDON_TESTS = REPO / "tests" / "addon"
CHROMIUM = Path("/usr/bin/chromium")
MIN_NODE_MAJOR = 20
NODE_TIMEOUT_SECONDS = 600
LEAD_EMAIL = "lead@agency.example"
OUTSIDER_EMAIL = "outsider@elsewhere.example"
OTHER_AUDIENCE = "another-client.apps.googleusercontent.com"
BULK_FLOW = "bulk"
# About 3 s of work on a 2-core machine: long enough that a second start request
# always finds the run in progress, short enough to keep the suite quick.
BULK_RECORDS = 20_000
SCREENSHOT = Path("/tmp/sidebar.png")

BULK_SPEC = {
    "systems": {
        "bulk_source": {"kind": "ndjson", "path": "data/bulk.ndjson",
                        "description": "Generated records for the add-on tests."},
        "scratch": {"kind": "sheets", "spreadsheet": "out/scratch.xlsx",
                    "description": "A workbook of its own, so the bulk tab does not"
                                   " slow down the report's flows."},
    },
    "entities": {
        "bulk_item": {
            "description": "One generated record.",
            "key": "item_id",
            "fields": {
                "item_id": {"type": "string", "owner": "bulk_source", "required": True},
                "label": {"type": "string", "owner": "bulk_source",
                          "normalize": ["trim"]},
                "amount": {"type": "decimal", "owner": "bulk_source", "scale": 2},
            },
        },
    },
    "flows": {
        BULK_FLOW: {
            "description": "Generated records into the Items tab of a scratch workbook.",
            "source": {"system": "bulk_source"},
            "map": {"entity": "bulk_item",
                    "fields": {"item_id": "id", "label": "label", "amount": "amount"}},
            "destinations": [{"system": "scratch", "object": "Items", "mode": "upsert",
                              "columns": {"item_id": "Item", "label": "Label",
                                          "amount": "Amount"}}],
            "permissions": {"emails": [LEAD_EMAIL]},
        },
    },
}


# --- what the Node tests need -------------------------------------------------------


SETUP_BROWSER = "run .ci/setup-browser, which installs it"
INSTALL_NODE = f"install Node.js {MIN_NODE_MAJOR} or newer"


def _unavailable(reason: str, fix: str) -> None:
    """Skip locally, but fail in CI, whose machine must have everything installed."""
    message = f"{reason}; {fix}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not on PATH", INSTALL_NODE)
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major < MIN_NODE_MAJOR:
        _unavailable(f"node {version} is too old for the add-on tests' node --test",
                     INSTALL_NODE)
    return node


def _chromium_ready() -> None:
    if not CHROMIUM.is_file():
        _unavailable(f"Chromium is missing at {CHROMIUM}", SETUP_BROWSER)
    if not (ADDON_TESTS / "node_modules" / "playwright-core").is_dir():
        _unavailable("playwright-core is not installed in tests/addon/node_modules",
                     SETUP_BROWSER)


# --- the backend --------------------------------------------------------------------


@dataclass
class AddonBackend:
    """The running backend and the ID tokens the Node tests use."""

    url: str
    lead_token: str
    outsider_token: str
    rejected_token: str

    def environment(self) -> dict[str, str]:
        return {
            "SYNCPLAN_ADDON_BACKEND_URL": self.url,
            "SYNCPLAN_ADDON_LEAD_TOKEN": self.lead_token,
            "SYNCPLAN_ADDON_OUTSIDER_TOKEN": self.outsider_token,
            "SYNCPLAN_ADDON_REJECTED_TOKEN": self.rejected_token,
            "SYNCPLAN_ADDON_BULK_FLOW": BULK_FLOW,
            "SYNCPLAN_ADDON_BULK_RECORDS": str(BULK_RECORDS),
            "SYNCPLAN_ADDON_SCREENSHOT": str(SCREENSHOT),
        }


def _make_project(folder: Path) -> Path:
    """Copy examples/agency, allow LEAD_EMAIL on every flow and add the bulk flow."""
    project = folder / "agency"
    shutil.copytree(REPO / "examples" / "agency", project,
                    ignore=shutil.ignore_patterns("out", ".syncplan"))
    for flow_file in sorted((project / "flows").glob("*.yaml")):
        document = yaml.safe_load(flow_file.read_text(encoding="utf-8"))
        for flow in document["flows"].values():
            flow["permissions"] = {"emails": [LEAD_EMAIL]}
        flow_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    (project / "flows" / "bulk.yaml").write_text(yaml.safe_dump(BULK_SPEC, sort_keys=False),
                                                 encoding="utf-8")
    with (project / "data" / "bulk.ndjson").open("w", encoding="utf-8") as out:
        for index in range(BULK_RECORDS):
            record = {"id": f"item-{index:06d}", "label": f" item {index} ",
                      "amount": f"{index * 1.25:.2f}"}
            out.write(json.dumps(record) + "\n")
    return project


def _serve(app: object) -> tuple[BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, name="addon-backend",
                              daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def addon_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AddonBackend]:
    project = _make_project(tmp_path_factory.mktemp("addon-project"))
    with pytest.MonkeyPatch.context() as patch, TokenIssuer() as issuer:
        # The report system falls back to a local workbook only without REPORT_SHEET.
        patch.delenv("REPORT_SHEET", raising=False)
        app = create_app(project, state_path=project / ".syncplan" / "state.db",
                         oauth_client_id=issuer.audience, certs_url=issuer.certs_url,
                         workers=2)
        server, thread = _serve(app)
        try:
            yield AddonBackend(
                url=f"http://127.0.0.1:{server.server_port}",
                lead_token=issuer.token(email=LEAD_EMAIL),
                outsider_token=issuer.token(email=OUTSIDER_EMAIL),
                # Signed by the right key for another client: the backend
                # rejects it with a message that does not change over time.
                rejected_token=issuer.token(email=LEAD_EMAIL,
                                            audience=OTHER_AUDIENCE),
            )
        finally:
            server.shutdown()
            thread.join(timeout=10)
            app.extensions["syncplan"].close()


# --- running node --test ------------------------------------------------------------


@dataclass
class NodeRun:
    """The outcome of one ``node --test`` run, read from its TAP summary."""

    returncode: int
    output: str
    counts: dict[str, int]


def _run_node_tests(node: str, test_file: str, backend: AddonBackend) -> NodeRun:
    command = [node, "--test", "--test-reporter=tap", "--test-concurrency=1", test_file]
    environment = {**os.environ, **backend.environment()}
    completed = subprocess.run(command, cwd=ADDON_TESTS, env=environment,
                               capture_output=True, text=True,
                               timeout=NODE_TIMEOUT_SECONDS)
    output = completed.stdout + completed.stderr
    counts = {name: int(value) for name, value
              in re.findall(r"^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$",
                            completed.stdout, flags=re.MULTILINE)}
    logger.info("node --test %s: %s", test_file, counts)
    return NodeRun(completed.returncode, output, counts)


def _assert_all_passed(run: NodeRun, minimum: int) -> None:
    assert run.returncode == 0, run.output
    assert run.counts.get("fail") == 0, run.output
    assert run.counts.get("cancelled") == 0, run.output
    assert run.counts.get("skipped") == 0, run.output
    assert run.counts.get("todo") == 0, run.output
    assert run.counts.get("pass", 0) >= minimum, run.output
    assert run.counts.get("pass") == run.counts.get("tests"), run.output


@pytest.fixture(scope="module")
def node() -> str:
    return _node()


@pytest.fixture(scope="module")
def chromium(node: str) -> Path:
    _chromium_ready()
    return CHROMIUM


def test_addon_code_under_node(node: str, addon_backend: AddonBackend) -> None:
    run = _run_node_tests(node, "addon-code.test.js", addon_backend)
    _assert_all_passed(run, minimum=40)


def test_addon_sidebar_in_chromium(node: str, chromium: Path,
                                   addon_backend: AddonBackend) -> None:
    SCREENSHOT.unlink(missing_ok=True)
    run = _run_node_tests(node, "sidebar.test.js", addon_backend)
    _assert_all_passed(run, minimum=4)
    assert SCREENSHOT.is_file(), f"the sidebar test wrote no screenshot to {SCREENSHOT}"
    assert SCREENSHOT.stat().st_size > 1000, run.output
