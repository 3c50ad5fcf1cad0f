"""The D-Bus client head: this application reaches another one's heads over a real dbus-daemon.

The other application (test/support/dbus_app.py: a DbusServerHead, 'echo' and 'caller') runs
as a program of its own; this one runs with ros=False and its main head is called 'asker'
(a sender named like one of the receiver's heads would be refused).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from dbus_daemon import DbusDaemon, busctl
from dbus_heads import ProbedDbusClient
from harness import ask, run_script, until
from polycephaly_ros import Process
from polycephaly_ros.routes.base import BOUNCED_BY

TIMEOUT = 10.0
NAME = 'io.polycephaly.Other'
APP = Path(__file__).resolve().parents[2] / 'support' / 'dbus_app.py'


def client(daemon: DbusDaemon, **kwargs: Any) -> tuple[type, dict]:
    """The client head 'dbus' calling NAME, with the other application's heads as remote."""
    return ProbedDbusClient, {'name': 'dbus', 'bus': daemon.address, 'bus_name': NAME,
                              'remote': ['echo', 'caller'], **kwargs}


def start_other(procs: Any, daemon: DbusDaemon) -> Any:
    """Start the other application and return once it runs."""
    other = procs.start('other', [sys.executable, str(APP), daemon.address, NAME,
                                  'backoff=(0.05, 0.2)'])
    while (line := other.lines.get(timeout=30)[1]) != 'ready':
        assert line is not None, f'the other application ended:\n{other.log()}'
    return other


def test_wait_for_reply_works_across_dbus_and_the_server_reaches_our_heads(
        daemon: DbusDaemon, procs: Any) -> None:
    other = start_other(procs, daemon)

    def script(main: Process) -> Any:
        assert ask(main, 'dbus', 'connected', TIMEOUT)['connected']
        answers = [ask(main, 'echo', 'ping', n) for n in range(3)]
        explicit = main.wait_for_reply(main.send('nobody', 'ping', via='dbus'), timeout=TIMEOUT)
        hellos: list[dict] = []
        main.add_filter(hellos.append, route='dbus', subject='hello')
        said = ask(main, 'caller', 'call_me', 'psst')  # then 'hello' comes as a signal to us
        hello = until(main, lambda: hellos)[0]
        return answers, explicit, said, hello, ask(main, 'dbus', 'connected', 0)['stats']

    answers, explicit, said, hello, stats = run_script(
        script, [client(daemon)], name='asker').outcome
    assert [a['body'] for a in answers] == [0, 1, 2]
    assert {a['route'] for a in answers} == {'dbus'} and answers[0]['pid'] == other.popen.pid
    assert explicit['subject'] == 'error' and explicit['sender'] == 'nobody'  # (as its reply)
    assert explicit['refused_by'] == NAME
    assert "no head named 'nobody'" in explicit['body']['error']
    assert said == 'ok'
    assert (hello['sender'], hello['body'], hello['route'], hello['via']) == (
        'caller', 'psst', 'dbus', 'dbus')
    assert stats['calls'] == stats['replies'] == 5 and stats['signals'] == 1


def test_calls_that_cannot_be_made_bounce_and_the_client_reconnects_after_a_restart(
        daemon: DbusDaemon, procs: Any) -> None:
    def script(main: Process) -> Any:
        assert ask(main, 'dbus', 'connected', TIMEOUT)['connected']
        nobody_owns = main.wait_for_reply(main.send('echo', 'ping', 0), timeout=TIMEOUT)
        start_other(procs, daemon)
        first = ask(main, 'echo', 'ping', 1)
        daemon.kill()
        until(main, lambda: not ask(main, 'dbus', 'connected', 0)['connected'])
        meanwhile = main.wait_for_reply(main.send('echo', 'ping', 2), timeout=TIMEOUT)
        daemon.start()  # at the same address: both applications reconnect by themselves
        assert ask(main, 'dbus', 'connected', TIMEOUT)['connected']

        def answered() -> Any:
            reply = main.wait_for_reply(main.send('echo', 'ping', 3), timeout=TIMEOUT)
            return reply if reply['subject'] == 'reply' else None
        after = until(main, answered)  # (until the other application owns its name again)
        by_hand = busctl(daemon.address, '--json=short', 'call', NAME, '/io/polycephaly/Route',
                         'io.polycephaly.Route1', 'Send', 's', orjson.dumps(
                             {'recipient': 'echo', 'subject': 'ping', 'sender': 'op',
                              'body': 4}).decode())
        return nobody_owns, first, meanwhile, after, by_hand

    nobody_owns, first, meanwhile, after, by_hand = run_script(
        script, [client(daemon, backoff=(0.05, 0.2))], name='asker').outcome
    assert nobody_owns['subject'] == 'error' and nobody_owns[BOUNCED_BY] == 'dbus'
    assert 'org.freedesktop.DBus.Error.ServiceUnknown' in nobody_owns['body']['error']
    assert first['body'] == 1 and after['body']['body'] == 3
    assert meanwhile['subject'] == 'error' and meanwhile[BOUNCED_BY] == 'dbus'
    assert 'not connected' in meanwhile['body']['error']
    assert by_hand.returncode == 0 and orjson.loads(
        orjson.loads(by_hand.stdout)['data'][0])['body']['body'] == 4
