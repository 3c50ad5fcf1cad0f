"""The network head following NetworkManager over D-Bus (a stand-in on a private bus)."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
import time

import pytest
from dbus_daemon import DbusDaemon
from harness import ask, run_script, until
from polycephaly_ros.robot import config as cfg
from polycephaly_ros.robot.network import NetworkHead, link_state

STANDIN = os.path.join(os.path.dirname(__file__), '..', 'support', 'nm_standin.py')
NOT_FOLLOWED = 'NetworkManager is not followed'


class Standin:
    """The stand-in NetworkManager, another process, driven by stdin commands."""

    def __init__(self, address: str, *devices: str) -> None:
        self.process = subprocess.Popen([sys.executable, STANDIN, address, *devices],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == 'ready'

    def do(self, command: str) -> None:
        """Run a command; return once its signals are on the bus."""
        self.process.stdin.write(command + '\n')
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == 'ok'

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process.stdout.close()


@pytest.fixture
def daemon():
    with DbusDaemon() as d:
        yield d


def settings(bus: str, **more) -> dict:
    s = copy.deepcopy(cfg.DEFAULTS['service']['heads']['network'])
    s.update(hosts={}, networkmanager_bus=bus, **more)
    return s


def head(s: dict, frequency: float) -> list:
    return [(NetworkHead, {'name': 'network', 'mode': 'thread', 'frequency': frequency,
                           'settings': s, 'notify': 'main'})]


def bodies(main, subject: str) -> list:
    return [m['body'] for m in main.received if m['subject'] == subject]


def test_link_state_follows_connectivity():
    s = settings('system')
    nm = {'available': True, 'connectivity': 4}
    assert link_state(s, None, {}, {}, nm)[0] is True
    assert link_state(s, None, {}, {}, dict(nm, connectivity=3)) == (
        False, 'NetworkManager: connectivity limited')
    assert link_state(dict(s, networkmanager_require='limited'), None, {}, {},
                      dict(nm, connectivity=3))[0] is True
    assert link_state(s, None, {}, {}, dict(nm, connectivity=0))[0] is True  # unknown: no say
    assert link_state(s, None, {}, {}, {'available': False})[0] is True


def test_signals_drive_the_link_without_polling(daemon):
    standin = Standin(daemon.address, 'eth0=100', 'wlan0=30')

    def script(main):
        until(main, lambda: bodies(main, 'link_changed'))
        first = ask(main, 'network', 'network')
        started = time.monotonic()
        standin.do('connectivity 1')  # a signal; the next probe is 60 s away
        until(main, lambda: len(bodies(main, 'link_changed')) == 2, timeout=15)
        took = time.monotonic() - started
        standin.do('device eth0 20')
        until(main, lambda: any(b['nm']['devices']['eth0']['state'] == 20
                                for b in bodies(main, 'network_state')), timeout=15)
        unavailable = ask(main, 'network', 'network')
        standin.do('add wlan1 100')
        until(main, lambda: 'wlan1' in bodies(main, 'network_state')[-1]['nm']['devices'],
              timeout=15)
        standin.do('remove wlan1')
        until(main, lambda: 'wlan1' not in bodies(main, 'network_state')[-1]['nm']['devices'],
              timeout=15)
        standin.do('connectivity 4')
        until(main, lambda: len(bodies(main, 'link_changed')) == 3, timeout=15)
        return first, took, unavailable, bodies(main, 'link_changed')

    try:
        first, took, unavailable, links = run_script(
            script, head(settings(daemon.address), 1 / 60), ros=False).outcome
    finally:
        standin.stop()
    assert first['up'] and first['nm']['available'] and first['nm']['connectivity'] == 4
    assert first['nm']['devices']['eth0']['state_name'] == 'activated'
    assert first['nm']['devices']['wlan0']['state_name'] == 'disconnected'
    assert [link['up'] for link in links] == [True, False, True]
    assert links[1]['reason'] == 'NetworkManager: connectivity none'
    assert took < 15  # well below the 60 s between probes: only the signal explains it
    assert unavailable['nm']['devices']['eth0']['state_name'] == 'unavailable'
    assert not unavailable['up']


def test_without_networkmanager_falls_back_and_says_so_once(daemon, caplog):
    caplog.set_level(logging.INFO)
    standin = None

    def script(main):
        nonlocal standin
        # Many snapshots (20 a second) with NetworkManager absent: said once.
        until(main, lambda: len(bodies(main, 'network_state')) >= 1)
        absent = ask(main, 'network', 'network')
        deadline = time.monotonic() + 0.5
        until(main, lambda: time.monotonic() > deadline)
        said = [r for r in caplog.records if NOT_FOLLOWED in r.getMessage()]
        standin = Standin(daemon.address)  # it appears: followed from then on
        until(main, lambda: any(b['nm']['available'] for b in bodies(main, 'network_state')),
              timeout=15)
        return absent, len(said), ask(main, 'network', 'network')

    try:
        absent, said, present = run_script(
            script, head(settings(daemon.address), 20), ros=False).outcome
    finally:
        if standin is not None:
            standin.stop()
    assert absent['up'] and not absent['nm']['available']
    assert 'org.freedesktop.NetworkManager is not on' in absent['nm']['reason']
    assert said == 1
    assert present['nm']['available'] and 'connectivity full' in present['reason']
    assert any('following NetworkManager' in r.getMessage() for r in caplog.records)


def test_without_a_bus_falls_back(tmp_path):
    def script(main):
        until(main, lambda: bodies(main, 'link_changed'))
        return ask(main, 'network', 'network')

    snapshot = run_script(script, head(settings(f'unix:path={tmp_path}/none'), 20),
                          ros=False).outcome
    assert snapshot['up'] and not snapshot['nm']['available']
    assert snapshot['nm']['reason'] == f'not connected to the bus at unix:path={tmp_path}/none'
