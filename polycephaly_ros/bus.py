"""Carry envelopes between the heads of one application over Unix stream sockets.

Every head owns an *inbox*: a listening Unix socket in the application's private run
directory (mode 0700) plus a counting semaphore of ``queue_size`` slots shared by all
processes. A sender takes a slot (waiting at most its send timeout, then
:class:`QueueFull`), pickles the envelope and writes one frame to a connection it keeps to
that inbox; the inbox's owner gives the slot back when it takes the envelope out of its
queue. Heads therefore send to each other directly, in any number of processes, and
nothing is dropped silently: a send either returns or raises. To a head of the sender's own
process the pickle is queued directly (:meth:`Inbox.push`), with no socket in between; the
recipient still gets a copy, so a head behaves the same as a thread or as a process.

A frame is a 5-byte header (``!IB``: payload length, flags) and a pickle. Pickle is
only ever read from these sockets, which only the application's own user can reach;
external routes speak JSON.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import pickle
import select
import selectors
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .envelope import CONTROL_PREFIX, INTERNAL
from .errors import NotSerializable, QueueFull, RecipientUnavailable, UnknownRecipient

_HEADER = struct.Struct('!IB')
_COUNTED = 1
_RECV = 1 << 18  # bytes read at once from one sender
_log = logging.getLogger('polycephaly_ros.bus')


@dataclass
class Address:
    """Where a head's inbox is and how many envelopes it may hold."""

    name: str
    path: str
    slots: Any  # multiprocessing.Semaphore, shared with every process of the application
    index: int
    queue_size: int


class Directory:
    """The inboxes of one application, and which heads are running (shared memory)."""

    def __init__(self, addresses: dict[str, Address], states: Any,
                 remote: dict[str, str] | None = None) -> None:
        self.addresses = addresses
        self.states = states  # multiprocessing RawArray('b'): 1 while a head runs
        #: Outside names reached through a route head without a ``via`` header: name -> head.
        self.remote = dict(remote or {})

    def __contains__(self, name: str) -> bool:
        return name in self.addresses

    def __getitem__(self, name: str) -> Address:
        return self.addresses[name]

    def set_running(self, name: str, running: bool) -> None:
        """Record whether the head takes mail."""
        self.states[self.addresses[name].index] = 1 if running else 0


class _Link:
    """A connection from this process to one inbox, shared by this process's threads."""

    __slots__ = ('lock', 'sock')

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None


class Bus:
    """Send envelopes from this process to any head's inbox; safe to use from any thread."""

    def __init__(self, directory: Directory, send_timeout: float = 2.0) -> None:
        self.directory = directory
        self.send_timeout = send_timeout
        #: Called with an envelope whose recipient is no head of this application and that
        #: names no route head in its ``via`` header (the ROS bridge sets it); without it,
        #: such a send fails with UnknownRecipient.
        self.external: Callable[[dict], None] | None = None
        #: The inboxes of the heads that run in this process, by name (each head adds its own):
        #: envelopes to them are queued directly, with no socket in between.
        self.local: dict[str, Inbox] = {}
        #: Route heads of this process that send out from the calling thread, by name: an
        #: envelope to an outside name behind one is handed to it (``send_out(envelope)``
        #: returns whether it took it) instead of going through its inbox. See route.py.
        self.outbound: dict[str, Callable[[dict], bool]] = {}
        self._links: dict[str, _Link] = {}
        self._links_lock = threading.Lock()

    def post(self, envelope: dict, *, control: bool = False, timeout: float | None = None,
             handover: bool = False) -> None:
        """Deliver envelope to its recipient's inbox, or raise saying why it cannot.

        The recipient gets a copy (pickled, as across processes, so a head behaves the same
        as a thread or a process). handover=True says that nothing else references envelope
        (one just decoded by a route or the ROS bridge): a head of this process then gets the
        object itself, with no copy.
        """
        name = envelope['recipient']
        directory = self.directory
        address = directory.addresses.get(name)
        outside = address is None
        if outside and not control:
            via = envelope.get('via')
            if via not in directory.addresses:
                via = directory.remote.get(name)
            if via in directory.addresses:  # an outside name reached through a route head
                address = directory.addresses[via]
            elif self.external is not None:
                self.external(envelope)
                return
        if address is None:
            known = ', '.join(sorted(directory.addresses))
            raise UnknownRecipient(f'no head named {name!r} in this application (heads: {known})')
        name = address.name
        if not control and not directory.states[address.index]:
            raise RecipientUnavailable(f'head {name!r} is not running, so it cannot take mail')
        if outside:
            send_out = self.outbound.get(name)
            if send_out is not None and send_out(envelope):
                return
        inbox = self.local.get(name)
        if handover and inbox is not None:
            payload: Any = envelope
        else:
            try:
                payload = pickle.dumps(envelope, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise NotSerializable(
                    f'envelope to {name!r} (subject {envelope.get("subject")!r}) cannot cross a '
                    f'process boundary: {type(exc).__name__}: {exc}'
                ) from exc
        wait = self.send_timeout if timeout is None else timeout
        if not control and not (address.slots.acquire(False) or address.slots.acquire(True, wait)):
            held = f'stayed full for {wait:g} s' if wait > 0 else 'is full'
            raise QueueFull(
                f'queue of head {name!r} {held} ({address.queue_size} envelopes); envelope '
                f'{envelope.get("subject")!r} not sent'
            )
        if inbox is not None:
            inbox.push(payload, 0 if control else _COUNTED)
            return
        try:
            self._write(address, _HEADER.pack(len(payload), 0 if control else _COUNTED) + payload,
                        max(wait, 1.0))
        except BaseException:
            if not control:
                address.slots.release()
            raise

    def _write(self, address: Address, frame: bytes, timeout: float) -> None:
        link = self._links.get(address.name)
        if link is None:
            with self._links_lock:
                link = self._links.setdefault(address.name, _Link())
        with link.lock:
            for attempt in (1, 2):
                sock = link.sock
                if sock is None:
                    sock = link.sock = _connect(address)
                try:
                    try:
                        sent = sock.send(frame)
                    except BlockingIOError:
                        sent = 0
                    if sent < len(frame):
                        send_within(sock, memoryview(frame)[sent:], timeout)
                    return
                except (BrokenPipeError, ConnectionResetError) as exc:
                    # The head that had accepted this connection ended; its inbox lives on.
                    sock.close()
                    link.sock = None
                    if attempt == 2:
                        raise RecipientUnavailable(
                            f'the inbox of head {address.name!r} closed the connection'
                        ) from exc
                except OSError as exc:  # includes the write timeout
                    sock.close()
                    link.sock = None
                    raise QueueFull(
                        f'head {address.name!r} did not read its inbox for {timeout:g} s; '
                        'envelope not delivered'
                    ) from exc

    def close(self) -> None:
        """Close this process's connections."""
        with self._links_lock:
            for link in self._links.values():
                with link.lock:
                    if link.sock is not None:
                        link.sock.close()
                        link.sock = None


def _connect(address: Address) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address.path)
    except OSError as exc:
        sock.close()
        raise RecipientUnavailable(f'cannot reach the inbox of head {address.name!r}: {exc}') from exc
    sock.setblocking(False)
    return sock


def send_within(sock: socket.socket, data: bytes | memoryview, timeout: float) -> None:
    """Write all of data to a stream socket (blocking or not) within timeout seconds.

    Raises TimeoutError when the reader did not take it all in time; the peer may then have
    received part of it, so the caller must drop the connection.
    """
    rest = memoryview(data)
    try:
        rest = rest[sock.send(rest, socket.MSG_DONTWAIT):]
    except BlockingIOError:
        pass
    if not rest:
        return
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_WRITE)
        while rest:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise TimeoutError('the reader did not take the frame in time')
            try:
                rest = rest[sock.send(rest, socket.MSG_DONTWAIT):]
            except BlockingIOError:
                pass


def listen(path: str) -> socket.socket:
    """Create a head's listening inbox socket at path, readable by this user only."""
    if os.path.lexists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(socket.SOMAXCONN)
    return sock


class Poller:
    """Call back for ready descriptors and due timers: a small epoll loop (an Inbox is one).

    Threading contract: one thread owns it and makes every call.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._watched: dict[int, tuple[Any, Callable[[Any], None]]] = {}
        self._later: list[tuple[float, int, Callable[[], None]]] = []  # see call_later()
        self._tickets = itertools.count()

    def watch(self, fileobj: Any, callback: Callable[[Any], None]) -> None:
        """Call callback(fileobj) whenever fileobj (an fd or a socket) is readable."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        self._watched[fd] = (fileobj, callback)

    def set_writable(self, fileobj: Any, writable: bool) -> None:
        """Also call fileobj's callback whenever it is writable (or no longer, when False)."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        self._epoll.modify(fd, select.EPOLLIN | (select.EPOLLOUT if writable else 0))

    def unwatch(self, fileobj: Any) -> None:
        """Stop watching fileobj."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
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

    def close(self) -> None:
        """Close the poller (not the watched descriptors)."""
        self._epoll.close()


class Inbox(Poller):
    """The receiving end of one head: its connections, its queue (FIFO or priority) and its waker.

    Threading contract: poll(), get(), take(), watch(), when_room() and call_later() belong
    to the owning head's thread; wake() may be called from any thread or a signal handler,
    push() from any thread of the owning process.
    """

    def __init__(
        self,
        listener: socket.socket,
        slots: Any,
        *,
        priority: bool = False,
        poison_pill: str | None = None,
        on_control: Callable[[dict], None] | None = None,
    ) -> None:
        self._slots = slots
        self._priority = priority
        self.poison_pill = poison_pill
        self.on_control = on_control
        self._fifo: deque[tuple[int, dict]] = deque()
        self._controls: deque[dict] = deque()
        self._heap: list[tuple[Any, int, int, dict]] = []
        self._seq = itertools.count()
        self._buffers: dict[int, bytes] = {}
        self._recv_buffer = bytearray(_RECV)
        self._recv_view = memoryview(self._recv_buffer)
        #: (envelope or its pickle, counted) pushed by heads of this process; poll() takes them.
        self._local: deque[tuple[Any, int]] = deque()
        self._owner: int | None = None  # the thread that polls
        self._on_room: list[Callable[[], None]] = []  # see when_room()
        super().__init__()
        listener.setblocking(False)
        self._listener = listener
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

    def wake(self) -> None:
        """Make a pending or the next poll() return at once."""
        try:
            os.eventfd_write(self._waker, 1)
        except OSError:  # closed: the head is gone
            pass

    def push(self, envelope: dict | bytes, counted: int = _COUNTED) -> None:
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

    def _release(self, counted: int, envelope: dict) -> dict:
        if counted:
            self._slots.release()
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
            if self._buffers[fd]:
                _log.warning('a sender closed its connection in the middle of an envelope '
                             '(%d bytes discarded; that sender was told the send failed)',
                             len(self._buffers[fd]))
            self.unwatch(conn)
            del self._buffers[fd]
            conn.close()
            return
        pending = self._buffers[fd]
        if pending:
            data = pending + data
        size = len(data)
        offset = 0
        view = memoryview(data)
        while size - offset >= 5:
            length, flags = _HEADER.unpack_from(data, offset)
            end = offset + 5 + length
            if end > size:
                break
            self._arrive(pickle.loads(view[offset + 5:end]), flags & _COUNTED)
            offset = end
        self._buffers[fd] = data[offset:] if offset < size else b''

    def _arrive(self, envelope: dict, counted: int) -> None:
        subject = envelope.get('subject')
        if subject == self.poison_pill or (
            isinstance(subject, str) and subject.startswith(CONTROL_PREFIX)
        ):
            if counted:
                self._slots.release()
            if envelope.get('route', INTERNAL) != INTERNAL:
                _log.warning('refused control subject %r that arrived on route %r from %r',
                             subject, envelope.get('route'), envelope.get('sender'))
            else:
                self._controls.append(envelope)
            return
        if self._priority:
            heapq.heappush(self._heap,
                           (envelope.get('priority', 0), next(self._seq), counted, envelope))
        else:
            self._fifo.append((counted, envelope))

    def close(self) -> None:
        """Close connections, waker and poller (the listener is closed by its owner)."""
        for fileobj, callback in list(self._watched.values()):
            if callback == self._read:
                fileobj.close()
        self._watched.clear()
        self._epoll.close()
        os.close(self._waker)
