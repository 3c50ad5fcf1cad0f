"""One client of the Unix-socket server, and the limits every client is held to.

A :class:`Connection` holds what the server keeps for one client: its unfinished frame, the
frames waiting for a full recipient, the bytes waiting to be written to it, the names it
sends as, who it is (``SO_PEERCRED``: pid, uid, gid, as the kernel says, not as it claims),
and the replies it is still owed, so that a client that shut down its write side after its
last request (``echo … | socat - UNIX-CONNECT:…``, ``nc -U``) still gets them.

:class:`Limits` bounds what clients can make the server hold (see each field); over a limit a
client gets an error frame and its connection is closed.

Threading contract: a Connection's fields are changed by the server's loop thread; ``out``,
``names`` and ``closed`` under the server's lock, since ``send()`` runs in any thread.
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from dataclasses import dataclass

from ...errors import ConfigurationError
from ..framing import LineSplitter

_PEERCRED = struct.Struct('3i')  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Limits:
    """What one server lets its clients make it hold, and who may connect."""

    #: Clients connected at once; one more is answered with an error frame and closed.
    max_connections: int = 256
    #: Bytes of unfinished frames and of frames waiting for a full recipient, all clients
    #: together; the client whose read goes over it gets an error frame and is closed.
    max_buffered: int = 64 << 20
    #: Bytes that may wait to be written to one client; sends beyond it raise QueueFull.
    max_pending: int = 16 << 20
    #: Seconds a client that shut down its write side keeps getting the replies it is owed.
    linger: float = 2.0
    #: The uids that may connect (None: whoever the socket file's mode lets in).
    allowed_uids: frozenset[int] | None = None

    def __post_init__(self) -> None:
        for name in ('max_connections', 'max_buffered', 'max_pending'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f'{name} must be a whole number >= 1, not {value!r}')
        if not self.linger >= 0:
            raise ConfigurationError(f'linger must be >= 0 s, not {self.linger!r}')


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection, as the kernel says."""

    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, sock: socket.socket) -> Peer:
        """Return the peer of a connected Unix socket."""
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        return cls(*_PEERCRED.unpack(data))


class Connection:
    """What the server keeps for one client."""

    def __init__(self, client_id: int, sock: socket.socket, max_frame: int, peer: Peer) -> None:
        self.id = client_id
        self.sock = sock
        self.peer = peer
        self.lines = LineSplitter(max_frame)
        self.out = bytearray()
        self.names: set[str] = set()
        self.writing = False
        self.closed = False
        #: The client shut down its write side: nothing more to read, replies still go out.
        self.half_closed = False
        #: Frames read but not taken yet (None: an over-long one), oldest first; while any
        #: wait, the connection is not read.
        self.held: deque[bytes | None] = deque()
        self.held_since = 0.0  # when the oldest held frame was first refused
        #: Replies still owed: thread id -> frames delivered on it and not answered yet.
        self.owed: dict[str, int] = {}
        self.counted = 0  # this client's bytes in the server's max_buffered count

    def buffered(self) -> int:
        """Return the bytes of its unfinished and held frames."""
        return len(self.lines.buf) + sum(len(line) for line in self.held if line)

    def owe(self, thread: str) -> None:
        """Note a delivered frame whose reply is owed to this client."""
        self.owed[thread] = self.owed.get(thread, 0) + 1

    def paid(self, thread: object) -> None:
        """Note that something on thread was sent to this client."""
        count = self.owed.get(thread)  # type: ignore[call-overload]
        if count is not None:
            if count > 1:
                self.owed[thread] = count - 1  # type: ignore[index]
            else:
                del self.owed[thread]  # type: ignore[arg-type]
