"""Fixtures for the serial route: pseudo-terminal lines, a socat link to unplug, the simulator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from serial_link import Link, Peer, Simulator, pty_pair


@pytest.fixture
def pty() -> Iterator[Callable[..., tuple[Peer, str]]]:
    """Return a factory of lines: (the device's end as a Peer, the path the route opens)."""
    fds: list[int] = []

    def make(framing: str = 'json', name: str = 'mcu') -> tuple[Peer, str]:
        master, slave, path = pty_pair()
        fds.extend((master, slave))  # the slave stays open: the line never hangs up by itself
        return Peer(master, framing, name), path

    yield make
    for fd in fds:
        os.close(fd)


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    """A socat link (dev: the route's end, mcu: the device's), unplugged after the test."""
    running = Link(tmp_path)
    yield running
    running.close()


@pytest.fixture
def simulator() -> Iterator[Callable[..., Simulator]]:
    """Return a factory of device simulators (stopped after the test)."""
    started: list[Simulator] = []

    def start(path: str, framing: str = 'json', name: str = 'mcu') -> Simulator:
        started.append(Simulator(path, framing, name))
        return started[-1]

    yield start
    for sim in started:
        sim.close()
