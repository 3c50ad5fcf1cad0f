"""The receiving end of one head: its queue (FIFO or priority), its connections and its waker.

An Inbox is the head's :class:`~polycephaly_ros.loop.Loop`: besides the envelopes it reads
from its listening socket (:mod:`polycephaly_ros.wire`) and the ones heads of its own process
push to it directly, it watches whatever else the head waits for, so one ``poll()`` sleeps on
all of it. Queue slots are counted by the sender (:class:`~polycephaly_ros.bus.Bus` takes one
before it sends); the inbox gives a slot back when an envelope leaves the queue.

Control envelopes (the poison pill, ``polycephaly.*`` subjects) skip the queue: they go to
``on_control`` after each read, and only when they came on the internal route.

Threading contract: poll(), get(), take(), queued(), when_room(), watch() and call_later()
belong to the owning head's thread; wake() may be called from any thread or a signal
handler, push() from any thread of the owning process; close() once, by the owner.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import pickle
import socket
import threading
from collections import deque
from typing import Any, Callable, Iterator

from . import wire
from .directory import give_back
from .envelope import CONTROL_PREFIX, INTERNAL
from .loop import Loop

_RECV = 1 << 18  # bytes read at once from one sender
_HEADER, _COUNTED = wire.HEADER, wire.COUNTED
_log = logging.getLogger('polycephaly_ros.inbox')


class _Large:
    """A large envelope being read: its whole buffer, filled as its bytes come."""

    __slots__ = ('payload', 'view', 'filled', 'flags')

    def __init__(self, length: int, flags: int, start: memoryview) -> None:
        self.payload = bytearray(length)
        self.view = memoryview(self.payload)
        self.filled = len(start)
        self.view[:self.filled] = start
        self.flags = flags

    def __len__(self) -> int:
        return self.filled + 5


class Inbox(Loop):
    """A head's queue of envelopes, fed by its listening socket and by pushes in its process."""

    def __init__(
        self,
        listener: socket.socket,
        slots: Any,
        *,
        priority: bool = False,
        poison_pill: str | None = None,
        on_control: Callable[[dict], None] | None = None,
    ) -> None:
        super().__init__()
        self._slots = slots
        self._priority = priority
        self.poison_pill: Any = poison_pill if poison_pill is not None else object()  # (none)
        self.on_control = on_control
        self._fifo: deque[tuple[int, dict]] = deque()
        self._controls: deque[dict] = deque()
        self._heap: list[tuple[Any, int, int, dict]] = []
        self._seq = itertools.count()
        self._buffers: dict[int, bytes | _Large] = {}  # per connection: what is unfinished
        self._recv_buffer = bytearray(_RECV)
        self._recv_view = memoryview(self._recv_buffer)
        #: (envelope or its pickle, counted) pushed by heads of this process; poll() takes them.
        self._local: deque[tuple[Any, int]] = deque()
        self._owner: int | None = None  # the thread that polls
        self._on_room: list[Callable[[], None]] = []  # see when_room()
        #: Counted envelopes in the queue: each holds one of the head's queue slots.
        self.counted = 0
        self._waker_lock = threading.Lock()
        listener.setblocking(False)
        self.watch(listener, self._accept)
        self._waker = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.watch(self._waker, self._drain_waker)

    def __len__(self) -> int:
        return len(self._heap) if self._priority else len(self._fifo)

    # -- waiting ---------------------------------------------------------------------
    def poll(self, timeout: float | None = 0.0, *, ignore_queued: bool = False) -> bool:
        """Read what has arrived, waiting up to timeout; return whether envelopes are queued.

        Without ignore_queued the wait is skipped when envelopes are already queued.
        """
        queue = self._heap if self._priority else self._fifo
        if timeout is None:
            timeout = -1
        elif timeout < 0 or (queue and not ignore_queued):
            timeout = 0.0
        local = self._local
        if local:
            timeout = 0.0
        self._owner = threading.get_ident()
        self._wait(timeout)
        while local:
            item, counted = local.popleft()
            self._arrive(item if type(item) is dict else pickle.loads(item), counted)
        controls = self._controls
        while controls:  # after reading, so a control callback may poll again
            envelope = controls.popleft()
            if self.on_control is not None:
                self.on_control(envelope)
        return bool(queue)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Call callback() from this inbox's loop, soon; safe from any thread."""
        self.call_later(0.0, callback)  # (one heappush: atomic under the GIL)
        self.wake()

    def wake(self) -> None:
        """Make a pending or the next poll() return at once; does nothing once closed."""
        with self._waker_lock:  # never write to a closed descriptor's number
            if self._waker >= 0:
                os.eventfd_write(self._waker, 1)

    def push(self, envelope: dict | bytes, counted: int = wire.COUNTED) -> None:
        """Queue an envelope (or its pickle) from any thread of this process.

        The caller took its queue slot when counted. The next poll() of the owning head
        takes it in; this wakes that poll unless the owner itself is pushing.
        """
        self._local.append((envelope, counted))
        if threading.get_ident() != self._owner:
            self.wake()

    # -- queue -----------------------------------------------------------------------
    def get(self) -> dict | None:
        """Take the next envelope (FIFO, or lowest priority first), or None."""
        if self._priority:
            if not self._heap:
                return None
            _, _, counted, envelope = heapq.heappop(self._heap)
        else:
            if not self._fifo:
                return None
            counted, envelope = self._fifo.popleft()
        return self._release(counted, envelope)

    def take(self, predicate: Callable[[dict], bool]) -> dict | None:
        """Take the first queued envelope for which predicate holds, or None."""
        if self._priority:
            for i, item in enumerate(self._heap):
                if predicate(item[3]):
                    last = self._heap.pop()
                    if i < len(self._heap):
                        self._heap[i] = last
                        heapq.heapify(self._heap)
                    return self._release(item[2], item[3])
            return None
        for item in self._fifo:
            if predicate(item[1]):
                self._fifo.remove(item)
                return self._release(*item)
        return None

    def queued(self) -> Iterator[dict]:
        """Iterate over the queued envelopes without taking them."""
        if self._priority:
            return (item[3] for item in sorted(self._heap))
        return (item[1] for item in self._fifo)

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call callback once, in the owner's thread, when an envelope next leaves the queue."""
        self._on_room.append(callback)

    def drop(self) -> list[dict]:
        """Take every queued envelope out unhandled, giving back their slots; return them."""
        dropped = []
        while (envelope := self.get()) is not None:
            dropped.append(envelope)
        return dropped

    def _release(self, counted: int, envelope: dict) -> dict:
        if counted:
            self.counted -= 1
            try:
                self._slots.release()
            except ValueError:  # reclaimed from a dead head already (directory.give_back)
                pass
            if self._on_room:
                waiting, self._on_room = self._on_room, []
                for callback in waiting:
                    callback()
        return envelope

    # -- reading ---------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            self._buffers[conn.fileno()] = b''
            self.watch(conn, self._read)
            self._read(conn)  # what the sender wrote before we accepted

    def _drain_waker(self, waker: int) -> None:
        try:
            os.eventfd_read(waker)  # takes every wake-up counted so far
        except (BlockingIOError, InterruptedError):
            pass

    def _read(self, conn: socket.socket) -> None:
        fd = conn.fileno()
        pending = self._buffers[fd]
        if type(pending) is _Large:
            self._read_large(conn, pending)
            return
        try:
            # Into one reused buffer: a fresh 256 KiB bytes per recv() would cost an mmap and
            # an munmap (glibc's threshold) for every small envelope.
            size = conn.recv_into(self._recv_buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        data = self._recv_view[:size].tobytes()
        if not data:
            self._hang_up(conn, len(pending))
            return
        if pending:
            data = pending + data
        size = len(data)
        offset = 0
        view = memoryview(data)
        unpack = _HEADER.unpack_from
        while size - offset >= 5:  # every whole frame (wire's format) in what was read
            length, flags = unpack(data, offset)
            end = offset + 5 + length
            if end > size:
                if length > _RECV:  # a large envelope: read the rest straight into its place
                    self._buffers[fd] = _Large(length, flags, view[offset + 5:])
                    return
                break
            self._arrive(pickle.loads(view[offset + 5:end]), flags & _COUNTED)
            offset = end
        self._buffers[fd] = data[offset:] if offset < size else b''

    def _read_large(self, conn: socket.socket, large: _Large) -> None:
        """Read more of a large envelope into its own buffer: linear, however large it is."""
        try:
            size = conn.recv_into(large.view[large.filled:])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        if not size:
            self._hang_up(conn, large.filled + 5)
            return
        large.filled += size
        if large.filled == len(large.payload):
            self._buffers[conn.fileno()] = b''
            self._arrive(pickle.loads(large.payload), large.flags & _COUNTED)

    def _hang_up(self, conn: socket.socket, unfinished: int) -> None:
        """A sender closed its connection: forget it."""
        if unfinished:
            _log.warning('a sender closed its connection in the middle of an envelope '
                         '(%d bytes discarded; that sender was told the send failed)',
                         unfinished)
        self.unwatch(conn)
        del self._buffers[conn.fileno()]
        conn.close()

    def _arrive(self, envelope: dict, counted: int) -> None:
        subject = envelope.get('subject')
        if subject == self.poison_pill or (
            isinstance(subject, str) and subject.startswith(CONTROL_PREFIX)
        ):
            if counted:
                give_back(self._slots)
            if envelope.get('route', INTERNAL) != INTERNAL:
                _log.warning('refused control subject %r that arrived on route %r from %r',
                             subject, envelope.get('route'), envelope.get('sender'))
            else:
                self._controls.append(envelope)
            return
        if counted:
            self.counted += 1
        if self._priority:
            heapq.heappush(self._heap,
                           (envelope.get('priority', 0), next(self._seq), counted, envelope))
        else:
            self._fifo.append((counted, envelope))

    def close(self) -> None:
        """Close connections, waker and loop (the listener is closed by its owner); idempotent."""
        with self._waker_lock:
            if self._waker < 0:
                return
            os.close(self._waker)
            self._waker = -1
        for fileobj, callback in list(self._watched.values()):
            if callback == self._read:
                fileobj.close()
        super().close()
