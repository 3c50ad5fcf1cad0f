"""Process signals as events of the main head's loop: a handler that only notes, a wake-up fd.

A Python signal handler runs in the main thread between any two bytecodes, possibly in the
middle of a lock, an import or the supervisor starting a head, so it must not do real work.
Here the handler only notes the signal; ``signal.set_wakeup_fd()`` makes the interpreter
write to a socket that the main head's loop watches, and the loop's thread then calls
``on_signal(signum)`` for each signal noted, like any other event, between envelopes.

The relay is entered as soon as ``run()`` starts, before there is a loop (from then on a
SIGINT no longer raises KeyboardInterrupt in the middle of the set-up); signals that arrive
before :meth:`SignalRelay.attach` are passed on by it.

Threading contract: entered, attached and left in the main thread (elsewhere it relays
nothing, since only the main thread may set signal handlers); on_signal runs in the loop's
thread.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections import deque
from types import TracebackType
from typing import Any, Callable

#: The signals an application stops on.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalRelay:
    """Call on_signal(signum) from a loop's thread for each SIGINT/SIGTERM (a context manager)."""

    def __init__(self, on_signal: Callable[[int], None],
                 signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self._on_signal = on_signal
        self._signals = signals
        self._noted: deque[int] = deque()
        self._previous: dict[int, Any] = {}
        self._previous_fd: int | None = None
        self._loop: Any = None
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._active = False

    def __enter__(self) -> SignalRelay:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._note) for s in self._signals}
            self._active = True
        return self

    def _note(self, signum: int, _frame: Any) -> None:
        self._noted.append(signum)  # (nothing else: it may interrupt anything)

    def attach(self, loop: Any) -> None:
        """Relay through loop from now on, starting with the signals noted so far."""
        if not self._active:
            return
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._sockets, self._loop = (reader, writer), loop
        loop.watch(reader, self._relay)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._pass_on()

    def _relay(self, reader: socket.socket) -> None:
        try:
            while reader.recv(256):
                pass
        except BlockingIOError:
            pass
        self._pass_on()

    def _pass_on(self) -> None:
        while self._noted:
            self._on_signal(self._noted.popleft())

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._active:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._active = False
        if self._sockets is None:
            return
        signal.set_wakeup_fd(self._previous_fd if self._previous_fd is not None else -1)
        reader, writer = self._sockets
        if not self._loop.closed:
            self._loop.unwatch(reader)
        reader.close()
        writer.close()
        self._sockets = None
