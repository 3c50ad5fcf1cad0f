"""The updates head and logind: an inhibitor lock while busy, reboots through ScheduleShutdown.

On a private dbus-daemon, with a stand-in org.freedesktop.login1 (login1_standin.py) in a process
of its own that reports what it sees, in order, as JSON lines.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from dbus_daemon import DbusDaemon
from harness import ask, run_script
from polycephaly_ros.robot import config as cfg
from polycephaly_ros.robot.updates import UpdatesHead

STANDIN = Path(__file__).resolve().parents[1] / 'support' / 'login1_standin.py'
FALLBACK = 'logind unavailable'


class Standin:
    """The stand-in's process and the events it printed."""

    def __init__(self, address: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.process = subprocess.Popen([sys.executable, '-P', str(STANDIN), address],
                                        stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert self.next()['event'] == 'ready'

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.put(json.loads(line))
        self.events.put({'event': 'exited'})

    def next(self, timeout: float = 15.0) -> dict:
        return self.events.get(timeout=timeout)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


@pytest.fixture
def bus():
    with DbusDaemon() as daemon:
        yield daemon


@pytest.fixture
def login1(bus):
    standin = Standin(bus.address)
    yield standin
    standin.stop()


def settings(tmp_path, address, **changes):
    s = copy.deepcopy(cfg.DEFAULTS['service']['heads']['updates'])
    s['actions'] = {'reboot': {'command': ['sh', '-c', f'echo ran > {tmp_path}/ran'],
                               'description': 'reboot', 'pending': False}}
    now = dt.datetime.now()
    s['window'] = {'start': f'{now - dt.timedelta(minutes=5):%H:%M}',
                   'end': f'{now + dt.timedelta(minutes=60):%H:%M}', 'days': list(cfg.DAYS)}
    s['require_idle'] = False
    s['logind'] = {'enabled': True, 'bus': address, 'reboot_delay': 120.0}
    s.update(changes)
    return s


def run_updates(script, s):
    return run_script(script, [(UpdatesHead, {'name': 'updates', 'mode': 'thread',
                                              'frequency': 20, 'settings': s,
                                              'notify': 'main'})], ros=False).outcome


def test_busy_holds_an_inhibitor_lock_and_idle_releases_it(tmp_path, bus, login1):
    seen = {}

    def script(main):
        ask(main, 'updates', 'robot_idle', {'idle': False})
        seen['inhibit'] = login1.next()  # (taken before the answer)
        held = ask(main, 'updates', 'updates')['logind']
        ask(main, 'updates', 'robot_idle', {'idle': False})  # busy again: the same lock
        ask(main, 'updates', 'robot_idle', {'idle': True})
        seen['released'] = login1.next()
        after = ask(main, 'updates', 'updates')['logind']
        ask(main, 'updates', 'robot_idle', False)  # a second lock, released at the end
        seen['again'] = login1.next()
        return held, after

    held, after = run_updates(script, settings(tmp_path, bus.address))
    assert {k: seen['inhibit'][k] for k in ('event', 'what', 'who', 'why', 'mode')} == {
        'event': 'inhibit', 'what': 'shutdown:sleep', 'who': 'polycephaly',
        'why': 'robot busy', 'mode': 'block'}
    assert held['available'] and held['inhibitor']['held']
    assert seen['released'] == {'event': 'released', 'id': seen['inhibit']['id']}
    assert not after['inhibitor']['held']
    assert seen['again']['event'] == 'inhibit' and seen['again']['id'] == seen['inhibit']['id'] + 1
    assert login1.next() == {'event': 'released', 'id': seen['again']['id']}  # the head's death


def test_a_live_reboot_goes_through_schedule_shutdown(tmp_path, bus, login1):
    s = settings(tmp_path, bus.address, dry_run=False)

    def script(main):
        return ask(main, 'updates', 'schedule', {'action': 'reboot'})

    decision = run_updates(script, s)['decision']
    assert decision['outcome'] == 'scheduled', decision
    assert 'ScheduleShutdown("reboot")' in decision['reason']
    assert login1.next() == {'event': 'schedule', 'type': 'reboot', 'usec': decision['usec']}
    assert decision['usec'] == int(decision['planned'] * 1e6)
    assert decision['planned'] - decision['time'] == pytest.approx(120.0, abs=5)
    assert not (tmp_path / 'ran').exists()  # logind reboots; the command did not run


def test_a_dry_run_reboot_is_only_logged(tmp_path, bus, login1):
    s = settings(tmp_path, bus.address)  # dry_run: the default

    def script(main):
        answer = ask(main, 'updates', 'schedule', {'action': 'reboot'})
        ask(main, 'updates', 'robot_idle', False)  # then a call that the stand-in does see
        return answer

    decision = run_updates(script, s)['decision']
    assert decision['outcome'] == 'dry-run'
    assert 'would schedule a reboot through logind' in decision['reason']
    assert login1.next()['event'] == 'inhibit'  # the first thing it saw: no ScheduleShutdown
    assert not (tmp_path / 'ran').exists()


@pytest.mark.parametrize('where', ['no service', 'no bus'])
def test_without_logind_it_falls_back_and_says_so_once(tmp_path, bus, caplog, where):
    address = bus.address if where == 'no service' else f'unix:path={bus.folder}/nobody'
    s = settings(tmp_path, address, dry_run=False)
    caplog.set_level(logging.INFO)

    def script(main):
        for idle in (False, True, False):
            ask(main, 'updates', 'robot_idle', idle)
        return ask(main, 'updates', 'schedule', 'reboot'), ask(main, 'updates', 'updates')

    answer, state = run_updates(script, s)
    assert answer['decision']['outcome'] == 'ran'  # today's behaviour: the command runs
    assert (tmp_path / 'ran').read_text() == 'ran\n'
    assert state['logind']['available'] is False
    assert state['logind']['reason'].startswith('unavailable: ')
    said = [r for r in caplog.records if FALLBACK in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
