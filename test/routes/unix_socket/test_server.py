"""UnixSocketServer without any application: frames in and out, errors, permissions, holding."""

from __future__ import annotations

import grp
import logging
import os
import queue
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import pytest

from polycephaly_ros import codec, envelope
from polycephaly_ros.errors import (
    ConfigurationError,
    QueueFull,
    RecipientUnavailable,
    UnknownRecipient,
)
from polycephaly_ros.routes.unix_socket import UnixSocketServer
from raw_client import RawClient, first_frames, socat_exchange

TIMEOUT = 10.0
PILL = 'c0ffee00-pill-4000-8000-000000000000'


@pytest.fixture
def inbox() -> queue.Queue:
    return queue.Queue()


@pytest.fixture
def server(make_server: Callable[..., UnixSocketServer], inbox: queue.Queue) -> UnixSocketServer:
    """A server putting (envelope, client_id) in inbox, with a small max_frame and a pill."""
    return make_server(lambda env, cid: inbox.put((env, cid)), max_frame=1024, poison_pill=PILL)


@pytest.fixture
def raw(server: UnixSocketServer, sock_path: Path) -> Iterator[RawClient]:
    client = RawClient(sock_path)
    yield client
    client.close()


def test_frame_arrives_with_route_uds(server: UnixSocketServer, raw: RawClient,
                                      inbox: queue.Queue) -> None:
    raw.send(recipient='Main', subject='hi', sender='touch', body=[1, {'a': None}],
             messageid='m-1', threadid='t-1', threadindex=2, route='internal', colour='blue')
    env, cid = inbox.get(timeout=TIMEOUT)
    assert env['route'] == 'uds' and env['recipient'] == 'main' and env['body'] == [1, {'a': None}]
    assert (env['messageid'], env['threadid'], env['threadindex']) == ('m-1', 't-1', 2)
    assert env['colour'] == 'blue'
    assert server.clients() == [cid]


def test_server_sends_back_by_id_and_by_name(server: UnixSocketServer, raw: RawClient,
                                             inbox: queue.Queue) -> None:
    raw.send(recipient='main', subject='ask', sender='Touch')
    env, cid = inbox.get(timeout=TIMEOUT)
    server.send(cid, envelope.answer(env, 'main', 'first'))
    reply = raw.recv()
    assert envelope.is_reply_to(reply, env) and reply['body'] == 'first'
    server.send_to_name('touch', envelope.answer(env, 'main', 'second'))
    assert raw.recv()['body'] == 'second'
    with pytest.raises(UnknownRecipient, match='nobody'):
        server.send_to_name('nobody', envelope.answer(env, 'main'))
    with pytest.raises(RecipientUnavailable):
        server.send(cid + 1000, envelope.answer(env, 'main'))


def test_malformed_json_gets_an_error_frame_and_the_connection_stays(
        server: UnixSocketServer, raw: RawClient, inbox: queue.Queue,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger='polycephaly_ros.routes.unix_socket')
    raw.send_line(b'{"recipient": "main", "subject": ')
    error = raw.recv()
    assert error['subject'] == 'error' and error['sender'] == 'polycephaly'
    assert 'malformed JSON' in error['body']['error']
    assert any('malformed JSON' in r.getMessage() for r in caplog.records)
    raw.send(recipient='main', subject='fine')
    assert inbox.get(timeout=TIMEOUT)[0]['subject'] == 'fine'


def test_missing_recipient_gets_an_error_frame_in_its_thread(server: UnixSocketServer,
                                                             raw: RawClient) -> None:
    raw.send(subject='hi', sender='touch', threadid='t-7', threadindex=3)
    error = raw.recv()
    assert "missing header 'recipient'" in error['body']['error']
    assert (error['recipient'], error['threadid'], error['threadindex']) == ('touch', 't-7', 4)


@pytest.mark.parametrize('subject', [PILL, 'polycephaly.ebrake'])
def test_control_subjects_are_refused(server: UnixSocketServer, raw: RawClient,
                                      inbox: queue.Queue, subject: str) -> None:
    raw.send(recipient='main', subject=subject, sender='touch')
    assert raw.recv()['body'] == {'error': 'refused: control subject'}
    raw.send(recipient='main', subject='after')
    assert inbox.get(timeout=TIMEOUT)[0]['subject'] == 'after'  # the refused one never arrived


@pytest.mark.parametrize('chunked', [False, True])
def test_over_long_frame_gets_one_error_frame_and_is_discarded(
        make_echo_server: Callable[..., UnixSocketServer], sock_path: Path,
        chunked: bool) -> None:
    make_echo_server(max_frame=1024)
    raw = RawClient(sock_path)
    long_line = orjson.dumps({'recipient': 'main', 'subject': 'big', 'sender': 'c',
                              'body': 'x' * 5000})
    if chunked:  # the server sees the line grow past max_frame before its newline arrives
        for start in range(0, len(long_line), 700):
            raw.sock.sendall(long_line[start:start + 700])
        raw.send_line(b'')
    else:
        raw.send_line(long_line)
    error = raw.recv()
    assert error['body'] == {'error': 'frame longer than 1024 bytes'} and error['recipient'] == ''
    raw.send(recipient='main', subject='small', sender='touch', body='ok')
    assert raw.recv()['body']['body'] == 'ok'  # next frame is the echo: no second error
    raw.close()


def test_socket_file_is_private_by_default(server: UnixSocketServer, sock_path: Path) -> None:
    st = os.stat(sock_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()


@pytest.mark.parametrize('by_name', [False, True])
def test_socket_file_mode_and_group(make_server: Callable[..., UnixSocketServer],
                                    sock_path: Path, by_name: bool) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    gid = os.getgid()
    make_server(lambda env, cid: None, mode=0o660,
                group=grp.getgrgid(gid).gr_name if by_name else gid)
    st = os.stat(sock_path)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid
    assert os.umask(umask) == umask  # restored


def test_stale_socket_file_is_replaced(make_server: Callable[..., UnixSocketServer],
                                       sock_path: Path, inbox: queue.Queue) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    make_server(lambda env, cid: inbox.put(env))
    client = RawClient(sock_path)
    client.send(recipient='main', subject='fresh')
    assert inbox.get(timeout=TIMEOUT)['subject'] == 'fresh'
    client.close()


def test_live_server_on_the_path_is_a_clear_error(server: UnixSocketServer, raw: RawClient,
                                                  sock_path: Path, inbox: queue.Queue) -> None:
    second = UnixSocketServer(sock_path, lambda env, cid: None)
    with pytest.raises(ConfigurationError, match='another server is listening on'):
        second.start()
    raw.send(recipient='main', subject='still here')  # the first server is untouched
    assert inbox.get(timeout=TIMEOUT)[0]['subject'] == 'still here'
    assert os.path.exists(sock_path)


def test_a_file_that_is_not_a_socket_is_left_alone(sock_path: Path) -> None:
    sock_path.write_text('precious')
    with pytest.raises(ConfigurationError, match='not a socket'):
        UnixSocketServer(sock_path, lambda env, cid: None).start()
    assert sock_path.read_text() == 'precious'


def test_stop_closes_clients_and_unlinks_the_file(server: UnixSocketServer, raw: RawClient,
                                                  sock_path: Path, inbox: queue.Queue) -> None:
    raw.send(recipient='main', subject='hi')
    _, cid = inbox.get(timeout=TIMEOUT)
    server.stop()
    assert not sock_path.exists() and server.clients() == []
    assert raw.sock.recv(1) == b''
    with pytest.raises(RecipientUnavailable):
        server.send(cid, envelope.make('main', 'touch'))


def test_on_envelope_errors_are_answered_and_the_server_survives(
        make_server: Callable[..., UnixSocketServer], sock_path: Path) -> None:
    def on_envelope(env: dict[str, Any], cid: int) -> None:
        if env['recipient'] == 'ghost':
            raise UnknownRecipient('no head named ghost')
        raise RuntimeError('bug')

    make_server(on_envelope)
    raw = RawClient(sock_path)
    raw.send(recipient='ghost', subject='hi')
    assert raw.recv()['body'] == {'error': 'not delivered: no head named ghost'}
    raw.send(recipient='main', subject='hi')
    assert raw.recv()['body'] == {'error': 'not delivered: internal error'}
    raw.close()


def test_queue_full_holds_that_clients_frames_in_order_and_serves_the_others(
        make_server: Callable[..., UnixSocketServer], sock_path: Path) -> None:
    taken: queue.Queue = queue.Queue()
    room = threading.Event()

    def on_envelope(env: dict[str, Any], cid: int) -> None:
        if env['recipient'] == 'full' and not room.is_set():
            raise QueueFull("queue of head 'full' is full")
        taken.put(env['body'])

    # Held frames must still be waiting when room is made, however slowly this machine runs
    # the steps between (the default hold_timeout, 2 s, would answer them with errors).
    make_server(on_envelope, hold_timeout=60.0)
    held, other, leaving = RawClient(sock_path), RawClient(sock_path), RawClient(sock_path)
    try:
        held.sock.sendall(b''.join(orjson.dumps({'recipient': r, 'subject': 's', 'body': b,
                                                  'sender': 'held'})
                                   + b'\n' for r, b in [('full', 1), ('any', 2), ('full', 3)]))
        leaving.send(recipient='full', subject='s', body='left')
        other.send(recipient='any', subject='s', body='other')
        assert taken.get(timeout=TIMEOUT) == 'other'  # not held up by the waiting clients
        leaving.close()  # what it sent was read: it is still delivered
        room.set()
        bodies = [taken.get(timeout=TIMEOUT) for _ in range(4)]
        assert [b for b in bodies if b != 'left'] == [1, 2, 3] and 'left' in bodies  # in order
        held.send(recipient='any', subject='s', body=4)  # read again once all were taken
        assert taken.get(timeout=TIMEOUT) == 4
    finally:
        held.close()
        other.close()


def test_two_hundred_clients_at_once(make_echo_server: Callable[..., UnixSocketServer],
                                     sock_path: Path) -> None:
    server = make_echo_server()
    clients = [RawClient(sock_path) for _ in range(200)]
    for number, client in enumerate(clients):
        client.send(recipient='main', subject='n', sender=f'c{number}', body=number)
    try:
        replies = first_frames(clients, TIMEOUT)
        assert sorted(server.clients()) == sorted(r['body']['client'] for r in replies.values())
    finally:
        for client in clients:
            client.close()
    assert all(reply['body']['body'] == n and reply['recipient'] == f'c{n}'
               for n, reply in replies.items())
    assert len({reply['body']['client'] for reply in replies.values()}) == 200


def test_socat_can_talk_to_the_server(make_echo_server: Callable[..., UnixSocketServer],
                                      sock_path: Path) -> None:
    make_echo_server()
    reply = socat_exchange(sock_path, b'{"recipient": "main", "subject": "by hand", '
                                      b'"sender": "shell", "body": "hi"}', TIMEOUT)
    assert reply['recipient'] == 'shell' and reply['body']['body'] == 'hi'


def test_codec_frames_are_what_the_server_reads(server: UnixSocketServer, raw: RawClient,
                                                inbox: queue.Queue) -> None:
    sent = envelope.make('touch', 'main', 'tuple', (1, 2))
    raw.send_line(codec.encode(sent))
    env, _ = inbox.get(timeout=TIMEOUT)
    assert env == {**sent, 'body': [1, 2], 'route': 'uds'}


def test_starting_servers_leaves_the_process_umask_alone(tmp_path: Path) -> None:
    from polycephaly_ros.routes.unix_socket import socket_file

    stop = threading.Event()
    modes: list[int] = []

    def create_files() -> None:  # another thread of the process, creating files meanwhile
        i = 0
        while not stop.is_set():
            path = tmp_path / f'file{i}'
            path.write_text('x')
            modes.append(stat.S_IMODE(os.stat(path).st_mode))
            path.unlink()
            i += 1

    umask = os.umask(0o022)
    thread = threading.Thread(target=create_files)
    thread.start()
    try:
        for i in range(200):
            listener, file_id = socket_file.listen(str(tmp_path / f's{i}'), 0o600, None)
            assert stat.S_IMODE(os.stat(tmp_path / f's{i}').st_mode) == 0o600
            listener.close()
            socket_file.remove(str(tmp_path / f's{i}'), file_id)
    finally:
        stop.set()
        thread.join(10)
        os.umask(umask)
    assert modes and set(modes) == {0o644}  # never the server's tighter mask
