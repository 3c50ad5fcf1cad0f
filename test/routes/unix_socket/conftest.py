"""Fixtures for the Unix-socket transports: a socket path and started servers, no application."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from polycephaly_ros import envelope
from polycephaly_ros.routes.unix_socket import UnixSocketServer

OnEnvelope = Callable[[dict[str, Any], int], None]


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    """Return a socket path in the test's own directory."""
    return tmp_path / 'poly.sock'


@pytest.fixture
def make_server(sock_path: Path) -> Iterator[Callable[..., UnixSocketServer]]:
    """Return a factory of started servers on sock_path (stopped after the test)."""
    servers: list[UnixSocketServer] = []

    def make(on_envelope: OnEnvelope, **kwargs: Any) -> UnixSocketServer:
        server = UnixSocketServer(kwargs.pop('path', sock_path), on_envelope, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def make_echo_server(
        make_server: Callable[..., UnixSocketServer]) -> Callable[..., UnixSocketServer]:
    """Return a factory of servers answering every envelope (as its recipient) to its client.

    The reply's body is ``{'body': <the request's body>, 'client': <the client's id>}``.
    """
    def make(**kwargs: Any) -> UnixSocketServer:
        def on_envelope(env: dict[str, Any], cid: int) -> None:
            body = {'body': env['body'], 'client': cid}
            server.send(cid, envelope.answer(env, env['recipient'], body))

        server = make_server(on_envelope, **kwargs)
        return server

    return make
