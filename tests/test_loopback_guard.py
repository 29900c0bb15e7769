"""The test suite's own guard: connections leave loopback in no test."""

from __future__ import annotations

import socket

import pytest
import requests
from conftest import NonLoopbackConnection


def test_guard_rejects_documentation_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(NonLoopbackConnection, match="'192.0.2.1'"):
            sock.connect(("192.0.2.1", 443))


def test_guard_rejects_requests_to_metadata_server() -> None:
    with pytest.raises(requests.ConnectionError) as raised:
        requests.get("http://169.254.169.254/computeMetadata/v1/", timeout=1)

    assert "tests may reach 127.0.0.1 and ::1 only" in str(raised.value)


def test_guard_allows_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            assert client.connect_ex(server.getsockname()) == 0
