"""The directory of one application: every head's inbox address, queue slots and running state.

It is made once by the application before any head starts, and every process of the
application gets a copy (pickled to each head process): the addresses are socket paths in
the application's private run directory, the queue slots are a bounded counting semaphore per
head shared by all processes (one slot per envelope on its way or queued), and the running
states are one shared byte per head. It also holds
the route heads' names and the outside names they reach (``remote=``), so every process
routes alike (see :class:`~polycephaly_ros.bus.Bus`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import wire
from .errors import ConfigurationError

#: Longest socket path AF_UNIX takes on Linux (sun_path is 108 bytes, NUL included), with room.
_MAX_PATH = 100
#: A run directory's name: its application's pid, then mkdtemp's random part.
_RUNDIR = re.compile(r'polycephaly-(\d+)-\w+')
_log = logging.getLogger('polycephaly_ros.directory')


@dataclass
class Address:
    """Where a head's inbox is and how many envelopes it may hold."""

    name: str
    path: str
    slots: Any  # multiprocessing.BoundedSemaphore, shared with every process of the application
    index: int
    queue_size: int


@dataclass
class Directory:
    """The inboxes of one application, which heads run, and which reach outside names."""

    addresses: dict[str, Address]
    states: Any  # multiprocessing RawArray('b'): 1 while a head runs
    #: Route heads: a ``via`` header naming one sends the envelope out through it.
    routes: frozenset[str] = frozenset()
    #: Outside names reached through a route head without a ``via`` header: name -> head.
    remote: dict[str, str] = field(default_factory=dict)
    #: Per head, how many envelopes its filters failed on (RawArray('q'); None: not counted).
    faults: Any = None

    def __contains__(self, name: object) -> bool:
        return name in self.addresses

    def __getitem__(self, name: str) -> Address:
        return self.addresses[name]

    @property
    def names(self) -> list[str]:
        """Return the head names, sorted (for messages)."""
        return sorted(self.addresses)

    def running(self, name: str) -> bool:
        """Tell whether the head takes mail now."""
        return bool(self.states[self.addresses[name].index])

    def set_running(self, name: str, running: bool) -> None:
        """Record whether the head takes mail."""
        self.states[self.addresses[name].index] = 1 if running else 0

    def count_fault(self, name: str) -> int:
        """Count one envelope the head's filters failed on; return its count (its own writer)."""
        if self.faults is None:
            return 0
        index = self.addresses[name].index
        self.faults[index] += 1
        return self.faults[index]

    def faults_of(self, name: str) -> int:
        """Return how many envelopes the head's filters failed on, in all its runs."""
        return 0 if self.faults is None else self.faults[self.addresses[name].index]


def give_back(slots: Any, count: int = 1) -> int:
    """Give count queue slots back; return how many were already back (never above the bound).

    The slots are a bounded semaphore: a slot the supervisor reclaimed from a dead head, then
    given back again by a late sender or reader, is refused here instead of raising the
    queue's bound (see Supervisor's reclaim).
    """
    refused = 0
    for _ in range(count):
        try:
            slots.release()
        except ValueError:
            refused += 1
    return refused


def remove_stale_rundirs() -> list[str]:
    """Remove the run directories of this user's applications that died; return their paths.

    A SIGKILLed application cannot remove its own: its directory's name carries its pid, and
    the next application to start removes it once that pid is gone.
    """
    removed = []
    top = tempfile.gettempdir()
    try:
        entries = list(os.scandir(top))
    except OSError:
        return removed
    for entry in entries:
        match = _RUNDIR.fullmatch(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(match.group(1))
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or pid == os.getpid():
                continue
            os.kill(pid, 0)
            continue  # still running (or the pid is someone else's now: leave it)
        except ProcessLookupError:
            pass
        except OSError:  # PermissionError: a live process of another user
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    if removed:
        _log.info('removed %d run director%s of applications that died: %s', len(removed),
                  'y' if len(removed) == 1 else 'ies', ', '.join(removed))
    return removed


def create(names: Iterable[str], queue_size: int, context: Any, *,
           routes: Iterable[str] = (), remote: dict[str, str] | None = None,
           ) -> tuple[Directory, dict[str, socket.socket], str]:
    """Make the run directory and every head's listening inbox socket in it.

    Returns the directory, the listeners by head name and the run directory's path (the
    caller removes it at the end). context is the multiprocessing context of the heads.
    """
    names = list(names)
    remove_stale_rundirs()
    rundir = tempfile.mkdtemp(prefix=f'polycephaly-{os.getpid()}-')  # mode 0700
    listeners: dict[str, socket.socket] = {}
    addresses: dict[str, Address] = {}
    try:
        for index, name in enumerate(names):
            path = os.path.join(rundir, f'{name}.sock')
            if len(path.encode()) > _MAX_PATH:
                raise ConfigurationError(f'head name {name!r} is too long for a socket path '
                                         f'({path!r})')
            listeners[name] = wire.listen(path)
            addresses[name] = Address(name, path, context.BoundedSemaphore(queue_size), index,
                                      queue_size)
    except BaseException:
        for sock in listeners.values():
            sock.close()
        shutil.rmtree(rundir, ignore_errors=True)
        raise
    directory = Directory(addresses, context.RawArray('b', len(names)), frozenset(routes),
                          dict(remote or {}), context.RawArray('q', len(names)))
    return directory, listeners, rundir
