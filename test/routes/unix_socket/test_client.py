"""UnixSocketClient without any application: connecting late, reconnecting, sends that stall."""

from __future__ import annotations

import logging
import queue
import socket
from pathlib import Path
from typing import Callable

import pytest

from polycephaly_ros import envelope
from polycephaly_ros.errors import RecipientUnavailable
from polycephaly_ros.routes.unix_socket import UnixSocketClient, UnixSocketServer

TIMEOUT = 10.0


def test_client_connects_late_notices_loss_and_reconnects(
        make_server: Callable[..., UnixSocketServer],
        make_echo_server: Callable[..., UnixSocketServer], sock_path: Path) -> None:
    got: queue.Queue = queue.Queue()
    received: queue.Queue = queue.Queue()
    client = UnixSocketClient(sock_path, got.put, name='touch', backoff=(0.01, 0.05))
    client.start()
    try:
        assert not client.connected
        with pytest.raises(RecipientUnavailable, match='not connected'):
            client.send({'recipient': 'main', 'subject': 'too early'})

        first = make_echo_server()
        assert client.connected_event.wait(TIMEOUT) and client.connected
        sent = client.send({'recipient': 'main', 'subject': 'one', 'body': 1})
        reply = got.get(timeout=TIMEOUT)
        assert envelope.is_reply_to(reply, sent) and reply['route'] == 'uds'
        assert reply['body']['body'] == 1 and reply['recipient'] == 'touch'

        first.stop()
        assert client.disconnected_event.wait(TIMEOUT) and not client.connected
        with pytest.raises(RecipientUnavailable):
            client.send({'recipient': 'main', 'subject': 'while down'})

        make_server(lambda env, cid: received.put(env))
        assert client.connected_event.wait(TIMEOUT)
        client.send({'recipient': 'main', 'subject': 'two', 'body': 2})
        env = received.get(timeout=TIMEOUT)
        assert (env['sender'], env['subject'], env['body']) == ('touch', 'two', 2)
    finally:
        client.close()
    assert not client.connected


def test_client_send_to_a_server_that_reads_nothing_fails_in_time_and_reconnects(
        sock_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # accepts, never reads
    listener.bind(str(sock_path))
    listener.listen(4)
    listener.settimeout(TIMEOUT)
    client = UnixSocketClient(sock_path, lambda env: None, name='touch', backoff=(0.01, 0.05),
                              send_timeout=0.2)
    client.start()
    accepted = []
    try:
        accepted.append(listener.accept()[0])
        assert client.connected_event.wait(TIMEOUT)
        with pytest.raises(RecipientUnavailable, match='took nothing for 0.2 s; reconnecting'):
            for _ in range(1000):  # far more than the socket buffers hold
                client.send({'recipient': 'main', 'subject': 'bulk', 'body': 'x' * 65536})
        accepted.append(listener.accept()[0])  # it came back on its own
        assert client.connected_event.wait(TIMEOUT)
    finally:
        client.close()
        for conn in accepted:
            conn.close()
        listener.close()


def test_client_gets_error_frames_and_refuses_control_subjects(
        make_echo_server: Callable[..., UnixSocketServer], sock_path: Path) -> None:
    got: queue.Queue = queue.Queue()
    server = make_echo_server(max_frame=256)
    with UnixSocketClient(sock_path, got.put, name='touch', backoff=(0.01, 0.05)) as client:
        assert client.connected_event.wait(TIMEOUT)
        client.send({'recipient': 'main', 'subject': 'hello'})  # the server learns the name
        assert got.get(timeout=TIMEOUT)['subject'] == 'reply'
        client.send({'recipient': 'main', 'subject': 'polycephaly.ebrake'})
        error = got.get(timeout=TIMEOUT)
        assert error['subject'] == 'error' and error['recipient'] == 'touch'
        client.send({'recipient': 'main', 'subject': 'huge', 'body': 'x' * 1000})
        error = got.get(timeout=TIMEOUT)  # the server could not tell who sent it
        assert error['body'] == {'error': 'frame longer than 256 bytes'}
        assert error['recipient'] == 'touch'
        server.send_to_name('touch', envelope.make('main', 'touch', 'polycephaly.exited'))
        server.send_to_name('touch', envelope.make('main', 'touch', 'after'))
        assert got.get(timeout=TIMEOUT)['subject'] == 'after'


def test_client_drops_a_frame_over_its_max_frame_and_reads_on(
        make_echo_server: Callable[..., UnixSocketServer], sock_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger='polycephaly_ros.routes.unix_socket')
    got: queue.Queue = queue.Queue()
    make_echo_server()
    with UnixSocketClient(sock_path, got.put, name='touch', max_frame=256) as client:
        assert client.connected_event.wait(TIMEOUT)
        client.send({'recipient': 'main', 'subject': 'big', 'body': 'x' * 1000})  # echoed back
        client.send({'recipient': 'main', 'subject': 'small', 'body': 'ok'})
        assert got.get(timeout=TIMEOUT)['body']['body'] == 'ok'  # the big echo never came
    assert any('dropped a frame longer than 256 bytes' in r.getMessage() for r in caplog.records)
