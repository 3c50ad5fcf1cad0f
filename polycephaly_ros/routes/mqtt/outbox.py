"""The MQTT route's outbox: what was published and not yet acknowledged by the broker.

Every outbound envelope takes a place in the outbox before it is handed to paho and leaves it
when the broker acknowledges it (QoS 1's PUBACK; at once for QoS 0). paho itself keeps every
unacknowledged message, sends what was published while the broker was unreachable once it
connects, and sends again what was in flight when the link broke, in order; the outbox
bounds how much that may be (``capacity``: a send beyond it raises
:class:`~polycephaly_ros.errors.QueueFull`, never a silent drop) and, given a ``path``, keeps
every record in an SQLite file too, so that a restart of the application loses nothing:
:meth:`Outbox.pending` hands back what the last run left unacknowledged, oldest first, to be
published again (the receiver drops the duplicates by message id).

Threading: every method may be called from any thread; one lock guards the count and the
file, and none is held while paho is called.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import NamedTuple

from ...errors import QueueFull


class Record(NamedTuple):
    """One outbound MQTT message as the outbox keeps it."""

    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation: bytes | None = None


class Outbox:
    """At most capacity unacknowledged records, in memory or, with path, in an SQLite file."""

    def __init__(self, capacity: int = 10_000, path: str | os.PathLike[str] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f'an outbox holds at least 1 record, not {capacity}')
        self.capacity = capacity
        self.path = os.fspath(path) if path is not None else None
        self._lock = threading.Lock()
        self._emptied = threading.Condition(self._lock)
        self._count = 0
        self._next = 0  # keys of records kept in memory only
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:  # (made private, and checked to be ours, before SQLite opens it)
                owner = os.fstat(fd).st_uid
            finally:
                os.close(fd)
            if owner != os.getuid():
                raise PermissionError(f'outbox file {self.path} belongs to uid {owner}, not to '
                                      f'this user ({os.getuid()})')
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute('PRAGMA journal_mode=WAL')
            self._db.execute('PRAGMA synchronous=NORMAL')
            self._db.execute('CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY '
                             'AUTOINCREMENT, topic TEXT, payload BLOB, retain INTEGER, '
                             'response_topic TEXT, correlation BLOB)')
            self._count = self._db.execute('SELECT COUNT(*) FROM outbox').fetchone()[0]

    def __len__(self) -> int:
        """Return how many records wait for the broker's acknowledgement."""
        return self._count

    def add(self, record: Record) -> int:
        """Keep record and return its key; raise QueueFull when the outbox is full."""
        with self._lock:
            if self._count >= self.capacity:
                raise QueueFull(f'the MQTT outbox is full: {self._count} envelopes wait for the '
                                f'broker (capacity {self.capacity})')
            self._count += 1
            if self._db is None:
                self._next += 1
                return self._next
            return self._db.execute(
                'INSERT INTO outbox (topic, payload, retain, response_topic, correlation) '
                'VALUES (?, ?, ?, ?, ?)', tuple(record)).lastrowid

    def done(self, key: int) -> None:
        """Forget the record under key: the broker has it."""
        with self._lock:
            self._count -= 1
            if self._db is not None:
                self._db.execute('DELETE FROM outbox WHERE seq = ?', (key,))
            if not self._count:
                self._emptied.notify_all()

    def wait_empty(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged every record; tell whether it did in time."""
        with self._lock:
            return self._emptied.wait_for(lambda: not self._count, timeout)

    def pending(self) -> list[tuple[int, Record]]:
        """Return the records kept on disk, oldest first (none in memory: paho has those)."""
        if self._db is None:
            return []
        with self._lock:
            rows = self._db.execute('SELECT seq, topic, payload, retain, response_topic, '
                                    'correlation FROM outbox ORDER BY seq').fetchall()
        return [(seq, Record(topic, bytes(payload), bool(retain), response, correlation))
                for seq, topic, payload, retain, response, correlation in rows]

    def close(self) -> None:
        """Close the file (what it holds stays for the next run)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
