"""The Unix-socket route's server transport: serve JSON envelopes to many clients, one loop.

Frames are newline-delimited JSON (:mod:`polycephaly_ros.routes.framing`); the socket file
and its permissions are :mod:`.socket_file`'s business, what is kept per client and the
limits on it :mod:`.connection`'s.

Security rules:

* Frames are JSON only and decoded by :func:`polycephaly_ros.codec.decode`: nothing is
  ever unpickled, headers are checked once (codec.py), control subjects (``polycephaly.*``)
  and the poison pill are refused, and ``route`` is always set by the server.
* A bad frame (malformed, wrong headers, refused subject, longer than ``max_frame``) is
  answered with an error frame on its own connection and logged, a few lines per period; the
  connection stays open and no other client is affected.
* Who a client is comes from the kernel (``SO_PEERCRED``), logged when it connects;
  ``allowed_uids`` turns away everyone else. A client is known by the ``sender`` of its
  frames; a name another live connection holds cannot be claimed (error frame).
* Clients cannot make the server hold more than :class:`~.connection.Limits` say
  (connections, bytes buffered in all, bytes pending per client, linger after a half-close).

Transport only: the server calls ``on_envelope(envelope, client_id)`` from the one thread that
runs its loop (client ids are ints from 1, never reused by a server); if it raises, the client
gets an error frame (``not delivered: ...``: the message of a PolycephalyError, else ``internal
error``, logged with its traceback). Raising :class:`QueueFull` means "not now": that frame and
every later one from the same client wait, and the client is not read meanwhile (its writes
block once the socket buffers fill: back-pressure, nothing lost); the frame is offered again
every :data:`HOLD_RETRY` seconds, and after ``hold_timeout`` seconds it is answered with an
error frame instead. Other clients are not held up.
If the loop of a server with a thread of its own fails, the exception is logged and given to
``on_failure`` (a route head's :meth:`~polycephaly_ros.routes.base.RouteHead.transport_failed`)
and the server closes.

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
from typing import Any, Callable

from ... import codec
from ...errors import ConfigurationError, EnvelopeError, PolycephalyError, QueueFull, StateError
from ...loop import Loop
from ...throttle import Throttle
from ..framing import MAX_FRAME, READ_SIZE, encode_frame
from . import socket_file
from .clients import Clients
from .connection import Connection, Limits, Peer

#: Most bytes that may wait to be written to one connection by default (Limits.max_pending).
MAX_PENDING = Limits.max_pending
#: Seconds between offers of a frame whose recipient's queue was full.
HOLD_RETRY = 0.002
_log = logging.getLogger(__name__)

ServerCallback = Callable[[dict[str, Any], int], None]


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
        limits: Limits | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
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
        self.limits = limits or Limits()
        self._on_envelope = on_envelope
        self._on_failure = on_failure
        self._poison_pill = poison_pill
        self._ids = itertools.count(1)
        self._clients = Clients(self.path, self.limits, self._wake)
        self._thread: threading.Thread | None = None
        self._threaded = True
        self._stopping = False
        self._inode: socket_file.FileId | None = None
        self._throttle = Throttle(_log)

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
        return self._clients.ids()

    def send(self, client_id: int, envelope: dict[str, Any]) -> None:
        """Queue an envelope to one client; raise RecipientUnavailable if it is gone."""
        self._clients.send(client_id, envelope)

    def send_to_name(self, name: str, envelope: dict[str, Any]) -> None:
        """Queue an envelope to the client that sends as name."""
        self._clients.send_to_name(name, envelope)

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
        except Exception as exc:
            _log.exception('the server loop on %s failed', self.path)
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._close_all()

    def _on_wake(self, _sock: socket.socket) -> None:
        """Drain the wake-up socket and write what send() left for the loop."""
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        for conn in self._clients.take_dirty():
            self._flush(conn)

    def _on_conn(self, conn: Connection, _sock: socket.socket) -> None:
        """Read what the client sent, then write what waits for it (readable or writable)."""
        if not conn.half_closed:
            self._read(conn)
        if (conn.out or conn.half_closed) and not conn.closed:
            self._flush(conn)

    def _accept(self, _sock: socket.socket) -> None:
        """Accept every waiting client and watch it, within the limits."""
        limits = self.limits
        while True:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                self._throttle.warning('accept', '%s: cannot accept a client: %s', self.path, exc)
                return
            sock.setblocking(False)
            conn = Connection(next(self._ids), sock, self.max_frame, Peer.of(sock))
            refusal = None
            if limits.allowed_uids is not None and conn.peer.uid not in limits.allowed_uids:
                refusal = f'uid {conn.peer.uid} may not connect to {self.path}'
            elif len(self._clients) >= limits.max_connections:
                refusal = f'{self.path} already serves {limits.max_connections} clients'
            if refusal is not None:
                self._throttle.warning('refused', '%s: refused client %d (pid %d, uid %d): %s',
                                       self.path, conn.id, conn.peer.pid, conn.peer.uid, refusal)
                self._turn_away(conn, refusal)
                continue
            self._clients.add(conn)
            self._watch(conn)
            self._throttle.log(logging.INFO, 'connected', '%s: client %d connected (pid %d, uid '
                               '%d, gid %d)', self.path, conn.id, conn.peer.pid, conn.peer.uid,
                               conn.peer.gid)

    @staticmethod
    def _turn_away(conn: Connection, reason: str) -> None:
        """Tell a client why it is not served, and close its connection."""
        try:
            conn.sock.send(encode_frame(codec.error_envelope(reason)))
        except OSError:
            pass
        conn.sock.close()

    def _watch(self, conn: Connection) -> None:
        """Watch a connection for reading, and for writing while output waits."""
        self._loop.watch(conn.sock, functools.partial(self._on_conn, conn))
        if conn.writing:
            self._loop.set_interest(conn.sock, True, True)

    def _read(self, conn: Connection) -> None:
        """Read once from a client and deliver (or hold) the frames that completes."""
        if conn.closed:
            return
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._end_of_requests(conn)
            return
        lines = conn.lines
        end = len(data) - 1
        if (data[:1] == b'{' and data.find(b'\n') == end and end <= self.max_frame
                and not lines.partial and not conn.held):  # the usual case: one whole frame
            line = data[:end]
            if not self._deliver(conn, line, final=False):
                self._hold(conn, line)
            self._account(conn)
            return
        for line in lines.feed(data):
            if conn.held:
                conn.held.append(line)
            elif not self._deliver(conn, line, final=False):
                self._hold(conn, line)
        self._account(conn)

    def _account(self, conn: Connection) -> None:
        """Count the client's unfinished and held frames; close it if all clients hold too much."""
        if self._clients.account(conn) and not conn.closed:
            reason = (f'the server holds {self.limits.max_buffered} bytes of unfinished or '
                      f'waiting frames at most; this connection is closed')
            self._throttle.warning('buffered', '%s: client %d: %s', self.path, conn.id, reason)
            self._reject(conn, reason, None)
            self._flush(conn)
            self._close(conn)

    def _end_of_requests(self, conn: Connection) -> None:
        """The client shut down its write side: close once the replies it is owed are out."""
        if conn.held or (not conn.owed and not conn.out) or self.limits.linger == 0:
            if conn.held:  # (they can still be delivered: their replies go out after)
                conn.half_closed = True
                return
            self._close(conn)
            return
        conn.half_closed = True
        self._loop.set_interest(conn.sock, False, bool(conn.out))
        self._loop.call_later(self.limits.linger, lambda: self._close(conn))

    def _hold(self, conn: Connection, line: bytes | None) -> None:
        """Keep a frame whose recipient is full (and every later one); read no more meanwhile."""
        conn.held.append(line)
        conn.held_since = time.monotonic()
        self._loop.unwatch(conn.sock)
        self._loop.call_later(HOLD_RETRY, lambda: self._offer_held(conn))

    def _offer_held(self, conn: Connection) -> None:
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
        self._account(conn)
        if conn.out:
            self._flush(conn)  # error frames written meanwhile (may find the client gone)
        if not held and not conn.closed:
            self._watch(conn)
            if conn.half_closed:
                conn.half_closed = False
                self._end_of_requests(conn)

    def _deliver(self, conn: Connection, line: bytes | None, final: bool) -> bool:
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
        if not self._clients.claim(conn, envelope['sender'].lower()):
            self._reject(conn, f'sender {envelope["sender"]!r} is the name of another client '
                               f'of {self.path}', envelope)
            return True
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
        else:
            conn.owe(envelope['threadid'])
        return True

    def _reject(self, conn: Connection, reason: str, original: dict[str, Any] | None) -> None:
        """Log a refused frame and queue an error frame about it to its client."""
        self._throttle.warning('rejected', '%s: rejected a frame from client %d: %s', self.path,
                               conn.id, reason)
        if not self._clients.queue(conn, encode_frame(codec.error_envelope(reason, original))):
            self._throttle.warning('slow reader', '%s: client %d reads too slowly; error frame '
                                   'dropped', self.path, conn.id)

    def _flush(self, conn: Connection) -> None:
        """Write what waits for a client; watch for writability while some is left."""
        if conn.closed:
            return
        failed, pending = self._clients.write(conn)
        if failed or (conn.half_closed and not pending and not conn.owed and not conn.held):
            self._close(conn)  # (gone, or a half-closed client got everything it was owed)
        elif pending != conn.writing:
            conn.writing = pending
            if not conn.held:  # (a held connection is not watched: _watch() sets it later)
                self._loop.set_interest(conn.sock, not conn.half_closed, pending)

    def _close(self, conn: Connection) -> None:
        """Forget a client and close its connection."""
        if not self._clients.remove(conn):
            return
        if conn.held:
            self._throttle.warning('never delivered', '%s: %d frame(s) from client %d were never '
                                   'delivered: their recipient stayed full until the connection '
                                   'closed', self.path, len(conn.held), conn.id)
        else:
            self._loop.unwatch(conn.sock)
        conn.sock.close()
        _log.debug('%s: client %d disconnected', self.path, conn.id)

    def _close_all(self) -> None:
        """Close every connection and the listener, and remove the socket file."""
        for conn in self._clients:
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
