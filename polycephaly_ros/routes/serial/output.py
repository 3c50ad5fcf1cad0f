"""The bytes on their way to one serial device: written at once when it takes them, else kept.

An :class:`Output` writes a frame straight to the device's non-blocking descriptor when
nothing waits before it, and keeps what the device does not take (a slow baud rate, a peer
holding its RTS/CTS or XON/XOFF flow control, a peer that does not read) for the transport's
loop to write once the descriptor is writable. What waits is bounded by ``max_pending``
bytes: a frame beyond it raises QueueFull (the sending head gets a bounce), never blocks its
sender. Frames are taken whole or not at all, so the line never carries half of one.

A write that fails (the device went away) notes why in :attr:`Output.broken` for the loop,
which closes the device; until the device is attached again every write raises
RecipientUnavailable at once.

Threading: :meth:`write` from any thread; :meth:`attach`, :meth:`detach` and :meth:`flush`
from the transport's loop thread. One lock guards the descriptor and the waiting bytes, so a
write never reaches a descriptor number the loop has closed meanwhile.
"""

from __future__ import annotations

import collections
import os
import threading

from ...errors import QueueFull, RecipientUnavailable


class Output:
    """What waits to be written to one device, bounded by max_pending bytes."""

    def __init__(self, path: str, max_pending: int, stats: collections.Counter[str]) -> None:
        self.path = path
        self.max_pending = max_pending
        self.stats = stats
        #: Why a write failed (set by any thread; the loop closes the device and clears it).
        self.broken: str | None = None
        self._lock = threading.Lock()
        self._fd = -1
        self._out = bytearray()

    @property
    def pending(self) -> int:
        """Return the bytes waiting to be written."""
        return len(self._out)

    def attach(self, fd: int) -> None:
        """Start writing to an open device."""
        with self._lock:
            self._fd, self.broken = fd, None

    def detach(self) -> bytes:
        """Stop writing to the device (before it is closed); return what was left unwritten."""
        with self._lock:
            left = bytes(self._out)
            self._fd, self.broken = -1, None
            self._out.clear()
        return left

    def write(self, data: bytes, counter: str) -> bool:
        """Write data, or keep what the device does not take; tell whether bytes now wait.

        Counts it under counter; raises RecipientUnavailable while no device is attached (or
        when writing fails) and QueueFull when max_pending bytes would wait.
        """
        with self._lock:
            fd, out = self._fd, self._out
            if fd < 0:
                raise RecipientUnavailable(f'serial device {self.path} is not open '
                                           '(unplugged?); reopening')
            if out:
                if len(out) + len(data) > self.max_pending:
                    raise QueueFull(f'{len(out)} bytes already wait to be written to {self.path} '
                                    f'(max_pending {self.max_pending}): the device does not '
                                    'read, or holds its flow control')
                out += data
                self.stats[counter] += 1
                return True
            self.stats[counter] += 1  # (before: the peer may answer before this thread runs on)
            try:
                written = os.write(fd, data)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self.stats[counter] -= 1
                self.broken = f'writing failed: {exc}'
                raise RecipientUnavailable(f'serial device {self.path}: {exc}') from None
            if written < len(data):
                out += memoryview(data)[written:]
            return bool(out)

    def flush(self) -> bool:
        """Write what waits, as far as the device takes it; tell whether bytes still wait."""
        with self._lock:
            fd, out = self._fd, self._out
            if fd < 0 or not out:
                return False
            try:
                del out[:os.write(fd, out)]
            except BlockingIOError:
                pass
            except OSError as exc:
                self.broken = f'writing failed: {exc}'
            return bool(out)
