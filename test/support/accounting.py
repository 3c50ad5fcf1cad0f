"""Heads that keep count, for the reliability suite: pumps that send at full rate, sinks.

Counts live in small memory-mapped files (:class:`Tally`), one writer each, so they survive a
head that is killed and can be read by the test after the application ended.

* :class:`Pump` sends ``item`` envelopes to every head in ``kwargs['to']`` as fast as it
  can, numbering each recipient's stream 0, 1, 2, ... (a number is used only once a send
  returned): ``<pump>.accepted.<to>`` counts the sends that returned, ``<pump>.refused.<to>``
  those that raised.
* :class:`Sink` counts each ``item`` as it starts handling it (``<sink>.handled``) and checks
  each pump's stream arrives in order with no gap or repeat (``<sink>.disorder``). ``freeze``
  blocks it inside a filter (for ``kwargs['freeze']`` seconds): a head that will not stop.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from pathlib import Path

from polycephaly_ros import PolycephalyError, Process, message_filter

_COUNTER = struct.Struct('q')


class Counter:
    """One 64-bit counter in a file of its own, shared through mmap."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _COUNTER.size:
                os.ftruncate(fd, _COUNTER.size)
            self._map = mmap.mmap(fd, _COUNTER.size)
        finally:
            os.close(fd)

    @property
    def value(self) -> int:
        """Return the count."""
        return _COUNTER.unpack_from(self._map)[0]

    def add(self, n: int = 1) -> None:
        """Add n (one writer only)."""
        _COUNTER.pack_into(self._map, 0, _COUNTER.unpack_from(self._map)[0] + n)


class Tally:
    """The counters of one test, as files in a directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(exist_ok=True)
        self._counters: dict[str, Counter] = {}

    def __getitem__(self, name: str) -> Counter:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Counter(self.directory / name)
        return counter

    def value(self, name: str) -> int:
        """Return a counter's value (0 if nothing was ever counted)."""
        return self[name].value if (self.directory / name).exists() else 0


class Pump(Process):
    """Send numbered 'item' envelopes to kwargs['to'] at full rate while running."""

    def birth(self) -> None:
        tally = Tally(self.kwargs['tally'])
        self.targets = list(self.kwargs['to'])
        self.accepted = {to: tally[f'{self.name}.accepted.{to}'] for to in self.targets}
        self.refused = {to: tally[f'{self.name}.refused.{to}'] for to in self.targets}
        self.next = {to: 0 for to in self.targets}
        self.timeout = float(self.kwargs.get('timeout', 0.01))
        self.burst = int(self.kwargs.get('burst', 50))

    def life(self) -> None:
        for _ in range(self.burst):
            for to in self.targets:
                if self.stopping:
                    return
                try:
                    self.send(to, 'item', self.next[to], timeout=self.timeout)
                except PolycephalyError:
                    self.refused[to].add()
                    continue
                self.accepted[to].add()
                self.next[to] += 1
        self.mailman()


class Sink(Process):
    """Count each 'item' as its handling starts; check every pump's stream is in order."""

    def birth(self) -> None:
        tally = Tally(self.kwargs['tally'])
        self.handled = tally[f'{self.name}.handled']
        self.disorder = tally[f'{self.name}.disorder']
        self.expected: dict[str, int] = {}
        self.thawed = threading.Event()

    @message_filter(subject='item')
    def item(self, message: dict) -> None:
        self.handled.add()
        sender, number = message['sender'], message['body']
        if number != self.expected.get(sender, 0):
            self.disorder.add()
        self.expected[sender] = number + 1

    @message_filter(subject='freeze')
    def freeze(self, message: dict) -> None:
        self.reply(message, os.getpid())
        self.thawed.wait(float(self.kwargs.get('freeze', 10.0)))  # the fault under test

