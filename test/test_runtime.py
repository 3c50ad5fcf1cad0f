"""The head runtime: one head opened in order, lived, and closed in reverse (no application)."""

from __future__ import annotations

import os
import multiprocessing
from pathlib import Path

import pytest

from polycephaly_ros import Process, StateError, wire
from polycephaly_ros.bus import Bus
from polycephaly_ros.directory import Address, Directory
from polycephaly_ros.inbox import Inbox
from polycephaly_ros.runtime import HeadRuntime, Settings

pytestmark = pytest.mark.fast


class Recorder(Process):
    """Record its life and what it owns; die after the first life()."""

    def birth(self) -> None:
        self.events = self.kwargs['events']
        self.events.append('birth')
        self.runtime.own(lambda: self.events.append('close first owned'))
        self.runtime.own(lambda: self.events.append('close second owned'))

    def life(self) -> None:
        self.events.append('life')
        self.send(self.name, 'left for death')  # handled while stopping, before death()
        self.die()

    def death(self) -> None:
        self.events.append('death')


def _runtime(tmp_path: Path, target, events: list, **options) -> tuple[HeadRuntime, Bus]:
    path = os.fspath(tmp_path / 'head.sock')
    address = Address('head', path, multiprocessing.BoundedSemaphore(8), 0, 8)
    bus = Bus(Directory({'head': address}, bytearray([1])), send_timeout=1.0)
    inbox = Inbox(wire.listen(path), address.slots)
    settings = Settings('PILL', 'main', '', False, 1.0, False, 0, None, 5.0)
    runtime = HeadRuntime(target, name='head', bus=bus, inbox=inbox, settings=settings,
                          frequency=100.0, kwargs={'events': events}, **options)
    return runtime, bus


def test_a_head_is_born_lives_dies_then_what_it_owns_closes_in_reverse(tmp_path: Path):
    events: list[str] = []
    handled: list[str] = []

    class Head(Recorder):
        def birth(self) -> None:
            super().birth()
            self.add_filter(lambda m: handled.append(m['subject']), subject='left for death')

    runtime, bus = _runtime(tmp_path, Head, events)
    assert runtime.run(after_birth=lambda: events.append('born')) is None
    assert events == ['birth', 'born', 'life', 'death', 'close second owned',
                      'close first owned']
    assert handled == ['left for death']
    assert not bus.directory.running('head')  # marked stopped before its last read
    with pytest.raises(StateError, match='own'):  # only while the head runs
        runtime.own(lambda: None)
    bus.close()


def test_a_failing_birth_is_the_error_and_death_and_closing_still_run(tmp_path: Path):
    events: list[str] = []

    class Failing(Recorder):
        def birth(self) -> None:
            super().birth()
            raise RuntimeError('no hardware')

    runtime, bus = _runtime(tmp_path, Failing, events)
    error = runtime.run()
    assert 'RuntimeError: no hardware' in error
    assert events == ['birth', 'death', 'close second owned', 'close first owned']
    bus.close()


def test_a_failing_close_is_reported_and_the_others_still_close(tmp_path: Path, caplog):
    events: list[str] = []

    class BadClose(Recorder):
        def birth(self) -> None:
            super().birth()
            self.runtime.own(lambda: 1 / 0, 'a broken transport')

    runtime, bus = _runtime(tmp_path, BadClose, events)
    error = runtime.run()
    assert 'ZeroDivisionError' in error
    assert events[-2:] == ['close second owned', 'close first owned']
    assert "closing a broken transport failed" in caplog.text
    bus.close()


def test_the_runtime_is_what_bridges_and_routes_see(tmp_path: Path):
    seen: dict = {}

    class Looker(Process):
        def birth(self) -> None:
            self.add_filter(lambda m: seen.update(delivered=m['subject']))

        def life(self) -> None:
            runtime = self.runtime
            seen.update(name=runtime.name, heads=runtime.heads, knows=runtime.knows('head'),
                        stranger=runtime.knows('nobody'), pill=runtime.poison_pill,
                        timeout=runtime.send_timeout, node=runtime.node)
            runtime.deliver({'sender': 'x', 'recipient': 'head', 'subject': 'handed over'})
            self.die()

    runtime, bus = _runtime(tmp_path, Looker, [])
    assert runtime.run() is None
    assert seen == {'name': 'head', 'heads': ['head'], 'knows': True, 'stranger': False,
                    'pill': 'PILL', 'timeout': 1.0, 'node': None, 'delivered': 'handed over'}
    bus.close()
