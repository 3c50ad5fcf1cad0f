"""The event loop of one thread: call back for ready descriptors and due timers (epoll).

Every head's inbox is a Loop (:class:`~polycephaly_ros.inbox.Inbox` derives from it), so
whatever a head watches (its inbox sockets, rcl's wake-ups for its ROS subscriptions, a route's
sockets) runs in the head's own thread between envelopes. A transport that runs a thread of
its own (``UnixSocketServer(transport_thread=True)``) runs a Loop of its own there.

Threading contract: one thread owns a Loop and makes every call.
"""

from __future__ import annotations

import heapq
import itertools
import select
import time
from typing import Any, Callable


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else fileobj.fileno()


class Loop:
    """A small epoll loop: callbacks for readable (or writable) descriptors and timers."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._watched: dict[int, tuple[Any, Callable[[Any], None]]] = {}
        self._later: list[tuple[float, int, Callable[[], None]]] = []  # see call_later()
        self._tickets = itertools.count()

    def watch(self, fileobj: Any, callback: Callable[[Any], None]) -> None:
        """Call callback(fileobj) whenever fileobj (an fd or a socket) is readable."""
        fd = _fd(fileobj)
        self._epoll.register(fd, select.EPOLLIN)
        self._watched[fd] = (fileobj, callback)

    def set_interest(self, fileobj: Any, readable: bool = True, writable: bool = False) -> None:
        """Call fileobj's callback when it is readable and/or writable, as given."""
        self._epoll.modify(_fd(fileobj), (select.EPOLLIN if readable else 0)
                           | (select.EPOLLOUT if writable else 0))

    def unwatch(self, fileobj: Any) -> None:
        """Stop watching fileobj."""
        fd = _fd(fileobj)
        self._epoll.unregister(fd)
        del self._watched[fd]

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call callback() once, from the first wait that ends delay seconds from now or later."""
        heapq.heappush(self._later, (time.monotonic() + delay, next(self._tickets), callback))

    def run_once(self, timeout: float | None = None) -> None:
        """Wait up to timeout seconds (None: for ever) and call back for what is ready."""
        self._wait(-1 if timeout is None else timeout)

    def _wait(self, timeout: float) -> None:
        """Wait up to timeout seconds (< 0: until something happens), then call back."""
        later = self._later
        if later:
            due = max(later[0][0] - time.monotonic(), 0.0)
            if timeout < 0 or due < timeout:
                timeout = due
        watched = self._watched
        for fd, _ in self._epoll.poll(timeout):
            entry = watched.get(fd)
            if entry is not None:  # a callback may have unwatched it meanwhile
                entry[1](entry[0])
        while later and later[0][0] <= time.monotonic():
            heapq.heappop(later)[2]()

    @property
    def closed(self) -> bool:
        """Tell whether the loop was closed."""
        return self._epoll.closed

    def close(self) -> None:
        """Close the loop (not the watched descriptors); closing twice is harmless."""
        self._watched.clear()
        self._later.clear()
        self._epoll.close()
