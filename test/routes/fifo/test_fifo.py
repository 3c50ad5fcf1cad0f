"""The named pipe route: shell peers (echo > in, cat out), a Python peer, readers that go away.

Every application here runs with ros=False.
"""

from __future__ import annotations

import ast
import importlib
import os
import shlex
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fifo_heads import ProbedFifo, ServingFifo
from fifo_peer import FifoPeer
from harness import Harness, ask, run_script, until
from heads import GatedEcho, RouteEcho
from polycephaly_ros import Process, message_filter
from polycephaly_ros.errors import ConfigurationError, QueueFull
from polycephaly_ros.routes import fifo
from polycephaly_ros.routes.base import BOUNCED_BY
from polycephaly_ros.routes.fifo import FifoRouteHead, FifoTransport

TIMEOUT = 10.0


@pytest.fixture
def pipes(tmp_path: Path) -> Path:
    """Return the route's directory (not made yet: the route makes it 0700)."""
    return tmp_path / 'pipes'


def route_app(script: Any, pipes: Path, head: type = ProbedFifo,
              echo: tuple[type, dict] = (RouteEcho, {}), **options: Any) -> Harness:
    """Run script beside a route head 'fifo' on pipes and an echo head 'echo'."""
    route = {k: options.pop(k) for k in list(options) if k not in ('queue_size', 'send_timeout')}
    heads = [(head, {'name': 'fifo', 'directory': str(pipes), **route}),
             (echo[0], {'name': 'echo', **echo[1]})]
    return run_script(script, heads, ros=False, **options)


def shell(command: str) -> None:
    """Run a shell command line (a peer by hand), failing after the timeout."""
    subprocess.run(['sh', '-c', command], check=True, timeout=TIMEOUT)


def ping(body: Any, sender: str = 'shell', **more: Any) -> str:
    """Return a ping to echo as one JSON line, quoted for the shell."""
    return shlex.quote(orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': sender,
                                     'body': body, **more}).decode())


@pytest.mark.parametrize('shape', ['thread', 'process', 'transport_thread'])
def test_shell_peers_echo_to_in_and_cat_out_while_writers_come_and_go(pipes: Path,
                                                                      shape: str) -> None:
    def script(main: Process) -> Any:
        modes = {p.name: stat.S_IMODE(os.lstat(p).st_mode) for p in (pipes, pipes / 'in',
                                                                    pipes / 'out')}
        # A reader of out from the start: cat may not have reached its open() when the first
        # reply is written (under load), and a reply that finds no reader is not sent.
        held = os.open(pipes / 'out', os.O_RDONLY | os.O_NONBLOCK)
        cat = subprocess.Popen(['cat', str(pipes / 'out')], stdout=subprocess.PIPE)
        try:
            commands = [f'echo {ping(n, threadid=f"t{n}")} > {pipes}/in' for n in range(3)]
            commands += [f'printf %s {ping("no newline")} > {pipes}/in',  # ends at its EOF
                         f"echo '{{\"recipient\": \"echo\"' > {pipes}/in"]  # cut: an error
            lines = []
            for command in commands:  # a writer that comes and goes, five times
                shell(command)
                lines.append(orjson.loads(cat.stdout.readline()))
        finally:
            cat.kill()
            cat.wait()
            os.close(held)
        return modes, lines, ask(main, 'fifo', 'stats')

    route = {'mode': 'process'} if shape == 'process' else {}
    if shape == 'transport_thread':
        route['transport_thread'] = True
    modes, lines, stats = route_app(script, pipes, **route).outcome
    assert modes == {'pipes': 0o700, 'in': 0o600, 'out': 0o600}
    assert not (pipes / 'in').exists() and not (pipes / 'out').exists()  # removed at the end
    replies, error = lines[:4], lines[4]
    assert [r['body']['body'] for r in replies] == [0, 1, 2, 'no newline']
    assert [r['threadid'] for r in replies[:3]] == ['t0', 't1', 't2']
    assert all(r['recipient'] == 'shell' and r['threadindex'] == 2 for r in replies)
    assert replies[0]['body']['route'] == 'fifo' and replies[0]['body']['via'] == 'fifo'
    assert 'via' not in replies[0] and 'route' not in replies[0]
    assert error['subject'] == 'error' and 'malformed JSON' in error['body']['error']
    assert stats['reopened'] >= 1 and stats['received'] == 5 and stats['delivered'] == 4


def test_a_python_peer_pipelines_frames_and_gets_errors_for_bad_ones(pipes: Path) -> None:
    count = 300

    def script(main: Process) -> dict:
        pill = main.application.poison_pill
        peer = FifoPeer(pipes)
        out: dict[str, Any] = {}
        try:  # 300 frames in one write to a head whose queue takes 5: none is refused
            peer.send_bytes(b''.join(orjson.dumps({'recipient': 'fifo', 'subject': 'ping',
                                                   'sender': 'py', 'body': n}) + b'\n'
                                     for n in range(count)))
            out['pipelined'] = [peer.recv()['body']['body'] for _ in range(count)]
            peer.send_line(b'{"recipient": "echo", "subject": ')
            out['malformed'] = peer.recv()
            peer.send_line(b'{"recipient": "echo", "sender": "py", "body": "'
                           + b'x' * 5000 + b'"}')
            out['too long'] = peer.recv()
            peer.send(recipient='echo', subject=pill, threadid='t-p')
            out['pill'] = peer.recv()
            peer.send(recipient='ghost', subject='ping')
            out['unknown'] = peer.recv()
            peer.send_line(b'\r\n   \n')  # blank lines are no frames
            peer.send(recipient='echo', subject='ping', body='still here')
            out['after'] = peer.recv()
        finally:
            peer.close()
        out['stats'] = ask(main, 'fifo', 'stats')
        return out

    out = route_app(script, pipes, head=ServingFifo, max_frame=4096, queue_size=5,
                    send_timeout=60.0).outcome
    assert out['pipelined'] == list(range(count))
    assert 'malformed JSON' in out['malformed']['body']['error']
    assert out['too long']['body'] == {'error': 'frame longer than 4096 bytes'}
    assert out['pill']['body'] == {'error': 'refused: control subject'}
    assert out['pill']['threadid'] == 't-p' and out['pill']['recipient'].startswith('fifo')
    assert out['unknown']['body']['error'].startswith("not delivered: no head named 'ghost'")
    assert out['after']['body']['body'] == 'still here'
    stats = out['stats']
    assert (stats['received'], stats['refused'], stats['errors_sent']) == (count + 5, 4, 4)


def test_without_a_reader_on_out_refused_frames_are_counted_and_logged(
        pipes: Path, caplog: pytest.LogCaptureFixture) -> None:
    def script(main: Process) -> dict:
        shell(f"echo 'not json' > {pipes}/in")
        return until(main, lambda: (s := ask(main, 'fifo', 'stats')).get('refused') and s)

    stats = route_app(script, pipes).outcome
    assert (stats['received'], stats['refused'], stats['errors_lost']) == (1, 1, 1)
    assert 'could not answer a refused frame: nobody reads' in caplog.text


def test_sends_bounce_at_once_without_a_reader_and_when_the_reader_goes(pipes: Path) -> None:
    def script(main: Process) -> dict:
        out: dict[str, Any] = {}
        start = time.monotonic()
        out['none'] = main.wait_for_reply(main.send('peer', 'hello', via='fifo'), TIMEOUT)
        out['none took'] = time.monotonic() - start
        peer = FifoPeer(pipes, write=False)
        main.send('peer', 'first', via='fifo')
        out['first'] = peer.recv()
        peer.close()  # the reader goes away
        start = time.monotonic()
        out['gone'] = main.wait_for_reply(main.send('peer', 'second', via='fifo'), TIMEOUT)
        out['gone took'] = time.monotonic() - start
        again = FifoPeer(pipes, write=False)  # a new reader: sends reach it
        main.send('peer', 'third', via='fifo')
        out['third'] = again.recv()
        again.close()
        return out

    out = route_app(script, pipes).outcome
    for kind in ('none', 'gone'):
        bounce = out[kind]
        assert bounce['subject'] == 'error' and bounce[BOUNCED_BY] == 'fifo'
        assert out[f'{kind} took'] < 1.0  # never blocked on a missing reader
    assert out['none']['body']['error'] == f'nobody reads {pipes}/out'
    assert out['gone']['body']['error'] == f'nobody reads {pipes}/out any more'
    assert out['first']['subject'] == 'first' and out['third']['subject'] == 'third'


def test_a_reader_that_does_not_read_makes_sends_bounce_after_the_send_timeout(
        pipes: Path) -> None:
    # The pipe takes 64 KiB: two 40 KB envelopes do not fit. The second is cut short and
    # bounces after send_timeout; the reader then sees it as one malformed line between two
    # whole frames, never two frames run together.
    def script(main: Process) -> dict:
        peer = FifoPeer(pipes, write=False)
        try:
            main.send('peer', 'big', 'a' * 40_000, via='fifo')
            start = time.monotonic()
            bounce = main.wait_for_reply(main.send('peer', 'big', 'b' * 40_000, via='fifo'),
                                         TIMEOUT)
            took = time.monotonic() - start
            lines = [peer.recv_line()]  # room again
            main.send('peer', 'small', via='fifo')
            lines += [peer.recv_line() for _ in range(2)]
        finally:
            peer.close()
        return {'bounce': bounce, 'took': took, 'lines': lines,
                'stats': ask(main, 'fifo', 'stats')}

    out = route_app(script, pipes, send_timeout=0.3).outcome
    assert out['bounce']['subject'] == 'error'
    assert 'took no more for 0.3 s' in out['bounce']['body']['error']
    assert 0.25 < out['took'] < 3
    first, cut, small = out['lines']
    assert orjson.loads(first)['body'] == 'a' * 40_000
    assert cut.startswith(b'{') and b'b' * 1000 in cut
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(cut)
    assert orjson.loads(small)['subject'] == 'small'
    assert out['stats']['cut'] == 1 and out['stats']['send_failed'] == 1


class Asker(Process):
    """On 'ask' from main, wait for the remote peer's reply and report it."""

    @message_filter(subject='ask')
    def ask_peer(self, message: dict) -> None:
        reply = self.wait_for_reply(self.send('panel', 'question', 42), timeout=TIMEOUT)
        self.reply(message, reply)


def test_wait_for_reply_across_the_route_to_a_remote_name(pipes: Path) -> None:
    def script(main: Process) -> tuple[dict, dict]:
        peer = FifoPeer(pipes)
        try:
            sent = main.send('asker', 'ask')
            question = peer.recv()  # on out: the envelope to the remote name 'panel'
            peer.send(recipient=question['sender'], sender='panel', subject='answer',
                      body=question['body'] + 1, threadid=question['threadid'],
                      threadindex=question['threadindex'] + 1)
            return question, main.wait_for_reply(sent, TIMEOUT)
        finally:
            peer.close()

    heads = [(FifoRouteHead, {'name': 'fifo', 'directory': str(pipes), 'remote': ['panel']}),
             (Asker, {'name': 'asker'})]
    question, answer = run_script(script, heads, ros=False).outcome
    assert (question['recipient'], question['sender'], question['subject']) == \
        ('panel', 'asker', 'question')
    assert answer['body']['body'] == 43 and answer['body']['route'] == 'fifo'
    assert answer['body']['threadid'] == question['threadid']


def test_a_frame_waiting_for_a_full_queue_gets_an_error_after_the_send_timeout(
        pipes: Path) -> None:
    gate = threading.Event()

    def script(main: Process) -> Any:
        peer = FifoPeer(pipes)
        try:
            peer.send_bytes(b''.join(orjson.dumps({'recipient': 'echo', 'subject': 'ping',
                                                   'sender': 'py', 'body': n,
                                                   'threadid': f't{n}'}) + b'\n'
                                     for n in range(5)))
            errors = [peer.recv(), peer.recv()]
            peer.send(recipient='fifo', subject='ping', body='free')
            served = peer.recv()
            gate.set()
            return errors, served, [peer.recv() for _ in range(3)]
        finally:
            gate.set()
            peer.close()

    errors, served, replies = route_app(script, pipes, head=ServingFifo,
                                        echo=(GatedEcho, {'gate': gate}), queue_size=2,
                                        send_timeout=0.3).outcome
    assert [(e['subject'], e['threadid']) for e in errors] == [('error', 't3'), ('error', 't4')]
    assert "queue of head 'echo' is full (2 envelopes)" in errors[0]['body']['error']
    assert served['body']['body'] == 'free'
    assert [r['body'] for r in replies] == [0, 1, 2]


def test_unread_frames_are_answered_when_the_transport_stops(pipes: Path) -> None:
    def never(envelope: dict) -> None:
        raise QueueFull('never any room')

    transport = FifoTransport(pipes, never, hold_timeout=60)
    transport.start()  # a thread of its own; no head anywhere
    peer = FifoPeer(pipes)
    try:
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
    assert transport.stats['left_at_close'] == 3
    assert not (pipes / 'in').exists()


def test_route_configuration_errors_are_caught_before_anything_starts(pipes: Path) -> None:
    def run(**route: Any) -> None:
        Harness(lambda main: None, [(FifoRouteHead, route)], ros=False).run()

    with pytest.raises(ConfigurationError, match='needs directory'):
        run()
    with pytest.raises(ConfigurationError, match='fifo_mode must be one of'):
        run(directory=str(pipes), fifo_mode=0o666)
    with pytest.raises(ConfigurationError, match='lets a group in: give group'):
        run(directory=str(pipes), fifo_mode=0o660)
    with pytest.raises(ConfigurationError, match='max_frame must be'):
        run(directory=str(pipes), max_frame=0)
    assert not pipes.exists()


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
    for transport in ('polycephaly_ros.routes.fifo.fifo_file',
                      'polycephaly_ros.routes.fifo.transport'):
        assert not own_imports(transport) & HEAD_MACHINERY, transport
    assert own_imports('polycephaly_ros.routes.fifo.head') & HEAD_MACHINERY
    for name in fifo.__all__:
        assert hasattr(fifo, name), name
