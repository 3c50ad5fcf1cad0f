"""sd_notify: READY=1 after every birth, STATUS lines, WATCHDOG=1 from the main head's loop only,
STOPPING=1; a real AF_UNIX datagram socket in tmp_path stands in for systemd.

Thread heads only, no ROS: the fast tier.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from harness import run_script, until
from heads import CrashInLife
from polycephaly_ros import Process
from polycephaly_ros import sd_notify

pytestmark = pytest.mark.fast

#: WATCHDOG_USEC of these tests: a ping every 0.2 s.
WATCHDOG_USEC = 400_000


class Systemd:
    """A datagram socket standing in for systemd's notify socket; records what arrives."""

    def __init__(self, path: str, journal: list) -> None:
        self.path, self.journal = path, journal
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while not self.closed.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            for line in data.decode().split('\n'):
                self.messages.append((time.monotonic(), line))
                self.journal.append(f'sd {line}')

    def lines(self, prefix: str = '') -> list[str]:
        return [line for _, line in self.messages if line.startswith(prefix)]

    def times(self, line: str) -> list[float]:
        return [t for t, text in self.messages if text == line]

    def close(self) -> None:
        self.closed.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    path = str(tmp_path / 'notify')
    assert len(path) < 100, path  # (sun_path)
    journal: list[str] = []
    monkeypatch.setenv('NOTIFY_SOCKET', path)
    monkeypatch.delenv('WATCHDOG_USEC', raising=False)
    monkeypatch.delenv('WATCHDOG_PID', raising=False)
    fake = Systemd(path, journal)
    yield fake
    fake.close()


class Noted(Process):
    """Append "born <name>" to kwargs['journal'] at the end of birth(), after kwargs['slow'] s."""

    def birth(self) -> None:
        time.sleep(self.kwargs.get('slow', 0.0))  # the slow birth under test
        self.kwargs['journal'].append(f'born {self.name}')


def test_ready_after_every_birth_then_status_then_stopping(systemd):
    journal = systemd.journal
    heads = [(Noted, dict(name='first', journal=journal)),
             (Noted, dict(name='slow', journal=journal, slow=0.6)),
             (Noted, dict(name='last', journal=journal))]

    def script(main):
        until(main, lambda: systemd.lines('READY=1'))
        ready = journal.index('sd READY=1')
        main.application.stop('first')
        until(main, lambda: any('first stopped' in s for s in systemd.lines('STATUS=')))
        return ready

    app = run_script(script, heads)
    ready = app.outcome
    births = [journal.index(f'born {name}') for name in ('first', 'slow', 'last')]
    assert births == sorted(births) and births[-1] < ready, journal
    assert journal[ready + 1] == 'sd STATUS=3 of 3 heads running', journal  # (one datagram)
    assert 'STATUS=2 of 3 heads running; first stopped' in systemd.lines('STATUS=')
    until_stopped = time.monotonic() + 10
    while 'STOPPING=1' not in systemd.lines() and time.monotonic() < until_stopped:
        time.sleep(0.05)  # (the datagram may still be on its way to the receiving thread)
    assert systemd.lines('READY=1') == ['READY=1']
    assert systemd.lines('STOPPING=1') == ['STOPPING=1']
    assert journal.index('sd STOPPING=1') > journal.index('sd READY=1')
    assert not systemd.lines('WATCHDOG=1')  # (no WATCHDOG_USEC)
    assert app.exit_code == 0


def test_watchdog_pings_from_the_main_heads_loop_only(systemd, monkeypatch):
    monkeypatch.setenv('WATCHDOG_USEC', str(WATCHDOG_USEC))
    monkeypatch.setenv('WATCHDOG_PID', str(os.getpid()))
    gate = threading.Event()

    def script(main):
        until(main, lambda: len(systemd.lines('WATCHDOG=1')) >= 8)
        hung_at = time.monotonic()
        gate.wait(1.5)  # the main head is stuck in life(): its loop does not turn
        thawed_at = time.monotonic()
        count = len(systemd.lines('WATCHDOG=1'))
        until(main, lambda: len(systemd.lines('WATCHDOG=1')) >= count + 3)
        return hung_at, thawed_at

    app = run_script(script, [(Noted, dict(name='other', journal=systemd.journal))])
    hung_at, thawed_at = app.outcome
    pings = systemd.times('WATCHDOG=1')
    before = [t for t in pings if t < hung_at]
    gaps = [b - a for a, b in zip(before, before[1:])]
    assert 0.1 < sorted(gaps)[len(gaps) // 2] < 0.6, gaps  # every half of WATCHDOG_USEC
    # None sent while the main head hung (a datagram sent just before may arrive just after).
    assert not [t for t in pings if hung_at + 0.1 < t < thawed_at], (hung_at, thawed_at, pings)
    assert [t for t in pings if t > thawed_at]
    assert app.exit_code == 0


def test_no_watchdog_for_another_pid(systemd, monkeypatch):
    monkeypatch.setenv('WATCHDOG_USEC', str(WATCHDOG_USEC))
    monkeypatch.setenv('WATCHDOG_PID', str(os.getpid() + 1))

    def script(main):
        until(main, lambda: systemd.lines('READY=1'))
        deadline = time.monotonic() + 0.8
        until(main, lambda: time.monotonic() > deadline)

    app = run_script(script)
    assert not systemd.lines('WATCHDOG=1')
    assert app._systemd.interval is None and app.exit_code == 0


def test_pings_stop_when_a_head_fails_past_its_restart_intensity(systemd, monkeypatch):
    monkeypatch.setenv('WATCHDOG_USEC', str(WATCHDOG_USEC))
    heads = [(CrashInLife, dict(name='crash', restart='on_failure', max_restarts=1,
                                restart_window=30, restart_backoff=(0.05, 0.05)))]

    def script(main):
        until(main, lambda: systemd.lines('STATUS=failed'))
        failed_at = time.monotonic()
        # The main head's loop goes on turning for 1.2 s: it would have pinged ~6 times.
        until(main, lambda: time.monotonic() > failed_at + 1.2)
        return failed_at

    app = run_script(script, heads)
    failed_at = app.outcome
    assert app.exit_code == 1
    (reason,) = systemd.lines('STATUS=failed')
    assert "head 'crash' needed more than 1 restart(s)" in reason
    pings = systemd.times('WATCHDOG=1')
    assert pings and not [t for t in pings if t > failed_at + 0.1], (failed_at, pings)
    assert 'STOPPING=1' in systemd.lines()


def test_nothing_sent_and_nothing_fails_without_notify_socket(systemd, monkeypatch):
    monkeypatch.delenv('NOTIFY_SOCKET')
    monkeypatch.setenv('WATCHDOG_USEC', str(WATCHDOG_USEC))

    def script(main):
        deadline = time.monotonic() + 0.6
        until(main, lambda: time.monotonic() > deadline)
        main.application.stop('other')

    app = run_script(script, [(Noted, dict(name='other', journal=systemd.journal))])
    assert app.exit_code == 0 and not app._systemd.enabled and app._systemd.pings == 0
    assert not systemd.messages
    assert sd_notify.notify('READY=1') is False


def test_notify_to_an_abstract_socket_and_to_nothing(tmp_path):
    name = f'polycephaly-test-{os.getpid()}-{time.monotonic_ns()}'
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind('\0' + name)
        assert sd_notify.notify('READY=1', 'STATUS=up', environ={'NOTIFY_SOCKET': '@' + name})
        sock.settimeout(5)
        assert sock.recv(4096) == b'READY=1\nSTATUS=up'
    # A socket nobody listens on: logged, not raised.
    assert sd_notify.notify('READY=1', environ={'NOTIFY_SOCKET': str(tmp_path / 'none')}) is False
    assert sd_notify.notify('READY=1', environ={}) is False


def test_watchdog_interval():
    pid = str(os.getpid())
    assert sd_notify.watchdog_interval({'WATCHDOG_USEC': '10000000'}) == 5.0
    assert sd_notify.watchdog_interval({'WATCHDOG_USEC': '10000000', 'WATCHDOG_PID': pid}) == 5.0
    assert sd_notify.watchdog_interval({'WATCHDOG_USEC': '10000000', 'WATCHDOG_PID': '1'}) is None
    assert sd_notify.watchdog_interval({'WATCHDOG_USEC': 'x'}) is None
    assert sd_notify.watchdog_interval({}) is None
