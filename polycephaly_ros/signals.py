"""Process signals as events of the main head's loop: a handler that does nothing, a wake-up fd.

A Python signal handler runs in the main thread between any two bytecodes, possibly in the
middle of a lock or of the supervisor starting a head, so it must not do real work. Here the
handler does nothing at all: ``signal.set_wakeup_fd()`` makes the interpreter write the
signal's number to a socket that the main head's loop watches, and the loop's thread then
calls ``on_signal(signum)`` like any other event, between envelopes.

Threading contract: entered and left in the main thread (elsewhere it relays nothing, since
only the main thread may set signal handlers); on_signal runs in the loop's thread.
"""

from __future__ import annotations

import signal
import socket
import threading
from types import TracebackType
from typing import Any, Callable

#: The signals an application stops on.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(_signum: int, _frame: Any) -> None:
    """Do nothing: the wake-up fd carries the signal to the loop."""


class SignalRelay:
    """Call on_signal(signum) from a loop's thread for each SIGINT/SIGTERM (a context manager)."""

    def __init__(self, loop: Any, on_signal: Callable[[int], None],
                 signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self._loop = loop
        self._on_signal = on_signal
        self._signals = signals
        self._previous: dict[int, Any] = {}
        self._previous_fd: int | None = None
        self._sockets: tuple[socket.socket, socket.socket] | None = None

    @property
    def active(self) -> bool:
        """Tell whether signals are relayed (only in the main thread)."""
        return self._sockets is not None

    def __enter__(self) -> SignalRelay:
        if threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._loop.watch(reader, self._relay)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, _ignore) for s in self._signals}
        return self

    def _relay(self, reader: socket.socket) -> None:
        try:
            data = reader.recv(256)
        except BlockingIOError:
            return
        for signum in data:
            if signum in self._signals:
                self._on_signal(signum)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._sockets is None:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd if self._previous_fd is not None else -1)
        reader, writer = self._sockets
        if not self._loop.closed:
            self._loop.unwatch(reader)
        reader.close()
        writer.close()
        self._sockets = None
