"""A POSIX message queue peer: a ten-line script (as a user would write one) and a class for tests.

As a script: ``python mq_peer.py MY_QUEUE ROUTE_QUEUE JSON...`` creates its own queue (0600),
sends each JSON text to the route's queue, prints one reply per line, and removes its queue.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import posix_ipc

_NAMES = itertools.count(1)


class MqPeer:
    """A queue of our own (the route's peer_queue) and the route's queue to send to."""

    def __init__(self, mine: str, route_queue: str, max_messages: int = 10,
                 max_message_size: int = 8192) -> None:
        self.mine = posix_ipc.MessageQueue(mine, posix_ipc.O_CREX, mode=0o600,
                                           max_messages=max_messages,
                                           max_message_size=max_message_size)
        self.route_queue = route_queue
        self._to: posix_ipc.MessageQueue | None = None
        self.name = f'peer{next(_NAMES)}'  # the sender of its envelopes unless one is given

    @property
    def to(self) -> posix_ipc.MessageQueue:
        """Return the route's queue, opened on first use."""
        if self._to is None:
            self._to = posix_ipc.MessageQueue(self.route_queue, read=False, write=True)
        return self._to

    def send_raw(self, data: bytes, timeout: float = 10.0) -> None:
        """Send one message as it is."""
        self.to.send(data, timeout=timeout)

    def send(self, **headers: Any) -> None:
        """Send one envelope made of the given headers (sender: its own name unless given)."""
        self.send_raw(orjson.dumps({'sender': self.name, **headers}))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """Return the next envelope on our queue (posix_ipc.BusyError after timeout)."""
        return orjson.loads(self.mine.receive(timeout=timeout)[0])

    def close(self) -> None:
        """Remove our queue and close both."""
        self.mine.unlink()
        self.mine.close()
        if self._to is not None:
            self._to.close()


if __name__ == '__main__':  # the ten lines
    import sys
    mine = posix_ipc.MessageQueue(sys.argv[1], posix_ipc.O_CREX, mode=0o600)
    route = posix_ipc.MessageQueue(sys.argv[2], read=False, write=True)
    for text in sys.argv[3:]:
        route.send(text.encode(), timeout=10)
    for _ in sys.argv[3:]:
        print(mine.receive(timeout=10)[0].decode(), flush=True)
    mine.unlink()
