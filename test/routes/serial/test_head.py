"""The serial route head inside applications: a device on a pty, the simulator, unplug and replug.

Every application here runs with ros=False. The device's end is either written by hand
(serial_link.Peer on an os.openpty() pair) or the device simulator (serial_device.py, its
own program) behind a socat link that the tests unplug and plug in again.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import Harness, ask, run_script, until
from heads import RouteEcho
from polycephaly_ros import Process
from polycephaly_ros.errors import ConfigurationError
from polycephaly_ros.routes import serial as serial_route
from polycephaly_ros.routes.base import BOUNCED_BY
from polycephaly_ros.routes.serial import SerialRouteHead
from serial_device import encode
from serial_heads import ProbedSerial, ServingSerial

TIMEOUT = 10.0


def app(script: Any, path: str, mode: str = 'thread', **route: Any) -> Harness:
    """Run script with a route head 'serial' on path and a RouteEcho 'echo'."""
    heads = [(ProbedSerial, {'name': 'serial', 'mode': mode, 'path': path, **route}),
             (RouteEcho, {'name': 'echo'})]
    return run_script(script, heads, ros=False)


@pytest.mark.parametrize('mode, framing, thread', [('thread', 'json', False),
                                                   ('process', 'cobs', False),
                                                   ('thread', 'cobs', True)])
def test_a_device_reaches_a_head_and_gets_its_reply(pty, mode: str, framing: str,
                                                    thread: bool) -> None:
    peer, path = pty(framing)

    def script(main: Process) -> Any:
        peer.send(recipient='Echo', subject='ping', body='hi', messageid='m-1', threadid='t-1',
                  threadindex=3, colour='blue')
        first = peer.recv()
        peer.send(recipient='echo', subject='ping', body=2)  # ids filled in by the route
        return first, peer.recv(), ask(main, 'serial', 'probe')

    first, second, probe = app(script, path, mode, framing=framing,
                               transport_thread=thread).outcome
    assert (first['sender'], first['recipient'], first['subject']) == ('echo', 'mcu', 'reply')
    assert (first['threadid'], first['threadindex']) == ('t-1', 4)
    assert first['messageid'] != 'm-1' and first['colour'] == 'blue'  # extra header echoed
    assert first['body']['route'] == 'serial' and first['body']['via'] == 'serial'
    assert 'via' not in first and 'route' not in first  # per-hop headers stay inside
    assert second['body']['body'] == 2 and second['threadindex'] == 2
    assert probe['connected'] and probe['peer'] == 'mcu'
    assert probe['stats']['frames_in'] == probe['stats']['frames_out'] == 2


@pytest.mark.parametrize('framing', ['json', 'cobs'])
def test_heads_wait_for_the_devices_replies_and_the_device_for_theirs(link, simulator,
                                                                       framing: str) -> None:
    simulator(link.mcu, framing)

    def script(main: Process) -> Any:
        def call(subject: str, body: Any = None) -> dict:
            return main.wait_for_reply(main.send('mcu', subject, body), timeout=TIMEOUT)
        # 'ask': the device itself asks the head 'echo' and answers with echo's reply
        return call('add', [1, 2, 3]), call('whoami'), call('reboot'), call('ask', {
            'to': 'echo', 'body': 'from the device'})

    added, who, refused, asked = app(script, link.dev, framing=framing,
                                     remote=['mcu']).outcome
    assert (added['subject'], added['body'], added['route']) == ('reply', 6, 'serial')
    assert added['sender'] == 'mcu' and added['threadindex'] == 2
    assert who['body']['name'] == 'mcu' and who['body']['pid'] != os.getpid()
    assert (refused['subject'], refused['body']) == ('error',
                                                     {'error': "mcu does not take 'reboot'"})
    assert asked['subject'] == 'reply' and asked['body']['body'] == 'from the device'
    assert asked['body']['route'] == 'serial' and asked['body']['via'] == 'serial'


@pytest.mark.parametrize('framing', ['json', 'cobs'])
def test_garbage_and_damaged_frames_get_error_frames_and_the_application_goes_on(
        pty, framing: str) -> None:
    peer, path = pty(framing)

    def script(main: Process) -> dict:
        pill = main.application.poison_pill
        good = encode({'sender': 'mcu', 'recipient': 'echo', 'subject': 'ping',
                       'threadid': 't-crc'}, framing)
        damaged = bytearray(good)
        damaged[len(damaged) // 2] ^= 0x10  # one bit flipped on the line
        errors = {}
        peer.write(b'\xff\xfe\x00noise\x13\x11\n\x01' + peer.delimiter)
        errors['garbage'] = [peer.recv(), peer.recv()]  # (two frames in either framing)
        peer.write(bytes(damaged))
        errors['damaged'] = peer.recv()
        peer.send(recipient='ghost', subject='ping', threadid='t-ghost')
        errors['unknown'] = peer.recv()
        peer.send(recipient='echo', subject=pill, threadid='t-pill')
        errors['pill'] = peer.recv()
        peer.send(recipient='echo', subject='ping', sender='echo', threadid='t-echo')
        errors['head name'] = peer.recv()
        peer.send(recipient='echo', subject='ping', body='still here')
        after = peer.recv()
        return {'errors': errors, 'after': after, 'inside': ask(main, 'echo', 'ping', 'alive'),
                'probe': ask(main, 'serial', 'probe'),
                'status': {s['name']: (s['state'], s['errors']) for s in
                           main.application.status()}}

    harness = app(script, path, framing=framing)
    out = harness.outcome
    errors = out['errors']
    assert all(e['subject'] == 'error' and e['sender'] == 'polycephaly'
               for e in [*errors.pop('garbage'), *errors.values()])
    damaged = errors['damaged']['body']['error']
    if framing == 'cobs':
        assert 'checksum mismatch' in damaged and errors['damaged']['threadid'] == 't-crc'
    else:  # no checksum: the damage shows as whatever it hit (here a header's name)
        assert damaged == "missing header 'subject'"
    assert errors['unknown']['body']['error'].startswith("not delivered: no head named 'ghost'")
    assert errors['unknown']['threadid'] == 't-ghost' and errors['unknown']['recipient'] == 'mcu'
    assert errors['pill']['body'] == {'error': 'refused: control subject'}
    assert 'is a head of this application' in errors['head name']['body']['error']
    assert out['after']['body']['body'] == 'still here'
    assert out['inside']['body'] == 'alive'
    assert out['status'] == {'serial': ('running', 0), 'echo': ('running', 0)}
    assert harness.exit_code == 0 and harness.reason is None


def test_while_the_device_is_unplugged_sends_bounce_at_once_then_it_works_again(
        link, simulator) -> None:
    simulator(link.mcu, 'cobs')

    def ping(main: Process, body: Any) -> tuple[dict, float]:
        started = time.monotonic()
        reply = main.wait_for_reply(main.send('mcu', 'ping', body), timeout=TIMEOUT)
        return reply, time.monotonic() - started

    def script(main: Process) -> dict:
        before, _ = ping(main, 'before')
        link.unplug()
        bounces = [ping(main, 'at once')]  # (a write that fails, or the route already knows)
        gone = until(main, lambda: (p := ask(main, 'serial', 'probe'))['stats']['lost'] and p)
        bounces += [ping(main, n) for n in range(5)]
        link.plug()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the route reopens with backoff, the simulator reopens its end
            after, _ = ping(main, 'after')
            if after['subject'] == 'reply' or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return {'before': before, 'bounces': bounces, 'gone': gone, 'after': after,
                'back': ask(main, 'serial', 'probe')}

    out = app(script, link.dev, framing='cobs', remote=['mcu'], backoff=(0.02, 0.2)).outcome
    assert out['before']['body'] == 'before'
    for bounce, took in out['bounces']:
        assert bounce['subject'] == 'error' and bounce[BOUNCED_BY] == 'serial'
        assert bounce['sender'] == 'mcu' and took < 0.2
    assert all('is not open (unplugged?)' in b['body']['error'] for b, _ in out['bounces'][1:])
    assert not out['gone']['connected'] and out['gone']['stats']['lost'] == 1
    assert out['after']['subject'] == 'reply' and out['after']['body'] == 'after'
    assert out['back']['connected'] and out['back']['stats']['opened'] == 2


def test_a_device_that_does_not_read_costs_bounces_never_a_wait(pty) -> None:
    peer, path = pty()

    def script(main: Process) -> tuple[list[str], float]:
        subjects, slowest = [], 0.0
        for n in range(200):
            started = time.monotonic()
            sent = main.send('mcu', 'ping', 'x' * 2000)
            slowest = max(slowest, time.monotonic() - started)
            subjects.append(main.wait_for_reply(sent, timeout=0.05)['subject']
                            if n >= 150 else 'sent')
        return subjects, slowest

    subjects, slowest = app(script, path, remote=['mcu'], max_pending=64 << 10).outcome
    assert slowest < 0.05
    assert subjects[150:] == ['error'] * 50  # over max_pending: each bounced at once


def test_frames_wait_while_the_recipient_is_full_none_refused(pty) -> None:
    peer, path = pty('cobs')
    count = 300

    def script(main: Process) -> list[dict]:
        peer.write(b''.join(encode({'sender': 'mcu', 'recipient': 'serial', 'subject': 'ping',
                                    'body': n}, 'cobs') for n in range(count)))
        return [peer.recv() for _ in range(count)]

    replies = run_script(script, [(ServingSerial, {'name': 'serial', 'path': path,
                                                   'framing': 'cobs'})],
                         ros=False, queue_size=5, send_timeout=60.0).outcome
    assert [r['subject'] for r in replies] == ['reply'] * count
    assert [r['body']['body'] for r in replies] == list(range(count))
    assert all(r['body']['thread'] for r in replies)  # answered in the thread reading the device


def test_configuration_errors_are_caught_before_anything_starts(tmp_path: Path) -> None:
    cases = [({}, 'needs path'), ({'path': '/dev/x', 'framing': 'slip'}, 'framing must be one'),
             ({'path': '/dev/x', 'framing': 'cobs', 'xonxoff': True}, 'XON/XOFF'),
             ({'path': '/dev/x', 'rtscts': 'yes'}, 'rtscts is True or False'),
             ({'path': '/dev/x', 'backoff': (1, 0.5)}, 'backoff must be'),
             ({'path': '/dev/x', 'baudrate': -9600}, 'baudrate must be')]
    for kwargs, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            Harness(lambda main: None, [(SerialRouteHead, kwargs)], ros=False).run()
    with pytest.raises(ConfigurationError, match='is a head of this application'):
        Harness(lambda main: None, [(SerialRouteHead, {'path': '/dev/x', 'remote': ['echo']}),
                                    (RouteEcho, {'name': 'echo'})], ros=False).run()


# -- the package's layout -------------------------------------------------------------------------
TRANSPORTS = ['framing', 'port', 'output', 'inbound', 'transport']
HEAD_MACHINERY = {'polycephaly_ros.head', 'polycephaly_ros.routes.base', 'polycephaly_ros.runtime',
                  'polycephaly_ros.application', 'polycephaly_ros.supervisor',
                  'polycephaly_ros.routes.serial.head'}
EAGER_PACKAGES = {'polycephaly_ros', 'polycephaly_ros.routes.serial'}


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
            found |= {f'{base}.{alias.name}' for alias in node.names
                      if f'{base}.{alias.name}' in sys.modules}
    return {m for m in found if m.split('.')[0] == 'polycephaly_ros'}


def test_only_the_head_module_imports_the_head_machinery() -> None:
    for transport in (f'polycephaly_ros.routes.serial.{m}' for m in TRANSPORTS):
        seen, todo = set(), [transport]
        while todo:
            name = todo.pop()
            seen.add(name)
            todo += [m for m in imports_of(name) - seen if m not in EAGER_PACKAGES]
        assert not seen & HEAD_MACHINERY, f'{transport} imports {sorted(seen & HEAD_MACHINERY)}'
    assert imports_of('polycephaly_ros.routes.serial.head') & HEAD_MACHINERY
    for name in serial_route.__all__:
        assert hasattr(serial_route, name), name
