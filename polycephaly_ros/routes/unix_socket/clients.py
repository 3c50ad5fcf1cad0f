"""The server's clients: who is connected, the names they answer to, and what waits for them.

A client is known by the ``sender`` of its frames: the first live connection to send as a name
holds it until it closes, and replies to that name go to it. What is written to a client goes
out at once from the calling thread when nothing waits before it; the rest waits in the
connection's ``out`` buffer (at most ``Limits.max_pending`` bytes) for the server's loop.

Threading contract: add(), remove(), claim() and account() run in the server loop's thread;
send(), send_to_name(), queue(), write(), take_dirty() and ids() may run in any thread (one
lock, never held while calling out).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

from ...errors import QueueFull, RecipientUnavailable, UnknownRecipient
from ..framing import encode_frame
from .connection import Connection, Limits


class Clients:
    """The connected clients of one server and the bytes waiting for them."""

    def __init__(self, path: str, limits: Limits, wake: Callable[[], None]) -> None:
        self.path = path
        self.limits = limits
        self._wake = wake  # makes the loop write what waits (take_dirty)
        self._lock = threading.Lock()
        self._conns: dict[int, Connection] = {}
        self._names: dict[str, int] = {}
        self._dirty: set[Connection] = set()
        #: Bytes of unfinished and held frames, all clients together (loop thread only).
        self.buffered = 0

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._conns.values()))

    def ids(self) -> list[int]:
        """Return the ids of the connected clients."""
        with self._lock:
            return list(self._conns)

    def add(self, conn: Connection) -> None:
        """Take in a new client."""
        with self._lock:
            self._conns[conn.id] = conn

    def remove(self, conn: Connection) -> bool:
        """Forget a client and its names; tell whether it was still there."""
        with self._lock:
            if conn.closed:
                return False
            conn.closed = True
            del self._conns[conn.id]
            self._dirty.discard(conn)
            for name in conn.names:
                if self._names.get(name) == conn.id:
                    del self._names[name]
        self.buffered -= conn.counted
        conn.counted = 0
        return True

    def claim(self, conn: Connection, name: str) -> bool:
        """Let conn answer to name unless another live connection does; tell whether it may."""
        holder = self._names.get(name)  # (a dict read needs no lock)
        if holder == conn.id:
            return True
        with self._lock:
            if self._names.get(name) in self._conns:
                return False
            self._names[name] = conn.id
            conn.names.add(name)
        return True

    def account(self, conn: Connection) -> bool:
        """Count conn's unfinished and held frames; tell whether all clients hold too much."""
        now = conn.buffered()
        self.buffered += now - conn.counted
        conn.counted = now
        return self.buffered > self.limits.max_buffered and now > 0

    # -- writing, any thread ------------------------------------------------------------------
    def send(self, client_id: int, envelope: dict[str, Any]) -> None:
        """Write an envelope to one client now, or queue it for the loop; raise if it cannot."""
        data = encode_frame(envelope)
        with self._lock:
            conn = self._conns.get(client_id)
            if conn is None:
                raise RecipientUnavailable(f'client {client_id} of {self.path} is not connected')
            if len(conn.out) + len(data) > self.limits.max_pending:
                raise QueueFull(f'client {client_id} of {self.path} is not reading its replies')
            conn.paid(envelope.get('threadid'))
            sent = 0
            if not conn.out:  # nothing queued before it: write now, from this thread
                try:
                    sent = conn.sock.send(data)
                except BlockingIOError:
                    pass
                except OSError as exc:  # the loop closes the connection when it sees it
                    raise RecipientUnavailable(
                        f'client {client_id} of {self.path} went away: {exc}') from None
                if sent == len(data) and not conn.half_closed:
                    return
            conn.out += memoryview(data)[sent:]
            self._dirty.add(conn)
        self._wake()  # the loop writes the rest once the socket takes it

    def send_to_name(self, name: str, envelope: dict[str, Any]) -> None:
        """Write an envelope to the client that sends as name."""
        client_id = self._names.get(name.lower())  # (a dict read needs no lock)
        if client_id is None:
            raise UnknownRecipient(f'no client of {self.path} has sent as {name!r}')
        self.send(client_id, envelope)

    def queue(self, conn: Connection, frame: bytes) -> bool:
        """Queue a frame (an error frame) to conn for the loop; False if too much waits."""
        with self._lock:
            if len(conn.out) + len(frame) > self.limits.max_pending:
                return False
            conn.out += frame
            self._dirty.add(conn)
        return True

    def write(self, conn: Connection) -> tuple[bool, bool]:
        """Write what waits for conn; return (the connection failed, something still waits)."""
        with self._lock:
            if conn.closed:
                return False, False
            try:
                sent = conn.sock.send(conn.out) if conn.out else 0
            except BlockingIOError:
                sent = 0
            except OSError:
                return True, bool(conn.out)
            if sent > 0:
                del conn.out[:sent]
            return False, bool(conn.out)

    def take_dirty(self) -> set[Connection]:
        """Return the clients something was queued for since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return dirty
