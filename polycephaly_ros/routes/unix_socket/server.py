"""The Unix-socket route's server transport: serve JSON envelopes to many clients, one loop.

Frames are newline-delimited JSON (:mod:`polycephaly_ros.routes.framing`); the socket file
and its permissions are :mod:`~polycephaly_ros.routes.unix_socket.socket_file`'s business.

Security rules:

* Frames are JSON only and decoded by :func:`polycephaly_ros.codec.decode`: nothing is
  ever unpickled, control subjects (``polycephaly.*``) and the poison pill are refused, and
  ``route`` is always set by the server.
* A bad frame (malformed, wrong headers, refused subject, longer than ``max_frame``) is
  answered with an error frame on its own connection and logged; the connection stays open
  and no other client is affected. Once :data:`MAX_PENDING` bytes wait for a client that
  does not read, ``send()`` to it raises :class:`QueueFull` and its error frames are dropped.

Transport only: the server calls ``on_envelope(envelope, client_id)`` from the one thread that
runs its loop (client ids are ints from 1, never reused by a server); if it raises, the client
gets an error frame (``not delivered: ...``: the message of a PolycephalyError, else ``internal
error``, logged with its traceback). Raising :class:`QueueFull` means "not now": that frame and
every later one from the same client wait, and the client is not read meanwhile (its writes
block once the socket buffers fill: back-pressure, nothing lost); the frame is offered again
every :data:`HOLD_RETRY` seconds, and after ``hold_timeout`` seconds it is answered with an
error frame instead. Other clients are not held up.

Threading: ``send()``, ``send_to_name()`` and ``clients()`` may be called from any thread;
``send()`` writes straight to the client's socket when nothing is pending for it, and leaves
the rest to the server's loop. ``start(loop=...)`` runs no thread: the server's sockets are
watched by the given loop, whose owner thread then runs the server between its own work
(and calls ``stop()``); a head's :class:`~polycephaly_ros.inbox.Inbox` is such a
:class:`~polycephaly_ros.loop.Loop` (see UnixSocketServerHead); a server with a thread of
its own runs a Loop of its own.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from typing import Any, Callable

from ... import codec
from ...loop import Loop
from ...errors import (
    ConfigurationError,
    EnvelopeError,
    PolycephalyError,
    QueueFull,
    RecipientUnavailable,
    StateError,
    UnknownRecipient,
)
from ..framing import MAX_FRAME, READ_SIZE, LineSplitter, encode_frame
from . import socket_file

#: Most bytes that may wait to be written to one connection before sends to it are refused.
MAX_PENDING = 16 << 20
#: Seconds between offers of a frame whose recipient's queue was full.
HOLD_RETRY = 0.002
_log = logging.getLogger(__name__)

ServerCallback = Callable[[dict[str, Any], int], None]


class _Conn:
    """One accepted client connection (its mutable fields are guarded by the server lock)."""

    def __init__(self, client_id: int, sock: socket.socket, max_frame: int) -> None:
        self.id = client_id
        self.sock = sock
        self.lines = LineSplitter(max_frame)
        self.out = bytearray()
        self.names: set[str] = set()
        self.writing = False
        self.closed = False
        #: Frames read but not taken yet (None: an over-long one), oldest first; while any
        #: wait, the connection is not watched (so not read).
        self.held: deque[bytes | None] = deque()
        self.held_since = 0.0  # when the oldest held frame was first refused


class UnixSocketServer:
    """Serve newline-delimited JSON envelopes on a Unix socket, from one thread (see the module)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_envelope: ServerCallback,
        *,
        route: str = 'uds',
        mode: int = 0o600,
        group: str | int | None = None,
        max_frame: int = MAX_FRAME,
        poison_pill: str | None = None,
        hold_timeout: float = 2.0,
    ) -> None:
        if not 0 <= mode <= 0o777:
            raise ConfigurationError(f'mode must be permission bits 0..0o777, not {mode:#o}')
        if max_frame < 1:
            raise ConfigurationError(f'max_frame must be at least 1 byte, not {max_frame}')
        self.path = os.fspath(path)
        self.route = route
        self.mode = mode
        self.gid = None if group is None else socket_file.group_id(group)
        self.max_frame = max_frame
        self.hold_timeout = hold_timeout
        self._on_envelope = on_envelope
        self._poison_pill = poison_pill
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._conns: dict[int, _Conn] = {}
        self._names: dict[str, int] = {}
        self._dirty: set[_Conn] = set()
        self._thread: threading.Thread | None = None
        self._threaded = True
        self._stopping = False
        self._inode: socket_file.FileId | None = None

    # -- public API, any thread ------------------------------------------------------
    def start(self, *, loop: Loop | None = None) -> None:
        """Create the socket file and start serving in a background thread.

        With a loop no thread is started: the loop's owner thread runs the server (see
        the module documentation) and calls stop() itself.
        """
        if self._thread is not None:
            raise StateError(f'the server on {self.path} is already running')
        listener, self._inode = socket_file.listen(self.path, self.mode, self.gid)
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._threaded = loop is None
        self._loop = Loop() if loop is None else loop
        self._loop.watch(listener, self._accept)
        self._loop.watch(self._wake_r, self._on_wake)
        self._stopping = False
        if self._threaded:
            self._thread = threading.Thread(target=self._run, name=f'uds-server:{self.path}',
                                            daemon=True)
            self._thread.start()
        else:
            self._thread = threading.current_thread()
        _log.info('serving %s (mode %#o)', self.path, self.mode)

    def stop(self) -> None:
        """Close every connection, unlink the socket file and join the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        if not self._threaded:
            self._thread = None
            self._close_all()
            return
        if thread is threading.current_thread():
            return  # called from on_envelope: the loop cleans up when it returns
        self._wake()
        thread.join()
        self._thread = None

    def clients(self) -> list[int]:
        """Return the ids of the connected clients."""
        with self._lock:
            return list(self._conns)

    def send(self, client_id: int, envelope: dict[str, Any]) -> None:
        """Queue an envelope to one client; raise RecipientUnavailable if it is gone."""
        data = encode_frame(envelope)
        with self._lock:
            conn = self._conns.get(client_id)
            if conn is None:
                raise RecipientUnavailable(f'client {client_id} of {self.path} is not connected')
            if len(conn.out) + len(data) > MAX_PENDING:
                raise QueueFull(f'client {client_id} of {self.path} is not reading its replies')
            sent = 0
            if not conn.out:  # nothing queued before it: write now, from this thread
                try:
                    sent = conn.sock.send(data)
                except BlockingIOError:
                    pass
                except OSError as exc:  # the loop closes the connection when it sees it
                    raise RecipientUnavailable(
                        f'client {client_id} of {self.path} went away: {exc}') from None
                if sent == len(data):
                    return
            conn.out += memoryview(data)[sent:]
            self._dirty.add(conn)
        self._wake()  # the loop writes the rest once the socket takes it

    def send_to_name(self, name: str, envelope: dict[str, Any]) -> None:
        """Queue an envelope to the client that last sent as name."""
        client_id = self._names.get(name.lower())  # (a dict read needs no lock)
        if client_id is None:
            raise UnknownRecipient(f'no client of {self.path} has sent as {name!r}')
        self.send(client_id, envelope)

    def __enter__(self) -> UnixSocketServer:
        """Start the server and return it."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()

    # -- the loop, server thread only ------------------------------------------------
    def _wake(self) -> None:
        """Make the loop run _on_wake (any thread)."""
        try:
            self._wake_w.send(b'\0')
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or the server is closing

    def _run(self) -> None:
        """Run the loop until stop() (the server's own thread)."""
        try:
            while not self._stopping:
                self._loop.run_once()
        except Exception:
            _log.exception('the server loop on %s failed', self.path)
        finally:
            self._close_all()

    def _on_wake(self, _sock: socket.socket) -> None:
        """Drain the wake-up socket and write what send() left for the loop."""
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            self._flush(conn)

    def _on_conn(self, conn: _Conn, _sock: socket.socket) -> None:
        """Read what the client sent, then write what waits for it (readable or writable)."""
        self._read(conn)
        if conn.out and not conn.closed:
            self._flush(conn)

    def _accept(self, _sock: socket.socket) -> None:
        """Accept every waiting client and watch it."""
        while True:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                _log.warning('%s: cannot accept a client: %s', self.path, exc)
                return
            sock.setblocking(False)
            conn = _Conn(next(self._ids), sock, self.max_frame)
            with self._lock:
                self._conns[conn.id] = conn
            self._watch(conn)
            _log.debug('%s: client %d connected', self.path, conn.id)

    def _watch(self, conn: _Conn) -> None:
        """Watch a connection for reading, and for writing while output waits."""
        self._loop.watch(conn.sock, functools.partial(self._on_conn, conn))
        if conn.writing:
            self._loop.set_writable(conn.sock, True)

    def _read(self, conn: _Conn) -> None:
        """Read once from a client and deliver (or hold) the frames that completes."""
        if conn.closed:
            return
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b''
        if not data:
            self._close(conn)
            return
        lines = conn.lines
        end = len(data) - 1
        if (data[:1] == b'{' and data.find(b'\n') == end and end <= self.max_frame
                and not lines.partial):  # the usual case: one whole frame
            line = data[:end]
            if not self._deliver(conn, line, final=False):
                self._hold(conn, line)
            return
        for line in lines.feed(data):
            if conn.held:
                conn.held.append(line)
            elif not self._deliver(conn, line, final=False):
                self._hold(conn, line)

    def _hold(self, conn: _Conn, line: bytes | None) -> None:
        """Keep a frame whose recipient is full (and every later one); read no more meanwhile."""
        conn.held.append(line)
        conn.held_since = time.monotonic()
        self._loop.unwatch(conn.sock)
        self._loop.call_later(HOLD_RETRY, lambda: self._offer_held(conn))

    def _offer_held(self, conn: _Conn) -> None:
        """Offer the held frames again, in order; watch the client again once all are taken."""
        held = conn.held
        while held and not conn.closed:
            final = time.monotonic() - conn.held_since >= self.hold_timeout
            if not self._deliver(conn, held[0], final):
                self._loop.call_later(HOLD_RETRY, lambda: self._offer_held(conn))
                break
            held.popleft()
            conn.held_since = time.monotonic()
        if conn.closed:
            return
        if conn.out:
            self._flush(conn)  # error frames written meanwhile (may find the client gone)
        if not held and not conn.closed:
            self._watch(conn)

    def _deliver(self, conn: _Conn, line: bytes | None, final: bool) -> bool:
        """Decode a frame and hand it to on_envelope; False if it must wait (and not final).

        None stands for an over-long frame: it is answered with an error frame.
        """
        if line is None:
            self._reject(conn, f'frame longer than {self.max_frame} bytes', None)
            return True
        try:
            envelope = codec.decode(line, route=self.route, poison_pill=self._poison_pill)
        except EnvelopeError as exc:
            try:
                original: dict[str, Any] | None = codec.parse(line)
            except EnvelopeError:
                original = None
            self._reject(conn, str(exc), original)
            return True
        sender = envelope.get('sender')
        if isinstance(sender, str) and sender:
            name = sender.lower()
            if self._names.get(name) != conn.id:  # (a dict read needs no lock)
                with self._lock:
                    self._names[name] = conn.id
                    conn.names.add(name)
        try:
            self._on_envelope(envelope, conn.id)
        except QueueFull as exc:
            if not final:
                return False
            self._reject(conn, f'not delivered: {exc} (for {self.hold_timeout:g} s)', envelope)
        except PolycephalyError as exc:
            self._reject(conn, f'not delivered: {exc}', envelope)
        except Exception:
            _log.exception('%s: on_envelope failed for client %d', self.path, conn.id)
            self._reject(conn, 'not delivered: internal error', envelope)
        return True

    def _reject(self, conn: _Conn, reason: str, original: dict[str, Any] | None) -> None:
        """Log a refused frame and queue an error frame about it to its client."""
        _log.warning('%s: rejected a frame from client %d: %s', self.path, conn.id, reason)
        frame = encode_frame(codec.error_envelope(reason, original))
        with self._lock:
            if len(conn.out) + len(frame) > MAX_PENDING:
                _log.warning('%s: client %d reads too slowly; error frame dropped',
                             self.path, conn.id)
                return
            conn.out += frame
            self._dirty.add(conn)

    def _flush(self, conn: _Conn) -> None:
        """Write what waits for a client; watch for writability while some is left."""
        with self._lock:
            if conn.closed:
                return
            try:
                sent = conn.sock.send(conn.out) if conn.out else 0
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = -1
            if sent > 0:
                del conn.out[:sent]
            pending = bool(conn.out)
        if sent < 0:
            self._close(conn)
        elif pending != conn.writing:
            conn.writing = pending
            if not conn.held:  # (a held connection is not watched: _watch() sets it later)
                self._loop.set_writable(conn.sock, pending)

    def _close(self, conn: _Conn) -> None:
        """Forget a client and close its connection."""
        with self._lock:
            if conn.closed:
                return
            conn.closed = True
            del self._conns[conn.id]
            self._dirty.discard(conn)
            for name in conn.names:
                if self._names.get(name) == conn.id:
                    del self._names[name]
        if conn.held:
            _log.warning('%s: %d frame(s) from client %d were never delivered: their recipient '
                         'stayed full until the connection closed', self.path, len(conn.held),
                         conn.id)
        else:
            self._loop.unwatch(conn.sock)
        conn.sock.close()
        _log.debug('%s: client %d disconnected', self.path, conn.id)

    def _close_all(self) -> None:
        """Close every connection and the listener, and remove the socket file."""
        for conn in list(self._conns.values()):
            try:
                conn.sock.send(conn.out)  # best effort: what is already queued
            except OSError:
                pass
            self._close(conn)
        self._loop.unwatch(self._listener)
        self._loop.unwatch(self._wake_r)
        if self._threaded:
            self._loop.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        socket_file.remove(self.path, self._inode)
        _log.info('stopped serving %s', self.path)
