"""Keep every test of this process on loopback.

The tests talk to local stand-ins of Google, HubSpot and Asana only. A socket
connection from the test process to any other address fails at once with
``NonLoopbackConnection``. A default that points at a real host (google-auth
probing the metadata server, a URL left in a fixture) therefore shows up as a
failing test, not as a request to the internet. Child processes (the server
under gunicorn, Node, Chromium) are not covered by this guard.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NonLoopbackConnection(OSError):
    """A test tried to open a connection to an address other than loopback."""


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    try:
        loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise NonLoopbackConnection(
            f"a test tried to connect to {host!r}; tests may reach 127.0.0.1 and ::1"
            " only, so point the code under test at a local stand-in")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = _real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
