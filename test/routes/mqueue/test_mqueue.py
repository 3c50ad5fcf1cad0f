"""The POSIX message queue route: a Python peer, bad input, full queues, two applications.

Every application here runs with ros=False. Queue names are global to the machine (its IPC
namespace), so each test gets names of its own and removes whatever is left of them.
"""

from __future__ import annotations

import ast
import importlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import orjson
import posix_ipc
import pytest

from harness import Harness, ask, run_script, until
from heads import GatedEcho, RouteEcho
from mq_heads import ProbedMqueue, ServingMqueue
from mq_peer import MqPeer
from polycephaly_ros import Process
from polycephaly_ros.errors import ConfigurationError, QueueFull
from polycephaly_ros.routes import mqueue
from polycephaly_ros.routes.base import BOUNCED_BY
from polycephaly_ros.routes.mqueue import MqueueRouteHead, MqueueTransport

TIMEOUT = 10.0
SUPPORT = Path(__file__).resolve().parents[2] / 'support'


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    """Return queue names of this test's own: 'route', 'peer', 'other'; remove them after."""
    tag = uuid.uuid4().hex[:12]
    made = {kind: f'/pcyt-{tag}.{kind}' for kind in ('route', 'peer', 'other')}
    yield made
    for name in made.values():
        try:
            posix_ipc.unlink_message_queue(name)
        except posix_ipc.ExistentialError:
            pass


def exists(name: str) -> bool:
    """Tell whether a queue of that name exists."""
    try:
        posix_ipc.MessageQueue(name).close()
    except posix_ipc.ExistentialError:
        return False
    return True


def route_app(script: Any, names: dict[str, str], head: type = ProbedMqueue,
              echo: tuple[type, dict] = (RouteEcho, {}), **options: Any) -> Harness:
    """Run script beside a route head 'mq' (our queue 'route', peer 'peer') and an echo head."""
    route = {k: options.pop(k) for k in list(options) if k not in ('queue_size', 'send_timeout')}
    heads = [(head, {'name': 'mq', 'queue': names['route'], 'peer_queue': names['peer'],
                     **route}),
             (echo[0], {'name': 'echo', **echo[1]})]
    return run_script(script, heads, ros=False, **options)


@pytest.mark.parametrize('shape', ['thread', 'process', 'transport_thread'])
def test_a_python_peer_reaches_a_head_and_gets_its_reply(names: dict[str, str],
                                                         shape: str) -> None:
    def script(main: Process) -> Any:
        probe = posix_ipc.MessageQueue(names['route'])
        st = os.fstat(probe.mqd)
        probe.close()
        peer = MqPeer(names['peer'], names['route'])
        try:
            peer.send(recipient='Echo', subject='ping', sender='touch', body='hi',
                      messageid='m-1', threadid='t-1', threadindex=3, colour='blue')
            first = peer.recv()
            peer.send(recipient='echo', subject='ping', sender='touch', body=2)  # ids filled in
            second = peer.recv()
        finally:
            peer.close()
        return st, first, second, ask(main, 'mq', 'stats')

    route = {'mode': 'process'} if shape == 'process' else {}
    if shape == 'transport_thread':
        route['transport_thread'] = True
    st, first, second, stats = route_app(script, names, **route).outcome
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
    assert not exists(names['route'])  # removed when the route head stopped
    assert (first['sender'], first['recipient'], first['subject']) == ('echo', 'touch', 'reply')
    assert (first['threadid'], first['threadindex']) == ('t-1', 4)
    assert first['messageid'] != 'm-1' and first['colour'] == 'blue'  # extra header echoed
    assert first['body'] == {'body': 'hi', 'route': 'mqueue', 'via': 'mq', 'pid': os.getpid()}
    assert 'via' not in first and 'route' not in first  # per-hop headers stay inside
    assert second['body']['body'] == 2 and second['threadindex'] == 2
    assert (stats['received'], stats['delivered']) == (2, 2)


def test_the_ten_line_peer_script(names: dict[str, str]) -> None:
    def script(main: Process) -> subprocess.CompletedProcess:
        requests = [orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'script',
                                  'body': n}).decode() for n in range(2)]
        return subprocess.run([sys.executable, str(SUPPORT / 'mq_peer.py'), names['peer'],
                               names['route'], *requests], capture_output=True, timeout=30)

    done = route_app(script, names).outcome
    assert done.returncode == 0, done
    replies = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [r['body']['body'] for r in replies] == [0, 1]
    assert all(r['recipient'] == 'script' and r['body']['route'] == 'mqueue' for r in replies)


def test_bad_messages_get_error_messages_and_nothing_stops(names: dict[str, str]) -> None:
    def script(main: Process) -> dict:
        pill = main.application.poison_pill
        peer = MqPeer(names['peer'], names['route'])
        errors = {}
        try:
            peer.send_raw(b'{"recipient": "echo", "subject": ')
            errors['malformed'] = peer.recv()
            peer.send_raw(b'')
            errors['empty'] = peer.recv()
            peer.send(subject='ping', threadid='t-2', threadindex=5)
            errors['no recipient'] = peer.recv()
            peer.send(recipient='ghost', subject='ping', threadid='t-3')
            errors['unknown'] = peer.recv()
            peer.send(recipient='echo', subject=pill)
            errors['pill'] = peer.recv()
            peer.send(recipient='mq', subject='polycephaly.ebrake')
            errors['control'] = peer.recv()
            peer.send(recipient='echo', subject='ping', sender='main')
            errors['as a head'] = peer.recv()
            with pytest.raises(ValueError):  # the kernel refuses it: the peer knows at once
                peer.send_raw(b' ' * 8193)
            peer.send(recipient='ghost', subject='error', body={'error': 'x'})  # no answer
            peer.send(recipient='echo', subject='ping', body='still here')
            after = peer.recv()
        finally:
            peer.close()
        return {'errors': errors, 'after': after, 'stats': ask(main, 'mq', 'stats'),
                'status': {s['name']: s['state'] for s in main.application.status()}}

    out = route_app(script, names).outcome
    errors = out['errors']
    assert all(e['subject'] == 'error' and e['sender'] == 'polycephaly' for e in errors.values())
    assert 'malformed JSON' in errors['malformed']['body']['error']
    assert 'malformed JSON' in errors['empty']['body']['error']
    assert errors['no recipient']['body']['error'] == "missing header 'recipient'"
    assert (errors['no recipient']['threadid'], errors['no recipient']['threadindex']) == \
        ('t-2', 6)
    assert errors['unknown']['body']['error'].startswith("not delivered: no head named 'ghost'")
    assert errors['unknown']['threadid'] == 't-3'
    assert errors['pill']['body'] == errors['control']['body'] == \
        {'error': 'refused: control subject'}
    assert "sender 'main' is a head of this application" in errors['as a head']['body']['error']
    assert out['after']['body']['body'] == 'still here'
    stats = out['stats']
    assert (stats['received'], stats['delivered'], stats['refused']) == (9, 1, 8)
    assert (stats['errors_sent'], stats['errors_unanswered']) == (7, 1)
    assert out['status'] == {'mq': 'running', 'echo': 'running'}


def test_without_a_peer_queue_refused_messages_are_counted_and_logged(
        names: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    def script(main: Process) -> dict:
        to = posix_ipc.MessageQueue(names['route'], read=False, write=True)
        try:
            to.send(b'not json')
            to.send(orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'x'}))
        finally:
            to.close()
        return until(main, lambda: (s := ask(main, 'mq', 'stats')).get('received') == 2 and s)

    heads = [(ProbedMqueue, {'name': 'mq', 'queue': names['route']}), (RouteEcho, {'name': 'echo'})]
    stats = run_script(script, heads, ros=False).outcome
    assert (stats['refused'], stats['errors_lost'], stats['delivered']) == (1, 1, 1)
    assert 'could not answer a refused message' in caplog.text and 'no peer_queue' in caplog.text


def test_sends_to_a_missing_full_or_small_peer_queue_bounce(names: dict[str, str]) -> None:
    def script(main: Process) -> dict:
        out: dict[str, Any] = {}
        sent = main.send('panel', 'hello', via='mq')  # the peer's queue does not exist yet
        out['missing'] = main.wait_for_reply(sent, timeout=TIMEOUT)
        peer = MqPeer(names['peer'], names['route'], max_messages=1, max_message_size=512)
        try:
            out['big'] = main.wait_for_reply(main.send('panel', 'big', 'x' * 600, via='mq'),
                                             timeout=TIMEOUT)
            main.send('panel', 'first', via='mq')  # fills the peer's one place
            start = time.monotonic()
            out['full'] = main.wait_for_reply(main.send('panel', 'second', via='mq'),
                                              timeout=TIMEOUT)
            out['waited'] = time.monotonic() - start
            out['first'] = peer.recv()
        finally:
            peer.close()
        # The peer comes back with a new queue under the same name: sends find it.
        again = MqPeer(names['peer'], names['route'])
        try:
            main.send('panel', 'after', via='mq')
            out['after'] = again.recv()
        finally:
            again.close()
        return out

    out = route_app(script, names, send_timeout=0.3).outcome
    for kind in ('missing', 'big', 'full'):
        bounce = out[kind]
        assert bounce['subject'] == 'error' and bounce[BOUNCED_BY] == 'mq', bounce
        assert bounce['sender'] == 'panel'
    assert 'does not exist' in out['missing']['body']['error']
    assert 'takes 512 at most' in out['big']['body']['error']
    assert 'stayed full (1 messages) for 0.3 s' in out['full']['body']['error']
    assert 0.25 < out['waited'] < 3
    assert out['first']['subject'] == 'first' and out['after']['subject'] == 'after'


def test_messages_wait_while_the_recipient_is_full_and_none_is_refused(
        names: dict[str, str]) -> None:
    # 200 messages to a head whose queue takes 5 (our queue takes 10): the route holds one and
    # reads no further, the peer's sends wait for room; every one is answered, in order.
    count = 200

    def script(main: Process) -> list[dict]:
        peer = MqPeer(names['peer'], names['route'])
        try:
            def send_all() -> None:
                for n in range(count):
                    peer.send(recipient='mq', subject='ping', body=n)
            sender = threading.Thread(target=send_all)
            sender.start()
            replies = [peer.recv() for _ in range(count)]
            sender.join()
            return replies
        finally:
            peer.close()

    replies = route_app(script, names, head=ServingMqueue, queue_size=5,
                        send_timeout=60.0).outcome
    assert [r['subject'] for r in replies] == ['reply'] * count
    assert [r['body']['body'] for r in replies] == list(range(count))
    assert all(r['body']['thread'] for r in replies)  # answered in the thread that reads


def test_a_message_waiting_for_a_full_queue_gets_an_error_after_the_send_timeout(
        names: dict[str, str]) -> None:
    gate = threading.Event()

    def script(main: Process) -> Any:
        peer = MqPeer(names['peer'], names['route'])
        try:
            for n in range(5):  # 0 is taken and waits at the gate, 1 and 2 fill echo's queue
                peer.send(recipient='echo', subject='ping', body=n, threadid=f't{n}')
            errors = [peer.recv(), peer.recv()]  # 3 and 4, after the send timeout each
            peer.send(recipient='mq', subject='ping', body='free')
            served = peer.recv()  # the route reads on
            gate.set()
            return errors, served, [peer.recv() for _ in range(3)]
        finally:
            gate.set()
            peer.close()

    errors, served, replies = route_app(script, names, head=ServingMqueue,
                                        echo=(GatedEcho, {'gate': gate}), queue_size=2,
                                        send_timeout=0.3).outcome
    assert [(e['subject'], e['threadid']) for e in errors] == [('error', 't3'), ('error', 't4')]
    assert "queue of head 'echo' is full (2 envelopes)" in errors[0]['body']['error']
    assert '(for 0.3 s)' in errors[0]['body']['error']
    assert served['body']['body'] == 'free'
    assert [r['body'] for r in replies] == [0, 1, 2]


def test_unread_messages_are_answered_when_the_transport_stops(names: dict[str, str]) -> None:
    def never(envelope: dict) -> None:
        raise QueueFull('never any room')

    transport = MqueueTransport(names['route'], never, peer_queue=names['peer'],
                                hold_timeout=60)
    peer = MqPeer(names['peer'], names['route'])
    try:
        transport.start()  # a thread of its own; no head anywhere
        for n in range(3):
            peer.send(recipient='echo', subject='ping', threadid=f't{n}')
        deadline = time.monotonic() + TIMEOUT
        while transport.stats['received'] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        transport.stop()
        errors = [peer.recv() for _ in range(3)]
    finally:
        peer.close()
    assert [(e['threadid'], e['body']['error']) for e in errors] == \
        [(f't{n}', 'not delivered: the route is closing') for n in range(3)]
    assert transport.stats['left_at_close'] == 3 and transport.stats['errors_sent'] == 3
    assert not exists(names['route'])


def test_two_applications_talk_over_queues_and_find_each_other_again(
        names: dict[str, str], tmp_path: Path, leftover_processes: Any) -> None:
    log = open(tmp_path / 'b.log', 'wb')
    b = subprocess.Popen([sys.executable, str(SUPPORT / 'mq_app.py'), names['peer'],
                          names['route']], stdout=log, stderr=subprocess.STDOUT)

    def script(main: Process) -> tuple[dict, Any]:
        pongs: list[dict] = []
        main.add_filter(pongs.append, route='mqueue', subject='pong')
        until(main, lambda: pongs, timeout=30)
        # the other way: A's main waits for the reply of B's panel ('panel' is remote here)
        answer = main.wait_for_reply(main.send('panel', 'ping', 'from A'), timeout=TIMEOUT)
        return pongs[0]['body'], answer

    try:
        first, answer = route_app(script, names, remote=['panel']).outcome
        assert not exists(names['route']) and b.poll() is None
        again, _ = route_app(script, names, remote=['panel']).outcome  # A again: B finds it
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
    assert (reply['sender'], reply['recipient'], reply['route']) == ('echo', 'panel', 'mqueue')
    assert reply['body']['via'] == 'mq'
    assert answer['sender'] == 'panel' and answer['route'] == 'mqueue'
    assert answer['body'] == {'body': 'from A', 'route': 'mqueue', 'pid': b.pid}
    assert again['pid'] == first['pid'] == b.pid
    assert not exists(names['peer'])  # B removed its queue
    leftover_processes()


def test_route_configuration_errors_are_caught_before_anything_starts(
        names: dict[str, str]) -> None:
    def run(**route: Any) -> None:
        Harness(lambda main: None, [(MqueueRouteHead, route)], ros=False).run()

    q = names['route']
    with pytest.raises(ConfigurationError, match='must be a POSIX queue name'):
        run(queue='no-slash')
    with pytest.raises(ConfigurationError, match='must be a POSIX queue name'):
        run(queue=q, peer_queue='/a/b')
    with pytest.raises(ConfigurationError, match='queue_mode must be one of'):
        run(queue=q, queue_mode=0o666)
    with pytest.raises(ConfigurationError, match='lets a group in: give group'):
        run(queue=q, queue_mode=0o660)
    with pytest.raises(ConfigurationError, match='remote names need peer_queue'):
        run(queue=q, remote=['status'])
    with pytest.raises(ConfigurationError, match='peer_queue is our own queue'):
        run(queue=q, peer_queue=q)
    with pytest.raises(ConfigurationError, match='max_messages must be a whole number'):
        run(queue=q, max_messages=0)
    assert not exists(q)


def test_queue_mode_0620_with_a_group(names: dict[str, str]) -> None:
    def script(main: Process) -> os.stat_result:
        probe = posix_ipc.MessageQueue(names['route'])
        try:
            return os.fstat(probe.mqd)
        finally:
            probe.close()

    st = route_app(script, names, queue_mode=0o620, group=os.getgid()).outcome
    assert stat.S_IMODE(st.st_mode) == 0o620 and st.st_gid == os.getgid()


# -- the package's layout -------------------------------------------------------------------------
HEAD_MACHINERY = {'polycephaly_ros.head', 'polycephaly_ros.routes.base', 'polycephaly_ros.runtime',
                  'polycephaly_ros.application', 'polycephaly_ros.supervisor'}


def own_imports(name: str) -> set[str]:
    """Return the polycephaly_ros modules that module's own source imports."""
    module = importlib.import_module(name)
    found = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name('.' * node.level + (node.module or ''),
                                               name.rpartition('.')[0])
            found |= {base} | {f'{base}.{alias.name}' for alias in node.names}
    return {m for m in found if m.startswith('polycephaly_ros')}


def test_only_the_head_module_imports_the_head_machinery() -> None:
    for transport in ('polycephaly_ros.routes.mqueue.queues',
                      'polycephaly_ros.routes.mqueue.transport'):
        assert not own_imports(transport) & HEAD_MACHINERY, transport
    assert own_imports('polycephaly_ros.routes.mqueue.head') & HEAD_MACHINERY
    for name in mqueue.__all__:
        assert hasattr(mqueue, name), name
