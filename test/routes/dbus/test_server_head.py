"""The D-Bus server head in applications, on a real dbus-daemon started by each test.

Peers: systemd's busctl and GLib's gdbus (programs nobody here wrote) and a plain dbus-fast
connection (test/support/dbus_peer.py). Every application here runs with ros=False.
"""

from __future__ import annotations

import ast
import asyncio
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbus_fast import Message, MessageType

from dbus_daemon import GDBUS, DbusDaemon, busctl, gdbus
from dbus_heads import ProbedDbusServer
from dbus_peer import Peer
from harness import ask, run_script, until
from heads import GatedEcho, RouteEcho
from polycephaly_ros import EXIT_CONFIG, Process
from polycephaly_ros.errors import ConfigurationError
from polycephaly_ros.routes.base import BOUNCED_BY
from polycephaly_ros.routes.dbus import DbusServerHead

TIMEOUT = 10.0
NAME = 'io.polycephaly.Test'
ROUTE = ['/io/polycephaly/Route', 'io.polycephaly.Route1', 'Send']
APP = Path(__file__).resolve().parents[2] / 'support' / 'dbus_app.py'
PING = {'recipient': 'echo', 'subject': 'ping', 'sender': 'op', 'body': 'hi'}


def server(daemon: DbusDaemon, **kwargs: Any) -> tuple[type, dict]:
    """The server head 'dbus' owning NAME on the daemon (a thread head unless mode= says)."""
    return ProbedDbusServer, {'name': 'dbus', 'bus': daemon.address, 'bus_name': NAME, **kwargs}


def connected(main: Process, within: float = TIMEOUT, head: str = 'dbus') -> dict:
    """Return the route head's answer once it is connected (within seconds, or fail)."""
    answer = ask(main, head, 'connected', within, timeout=within + TIMEOUT)
    assert answer['connected'], f'{head} did not connect within {within} s'
    return answer


def busctl_send(daemon: DbusDaemon, text: str, *extra: str) -> dict:
    """Call Send with busctl; return the reply envelope."""
    out = busctl(daemon.address, '--json=short', *extra, 'call', NAME, *ROUTE, 's', text)
    assert out.returncode == 0, out.stderr
    reply = orjson.loads(out.stdout)
    assert reply['type'] == 's', reply
    return orjson.loads(reply['data'][0])


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_busctl_and_gdbus_call_a_head_and_get_its_reply(daemon: DbusDaemon, mode: str) -> None:
    def script(main: Process) -> Any:
        connected(main)
        first = busctl_send(daemon, orjson.dumps(dict(
            PING, recipient='Echo', messageid='m-1', threadid='t-1', threadindex=3,
            colour='blue', dbus_call='forged')).decode())
        out = gdbus(daemon.address, 'call', '--dest', NAME, '--object-path', ROUTE[0],
                    '--method', f'{ROUTE[1]}.{ROUTE[2]}', orjson.dumps(dict(PING, body=2)).decode())
        assert out.returncode == 0, out.stderr
        second = orjson.loads(ast.literal_eval(out.stdout.strip())[0])
        shown = gdbus(daemon.address, 'introspect', '--dest', NAME, '--object-path', ROUTE[0])
        return first, second, shown.stdout, ask(main, 'dbus', 'connected', 0)['stats']

    first, second, introspected, stats = run_script(
        script, [server(daemon, mode=mode), (RouteEcho, {'name': 'echo'})]).outcome
    assert (first['sender'], first['recipient'], first['subject']) == ('echo', 'op', 'reply')
    assert (first['threadid'], first['threadindex']) == ('t-1', 4)
    assert first['messageid'] not in ('m-1', None)
    assert first['body']['body'] == 'hi' and first['colour'] == 'blue'  # extra header echoed
    assert first['body']['route'] == 'dbus' and first['body']['via'] == 'dbus'
    for hop in ('via', 'route', 'dbus_call'):  # per-hop headers stay inside
        assert hop not in first
    assert second['body']['body'] == 2 and second['threadindex'] == 2
    assert 'interface io.polycephaly.Route1' in introspected
    assert 'Send(in  s envelope' in introspected and 'Envelope(s' in introspected
    assert stats['calls'] == stats['delivered'] == stats['replied'] == 2


def test_bad_input_gets_error_replies_and_nothing_stops(daemon: DbusDaemon) -> None:
    pill = 'STOP-NOW'

    def script(main: Process) -> Any:
        connected(main)
        errors = {}
        with Peer(daemon.address) as peer:
            ask_ = lambda text: peer.request(NAME, text)  # noqa: E731
            errors['not json'] = ask_('{"recipient": "echo", "subject": ')
            errors['not an object'] = ask_('[1, 2]')
            errors['wrong type'] = ask_(dict(PING, threadindex='x', threadid='t-2'))
            errors['no sender'] = ask_({'recipient': 'echo', 'subject': 'ping'})
            errors['pill'] = ask_(dict(PING, subject=pill))
            errors['control'] = ask_(dict(PING, recipient='dbus', subject='polycephaly.ebrake'))
            errors['unknown'] = ask_(dict(PING, recipient='ghost'))
            errors['a head as sender'] = ask_(dict(PING, sender='echo'))
            errors['too big'] = ask_(dict(PING, body='x' * 2000))
            signature = peer.call(NAME, [3], signature='i')
            nothing = peer.call(NAME, [], signature='')
            after = peer.request(NAME, PING)
        by_hand = busctl_send(daemon, 'not json at all')
        # a head sending to an outside name nobody listens for: a broadcast, no bounce
        return {'errors': errors, 'signature': signature, 'nothing': nothing, 'after': after,
                'by_hand': by_hand, 'stats': ask(main, 'dbus', 'connected', 0)['stats'],
                'status': {s['name']: (s['state'], s['errors'])
                           for s in main.application.status()}}

    out = run_script(script, [server(daemon, max_message=1000), (RouteEcho, {'name': 'echo'})],
                     ppill=pill).outcome
    reasons = {k: e['body']['error'] for k, e in out['errors'].items()}
    assert all(e['subject'] == 'error' and e['sender'] == 'polycephaly'
               for e in out['errors'].values()), out['errors']
    assert 'malformed JSON' in reasons['not json']
    assert 'must be a JSON object, not array' in reasons['not an object']
    assert "'threadindex' must be an integer" in reasons['wrong type']
    assert out['errors']['wrong type']['threadid'] == 't-2'
    assert "missing header 'sender'" in reasons['no sender']
    assert reasons['pill'] == reasons['control'] == 'refused: control subject'
    assert "no head named 'ghost'" in reasons['unknown']
    assert 'is a head of this application' in reasons['a head as sender']
    assert 'at most 1000' in reasons['too big']
    for call in (out['signature'], out['nothing']):
        assert call.message_type is MessageType.ERROR
        assert call.error_name == 'org.freedesktop.DBus.Error.InvalidArgs'
        assert 'takes one string' in call.body[0]
    assert out['after']['body']['body'] == 'hi'
    assert 'malformed JSON' in out['by_hand']['body']['error']
    assert out['status'] == {'dbus': ('running', 0), 'echo': ('running', 0)}
    stats = out['stats']
    assert stats['calls'] == 13 and stats['refused'] == 12 and stats['replied'] == 1


class Gate(threading.Event):
    """An Event that also tells when a wait() has begun (the gated head took its envelope)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait like an Event, noting that the wait began."""
        self.entered.set()
        return super().wait(timeout)


class Silent(Process):
    """Take 'ping' and never answer."""

    def birth(self) -> None:
        self.add_filter(lambda m: None, route=None, subject='ping')


def test_unanswered_busy_and_held_calls_get_error_replies_without_waiting_long(
        daemon: DbusDaemon) -> None:
    """call_timeout ends a call nobody answers; max_calls and a full queue refuse the rest.

    A reply that comes after its call ended goes to the caller as a signal (counted 'late').
    """
    gate = Gate()

    def script(main: Process) -> Any:
        connected(main)
        with Peer(daemon.address) as peer:
            silent = peer.request(NAME, dict(PING, recipient='silent'))  # call_timeout 0.3 s

            def call(n: int) -> Any:
                return asyncio.run_coroutine_threadsafe(peer.bus.call(Message(
                    destination=NAME, path=ROUTE[0], interface=ROUTE[1], member=ROUTE[2],
                    signature='s', body=[orjson.dumps(dict(PING, recipient='gated', body=n)
                                                      ).decode()])), peer.loop)
            calls = [call(0)]  # 0: taken by the gated head (which then waits for the gate),
            assert gate.entered.wait(TIMEOUT)
            calls += [call(1), call(2)]  # 1: in its queue (of 1), 2: held while it is full
            busy = peer.request(NAME, dict(PING, body='one too many'))  # max_calls 3
            held = orjson.loads(calls[2].result(TIMEOUT).body[0])  # after send_timeout 0.5 s
            late = [orjson.loads(calls[n].result(TIMEOUT).body[0]) for n in (0, 1)]
            gate.set()  # the gated head answers 0 and 1 now: after their calls ended
            signals = [peer.next_signal()[1] for _ in range(2)]
        return silent, busy, held, late, signals, ask(main, 'dbus', 'connected', 0)['stats']

    heads = [server(daemon, call_timeout=0.3, max_calls=3), (RouteEcho, {'name': 'echo'}),
             (Silent, {'name': 'silent'}), (GatedEcho, {'name': 'gated', 'gate': gate})]
    silent, busy, held, late, signals, stats = run_script(script, heads, queue_size=1,
                                                          send_timeout=0.5).outcome
    assert "no reply from 'silent' within 0.3 s" in silent['body']['error']
    assert 'busy: 3 calls are in progress' in busy['body']['error']
    assert "queue of head 'gated' is full" in held['body']['error']
    assert '(for 0.5 s)' in held['body']['error']
    assert all("no reply from 'gated' within 0.3 s" in e['body']['error'] for e in late)
    assert sorted(s['body'] for s in signals) == [0, 1]
    assert all(s['recipient'] == 'op' and s['sender'] == 'gated' for s in signals)
    assert stats['timeouts'] == 3 and stats['busy'] == 1 and stats['late'] == 2


def test_envelopes_to_outside_names_are_signals(daemon: DbusDaemon) -> None:
    """To a name no caller used: broadcast (gdbus monitor hears it); to a caller's: to it alone."""
    def script(main: Process) -> Any:
        connected(main)
        monitor = subprocess.Popen([GDBUS, 'monitor', '--address', daemon.address, '--dest',
                                    NAME], stdout=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in monitor.stdout],
                         daemon=True).start()
        try:
            with Peer(daemon.address) as peer, Peer(daemon.address) as other:
                other.subscribe()
                main.send('watcher', 'news', {'n': 1}, via='dbus')
                broadcast = other.next_signal()
                heard = heard_by(monitor, lines, main)
                peer.request(NAME, dict(PING, sender='panel'))  # 'panel' is peer's now
                main.send('panel', 'news', {'n': 2}, via='dbus')
                unicast = peer.next_signal()
                main.send('watcher', 'news', {'n': 3}, via='dbus')  # a barrier for other
                seen = [other.next_signal()[1]['body']]
                while seen[-1] != {'n': 3}:  # (heard_by may have sent n 1 more than once)
                    seen.append(other.next_signal()[1]['body'])
                assert {'n': 2} not in seen, seen
                peer.call(NAME, [orjson.dumps(dict(PING, body='post')).decode()],
                          no_reply=True)
                posted = peer.next_signal()  # a call without reply: the answer is a signal
                return broadcast, heard, unicast, posted, peer.bus.unique_name
        finally:
            monitor.terminate()
            monitor.wait(10)

    broadcast, heard, unicast, posted, peer_name = run_script(
        script, [server(daemon), (RouteEcho, {'name': 'echo'})]).outcome
    msg, envelope = broadcast
    assert (msg.path, msg.interface, msg.member, msg.signature) == (
        '/io/polycephaly/Route', 'io.polycephaly.Route1', 'Envelope', 's')
    assert msg.destination is None
    assert (envelope['recipient'], envelope['subject'], envelope['body']) == (
        'watcher', 'news', {'n': 1})
    assert '/io/polycephaly/Route: io.polycephaly.Route1.Envelope' in heard
    assert '"recipient":"watcher"' in heard and '"subject":"news"' in heard
    assert unicast[0].destination == peer_name and unicast[1]['body'] == {'n': 2}
    assert posted[0].destination == peer_name
    assert posted[1]['subject'] == 'reply' and posted[1]['body']['body'] == 'post'


def heard_by(monitor: subprocess.Popen, lines: queue.Queue, main: Process) -> str:
    """Return the first Envelope line gdbus monitor prints, signalling again until it hears one.

    (gdbus monitor says nothing once its match rules are in: the first signals may come before.)
    """
    for _ in range(50):
        try:
            while True:
                line = lines.get(timeout=0.2)
                if 'Envelope' in line:
                    return line
        except queue.Empty:
            assert monitor.poll() is None, 'gdbus monitor ended'
            main.send('watcher', 'news', {'n': 1}, via='dbus')
    raise AssertionError('gdbus monitor heard no signal')


def test_the_route_reconnects_after_the_daemon_restarts_and_sends_bounce_meanwhile(
        daemon: DbusDaemon) -> None:
    def script(main: Process) -> Any:
        connected(main)
        with Peer(daemon.address) as peer:
            before = peer.request(NAME, PING)
        daemon.kill()
        until(main, lambda: not ask(main, 'dbus', 'connected', 0)['connected'])
        bounce = main.wait_for_reply(main.send('op', 'news', 1, via='dbus'), timeout=TIMEOUT)
        daemon.start()  # at the same address
        connected(main)
        after = busctl_send(daemon, orjson.dumps(PING).decode())
        return before, bounce, after

    before, bounce, after = run_script(script, [server(daemon, backoff=(0.05, 0.2)),
                                                (RouteEcho, {'name': 'echo'})]).outcome
    assert before['body']['body'] == after['body']['body'] == 'hi'
    assert bounce['subject'] == 'error' and bounce[BOUNCED_BY] == 'dbus'
    assert 'not connected' in bounce['body']['error']


def test_a_name_another_connection_owns_ends_the_application_with_exit_config(
        daemon: DbusDaemon, procs: Any) -> None:
    with Peer(daemon.address) as holder:
        taken = holder.call('org.freedesktop.DBus', [NAME, 4], signature='su',
                            member='RequestName', path='/org/freedesktop/DBus',
                            interface='org.freedesktop.DBus')
        assert taken.body == [1]  # primary owner
        app = procs.start('app', [sys.executable, str(APP), daemon.address, NAME])
        assert app.wait(30) == EXIT_CONFIG
    assert f"the name '{NAME}' is owned by another connection" in app.log()


@pytest.mark.fast
@pytest.mark.parametrize('bad, says', [
    ({}, 'needs bus_name='),
    ({'bus_name': ':1.5'}, 'needs bus_name='),
    ({'bus_name': 'no_dots'}, 'needs bus_name='),
    ({'bus': 'sessions'}, "bus is 'session', 'system' or a D-Bus address"),
    ({'object_path': 'io/x'}, 'object_path must be'),
    ({'interface': 'x'}, 'interface must be'),
    ({'call_timeout': 0}, 'call_timeout must be a number > 0'),
    ({'max_calls': 0}, 'max_calls must be a whole number'),
    ({'backoff': (2, 1)}, 'backoff must be'),
])
def test_bad_settings_are_configuration_errors(bad: dict, says: str) -> None:
    kwargs = {'bus_name': NAME, **bad}
    if bad == {}:
        kwargs.pop('bus_name')
    with pytest.raises(ConfigurationError, match=says.replace('(', r'\(')):
        DbusServerHead.configure(kwargs)
    assert DbusServerHead.configure({'bus_name': NAME, 'remote': ['Op']}) == ['op']
