"""The Unix-socket route heads inside applications: raw clients, socat, two applications.

Every application here runs with ros=False: these tests are about the socket route, not ROS.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness import Harness, ask, run_script, until
from heads import BusyServer, GatedEcho, RouteEcho, ServingEcho
from polycephaly_ros import Process, message_filter
from polycephaly_ros.errors import ConfigurationError
from polycephaly_ros.routes import unix_socket
from polycephaly_ros.routes.base import BOUNCED_BY
from polycephaly_ros.routes.unix_socket import MAX_PATH, UnixSocketServerHead
from raw_client import RawClient, first_frames, socat_exchange

TIMEOUT = 10.0
CLIENT_APP = Path(__file__).resolve().parents[2] / 'support' / 'uds_client_app.py'


class Gate(threading.Event):
    """An Event that also tells whether a wait() has begun and how many have ended."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.ended = 0

    def wait(self, timeout: float | None = None) -> bool:
        """Wait like an Event, noting the start and the end."""
        self.entered.set()
        try:
            return super().wait(timeout)
        finally:
            self.ended += 1


@pytest.fixture
def path(tmp_path: Path) -> Path:
    sock = tmp_path / 's'
    assert len(os.fsencode(sock)) <= MAX_PATH, f'{sock} is too long for AF_UNIX'
    return sock


def server_app(script: Any, path: Path, mode: str = 'thread', **server: Any) -> Harness:
    """Run script in an application with a server head 'uds_server' and a RouteEcho 'echo'."""
    heads = [(UnixSocketServerHead, {'name': 'uds_server', 'mode': mode, 'path': str(path),
                                     **server}),
             (RouteEcho, {'name': 'echo'})]
    return run_script(script, heads, ros=False)


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_raw_client_reaches_a_head_and_gets_its_reply(path: Path, mode: str) -> None:
    def script(main: Process) -> Any:
        st = os.stat(path)
        client = RawClient(path)
        try:
            client.send(recipient='Echo', subject='ping', sender='touch', body='hi',
                        messageid='m-1', threadid='t-1', threadindex=3, colour='blue')
            first = client.recv()
            client.send(recipient='echo', subject='ping', sender='touch', body=2)
            second = client.recv()  # same connection, ids filled in by the server
        finally:
            client.close()
        server_pid = next(h['pid'] for h in main.application.status() if h['name'] == 'uds_server')
        return st, first, second, ask(main, 'echo', 'ping', 'inside'), server_pid

    st, first, second, inside, server_pid = server_app(script, path, mode).outcome
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600  # the default
    assert not path.exists()  # the server head removed its socket file when it stopped
    assert (first['sender'], first['recipient'], first['subject']) == ('echo', 'touch', 'reply')
    assert (first['threadid'], first['threadindex']) == ('t-1', 4)
    assert first['messageid'] not in ('m-1', None)
    assert first['body']['body'] == 'hi' and first['colour'] == 'blue'  # extra header echoed
    assert first['body']['route'] == 'uds' and first['body']['via'] == 'uds_server'
    assert 'via' not in first and 'route' not in first  # per-hop headers stay inside
    assert second['body']['body'] == 2 and second['threadindex'] == 2
    assert inside['route'] == 'internal' and inside['via'] is None
    # echo is a thread head of this process; the route head runs where its mode says
    assert first['body']['pid'] == os.getpid()
    assert (server_pid != os.getpid()) == (mode == 'process')


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_a_server_head_answers_its_clients_itself(path: Path, mode: str) -> None:
    def script(main: Process) -> Any:
        client = RawClient(path)
        try:
            replies = []
            for i in range(3):
                client.send(recipient='server', subject='ping', sender='touch', body=i,
                            threadid=f't-{i}', threadindex=1)
                replies.append(client.recv())
        finally:
            client.close()
        return replies

    replies = run_script(script, [(ServingEcho, {'name': 'server', 'mode': mode,
                                                 'path': str(path)})], ros=False).outcome
    assert [r['body']['body'] for r in replies] == [0, 1, 2]
    assert [(r['sender'], r['recipient'], r['threadid'], r['threadindex']) for r in replies] == \
        [('server', 'touch', f't-{i}', 2) for i in range(3)]
    assert all(r['body']['via'] == 'server' and r['body']['thread'] for r in replies)
    assert 'via' not in replies[0] and 'route' not in replies[0]


def test_replies_leave_while_the_route_head_itself_is_busy(path: Path) -> None:
    # With transport_thread=True frames come in while the route head's own thread is held
    # in life(); the echo head's reply goes out from its own thread, not the route head's.
    gate = Gate()

    def script(main: Process) -> Any:
        assert gate.entered.wait(TIMEOUT)  # the route head's thread now waits in life()
        client = RawClient(path)
        try:
            client.send(recipient='echo', subject='ping', sender='touch', body='busy')
            reply = client.recv()
            return reply, gate.ended
        finally:
            gate.set()
            client.close()

    heads = [(BusyServer, {'name': 'uds_server', 'path': str(path), 'transport_thread': True,
                           'gate': gate}),
             (RouteEcho, {'name': 'echo'})]
    reply, lives_ended = run_script(script, heads, ros=False).outcome
    assert lives_ended == 0  # the reply came while the route head still waited in life()
    assert (reply['sender'], reply['subject'], reply['body']['body']) == ('echo', 'reply', 'busy')
    assert reply['body']['via'] == 'uds_server'


def frames(count: int, recipient: str, first: int = 0) -> bytes:
    """Return count ping frames to recipient, bodies first, first + 1, ..., in one write."""
    return b''.join(orjson.dumps({'recipient': recipient, 'subject': 'ping', 'sender': 'touch',
                                  'body': i}) + b'\n' for i in range(first, first + count))


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_a_client_writing_faster_than_the_head_reads_is_held_back_not_refused(
        path: Path, mode: str) -> None:
    # 300 frames in one write to a head whose queue takes 5: they wait in the socket until
    # there is room (the server reads that client no further meanwhile); none is refused.
    count = 300

    def script(main: Process) -> Any:
        client = RawClient(path)
        try:
            client.sock.sendall(frames(count, 'server'))
            return [client.recv() for _ in range(count)]
        finally:
            client.close()

    # The held frames wait for room as long as it takes: a send timeout (which is the hold
    # timeout) far above the default 2 s keeps a slow machine from turning a wait into an error.
    replies = run_script(script, [(ServingEcho, {'name': 'server', 'mode': mode,
                                                 'path': str(path)})],
                         ros=False, queue_size=5, send_timeout=60.0).outcome
    assert [r['subject'] for r in replies] == ['reply'] * count
    assert [r['body']['body'] for r in replies] == list(range(count))


def test_a_frame_waiting_for_a_full_queue_gets_an_error_after_the_send_timeout(
        path: Path) -> None:
    # 'echo' is stuck on its first ping with a queue of 2: a client's fourth frame waits
    # send_timeout, then is answered with an error frame (and so is the fifth); another
    # client is served meanwhile.
    gate = Gate()

    def script(main: Process) -> Any:
        stuck, other = RawClient(path), RawClient(path)
        try:
            stuck.sock.sendall(frames(1, 'echo'))  # 0 is taken out of the queue and waits
            assert gate.entered.wait(TIMEOUT)
            stuck.sock.sendall(frames(4, 'echo', first=1))  # 1 and 2 fill the queue
            other.send(recipient='server', subject='ping', sender='other', body='free')
            served = other.recv()
            errors = [stuck.recv(), stuck.recv()]
            gate.set()
            return served, errors, [stuck.recv() for _ in range(3)]
        finally:
            gate.set()
            stuck.close()
            other.close()

    heads = [(ServingEcho, {'name': 'server', 'path': str(path)}),
             (GatedEcho, {'name': 'echo', 'gate': gate})]
    served, errors, replies = run_script(script, heads, ros=False, queue_size=2,
                                         send_timeout=0.3).outcome
    assert served['body']['body'] == 'free'
    assert [e['subject'] for e in errors] == ['error', 'error']
    assert "queue of head 'echo' is full (2 envelopes)" in errors[0]['body']['error']
    assert '0.3 s' in errors[0]['body']['error']
    assert [r['body'] for r in replies] == [0, 1, 2]


def test_socat_reaches_a_head(path: Path) -> None:
    def script(main: Process) -> dict:
        return socat_exchange(path, b'{"recipient": "echo", "subject": "ping", "sender": "shell", '
                                    b'"threadid": "t-9", "threadindex": 1, "body": "by hand"}',
                              TIMEOUT)

    reply = server_app(script, path).outcome
    assert (reply['recipient'], reply['sender'], reply['threadid'], reply['threadindex']) == \
        ('shell', 'echo', 't-9', 2)
    assert reply['body']['body'] == 'by hand' and reply['body']['route'] == 'uds'


def test_bad_frames_get_error_frames_and_nothing_stops(path: Path) -> None:
    def script(main: Process) -> dict:
        pill = main.application.poison_pill
        client = RawClient(path)
        errors = {}
        try:
            client.send_line(b'{"recipient": "echo", "subject": ')
            errors['malformed'] = client.recv()
            client.send(subject='ping', sender='touch', threadid='t-2', threadindex=5)
            errors['no recipient'] = client.recv()
            client.send(recipient='ghost', subject='ping', sender='touch', threadid='t-3')
            errors['unknown'] = client.recv()
            client.send(recipient='echo', subject=pill, sender='touch')
            errors['pill'] = client.recv()
            client.send(recipient='uds_server', subject='polycephaly.ebrake', sender='touch')
            errors['control'] = client.recv()
            client.send(recipient='echo', subject='ping', sender='touch', body='still here')
            after = client.recv()
        finally:
            client.close()
        # a head sending to a client that is not connected gets a bounce, at once
        sent = main.send('nobody', 'hello', via='uds_server')
        bounce = main.wait_for_reply(sent, timeout=TIMEOUT)
        return {'errors': errors, 'after': after, 'bounce': bounce,
                'inside': ask(main, 'echo', 'ping', 'alive'),
                'status': {s['name']: s['state'] for s in main.application.status()}}

    app = server_app(script, path)
    out = app.outcome
    errors = out['errors']
    assert all(e['subject'] == 'error' and e['sender'] == 'polycephaly' for e in errors.values())
    assert 'malformed JSON' in errors['malformed']['body']['error']
    assert errors['no recipient']['body']['error'] == "missing header 'recipient'"
    assert (errors['no recipient']['threadid'], errors['no recipient']['threadindex']) == ('t-2', 6)
    assert errors['unknown']['body']['error'].startswith("not delivered: no head named 'ghost'")
    assert errors['unknown']['threadid'] == 't-3' and errors['unknown']['recipient'] == 'touch'
    assert errors['pill']['body'] == {'error': 'refused: control subject'}
    assert errors['control']['body'] == {'error': 'refused: control subject'}
    assert out['after']['body']['body'] == 'still here'  # the connection was kept
    bounce = out['bounce']
    assert bounce['subject'] == 'error' and bounce[BOUNCED_BY] == 'uds_server'
    assert "no client of" in bounce['body']['error'] and bounce['sender'] == 'nobody'
    assert out['inside']['body'] == 'alive'
    assert out['status'] == {'uds_server': 'running', 'echo': 'running'}
    assert app.exit_code == 0 and app.reason is None


def test_two_hundred_clients_at_once(path: Path) -> None:
    def script(main: Process) -> dict[int, dict]:
        clients = [RawClient(path) for _ in range(200)]
        try:
            for n, client in enumerate(clients):
                client.send(recipient='echo', subject='ping', sender=f'c{n}', body=n,
                            threadid=f't{n}')
            return first_frames(clients, TIMEOUT)
        finally:
            for client in clients:
                client.close()

    replies = server_app(script, path).outcome
    assert sorted(replies) == list(range(200))
    for n, reply in replies.items():
        assert (reply['recipient'], reply['threadid'], reply['threadindex']) == \
            (f'c{n}', f't{n}', 2)
        assert reply['body']['body'] == n and reply['body']['route'] == 'uds'


def test_socket_file_mode_0660_with_group(path: Path) -> None:
    gid = os.getgid()
    st = server_app(lambda main: os.stat(path), path, socket_mode=0o660, group=gid).outcome
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == gid


def test_two_applications_talk_over_the_socket_and_the_client_reconnects(
        path: Path, tmp_path: Path, leftover_processes: Any) -> None:
    log = open(tmp_path / 'b.log', 'wb')
    b = subprocess.Popen([sys.executable, str(CLIENT_APP), str(path)], stdout=log,
                         stderr=subprocess.STDOUT)
    heads = [(UnixSocketServerHead, {'name': 'uds_server', 'path': str(path),
                                     'remote': ['panel']}),
             (RouteEcho, {'name': 'echo'})]

    def script(main: Process) -> tuple[dict, Any]:
        pongs: list[dict] = []
        main.add_filter(pongs.append, route='uds', subject='pong')
        until(main, lambda: pongs, timeout=30)
        # the other way: A's main waits for the reply of B's panel ('panel' is remote here)
        answer = main.wait_for_reply(main.send('panel', 'ping', 'from A'), timeout=TIMEOUT)
        return pongs[0]['body'], answer

    try:
        first, answer = run_script(script, heads, ros=False).outcome
        # A stopped (its socket file is gone); B keeps running and reconnects to the new A
        assert not path.exists() and b.poll() is None
        again, _ = run_script(script, heads, ros=False).outcome
        assert b.poll() is None
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=TIMEOUT) == 0
    finally:
        if b.poll() is None:
            b.kill()
            b.wait()
        log.close()
        print((tmp_path / 'b.log').read_text())
    reply = first['reply']
    assert first['sent']['threadid'] == reply['threadid']
    assert reply['threadindex'] == first['sent']['threadindex'] + 1
    assert (reply['sender'], reply['recipient'], reply['route']) == ('echo', 'panel', 'uds')
    assert reply['body']['route'] == 'uds' and reply['body']['via'] == 'uds_server'
    assert answer['sender'] == 'panel' and answer['route'] == 'uds'
    assert answer['body'] == {'body': 'from A', 'route': 'uds', 'pid': b.pid}
    assert again['pid'] == first['pid'] == b.pid  # the same B, reconnected
    leftover_processes()


def test_route_configuration_errors_are_caught_before_anything_starts(tmp_path: Path) -> None:
    long_path = '/tmp/' + 'x' * MAX_PATH
    with pytest.raises(ConfigurationError, match='AF_UNIX takes at most'):
        Harness(lambda main: None, [(UnixSocketServerHead, {'path': long_path})],
                ros=False).run()
    with pytest.raises(ConfigurationError, match='is a head of this application'):
        Harness(lambda main: None, [(UnixSocketServerHead, {'path': str(tmp_path / 's'),
                                                            'remote': ['echo']}),
                                    (RouteEcho, {'name': 'echo'})], ros=False).run()
    with pytest.raises(ConfigurationError, match='needs path'):
        Harness(lambda main: None, [(UnixSocketServerHead, {})], ros=False).run()


# -- the package's layout -------------------------------------------------------------------------
#: Modules that must not import the head machinery, directly or through other modules.
TRANSPORTS = ['polycephaly_ros.routes.framing', 'polycephaly_ros.routes.unix_socket.server',
              'polycephaly_ros.routes.unix_socket.client',
              'polycephaly_ros.routes.unix_socket.socket_file']
HEAD_MACHINERY = {'polycephaly_ros.head', 'polycephaly_ros.routes.base', 'polycephaly_ros.runtime',
                  'polycephaly_ros.application',
                  'polycephaly_ros.supervisor', 'polycephaly_ros.routes.unix_socket.heads'}
#: Package __init__s that import the head machinery on purpose (see their docstrings).
EAGER_PACKAGES = {'polycephaly_ros', 'polycephaly_ros.routes.unix_socket'}


def imports_of(name: str) -> set[str]:
    """Return the polycephaly_ros modules that module's own source imports."""
    module = importlib.import_module(name)
    package = name if hasattr(module, '__path__') else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name('.' * node.level + (node.module or ''), package)
            found.add(base)
            found |= {f'{base}.{alias.name}' for alias in node.names  # submodules
                      if f'{base}.{alias.name}' in sys.modules}
    return {m for m in found if m.split('.')[0] == 'polycephaly_ros'}


def test_only_the_heads_module_imports_the_head_machinery() -> None:
    for transport in TRANSPORTS:
        seen, todo = set(), [transport]
        while todo:
            name = todo.pop()
            seen.add(name)
            todo += [m for m in imports_of(name) - seen if m not in EAGER_PACKAGES]
        assert not seen & HEAD_MACHINERY, f'{transport} imports {sorted(seen & HEAD_MACHINERY)}'
    assert imports_of('polycephaly_ros.routes.unix_socket.heads') & HEAD_MACHINERY


def test_the_package_exports_the_transports_the_heads_and_their_limits() -> None:
    for name in ('UnixSocketServerHead', 'UnixSocketClientHead', 'UnixSocketServer',
                 'UnixSocketClient', 'MAX_FRAME', 'MAX_PENDING', 'HOLD_RETRY', 'MAX_PATH'):
        assert name in unix_socket.__all__ and hasattr(unix_socket, name), name


def test_every_request_from_a_client_is_answered(path: Path) -> None:
    """A subject nobody takes, and a filter that raises, both get an error frame back."""
    def script(main: Process) -> Any:
        client = RawClient(path)
        try:
            client.send(recipient='echo', subject='nobody-takes-this', threadid='t-1')
            unmatched = client.recv()
            client.send(recipient='echo', subject='crash', body='x', threadid='t-2')
            failed = client.recv()
            client.send(recipient='echo', subject='ping', body='after')
            after = client.recv()
        finally:
            client.close()
        return unmatched, failed, after

    heads = [(UnixSocketServerHead, {'name': 'uds_server', 'path': str(path)}),
             (CrashingRouteEcho, {'name': 'echo'})]
    unmatched, failed, after = run_script(script, heads, ros=False).outcome
    assert (unmatched['subject'], unmatched['threadid']) == ('error', 't-1')
    assert unmatched['body'] == {'error': "head 'echo' does not take subject 'nobody-takes-this'"}
    assert (failed['subject'], failed['threadid']) == ('error', 't-2')
    assert failed['body'] == {'error': "'crash' failed in head 'echo': ValueError"}
    assert after['body']['body'] == 'after'  # the head went on


class CrashingRouteEcho(RouteEcho):
    """A RouteEcho whose 'crash' raises (on any route)."""

    @message_filter(route=None, subject='crash')
    def crash(self, message: dict) -> None:
        raise ValueError('a bug')


class FaultyServer(UnixSocketServerHead):
    """A server head with its own transport thread, which meets a bug on a client's bytes."""

    def open_transport(self) -> None:
        super().open_transport()

        def bug(conn: Any, sock: Any) -> None:
            raise ValueError('a bug in the transport')
        self.server._on_conn = bug  # (fault injection: the loop calls it for client data)


def test_a_transport_thread_that_fails_fails_its_head_which_restarts(path: Path) -> None:
    """Before, the server thread died and the head went on saying 'running' with no server."""
    def script(main: Process) -> list[dict]:
        def failed_and_back() -> dict | None:
            head = main.application.status()[0]
            return head if head['exits'] and head['state'] == 'running' else None

        client = RawClient(path)
        try:
            client.send(recipient='uds_server', subject='ping', sender='c')
            head = until(main, failed_and_back, timeout=TIMEOUT)
        finally:
            client.close()
        again = RawClient(path)  # the restarted head serves the path again
        again.close()
        return head

    head = run_script(script, [(FaultyServer, {'name': 'uds_server', 'path': str(path),
                                               'transport_thread': True,
                                               'restart': 'on_failure',
                                               'restart_backoff': (0.01, 0.01)})],
                      ros=False).outcome
    assert head['generation'] == 2 and head['exits'] == 1
    assert 'a bug in the transport' in head['last_error']
