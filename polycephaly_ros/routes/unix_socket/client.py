"""The Unix-socket route's client transport: one connection to a server, kept up by one thread.

:class:`UnixSocketClient` connects to a
:class:`~polycephaly_ros.routes.unix_socket.server.UnixSocketServer` (or any server speaking
the same newline-delimited JSON, :mod:`polycephaly_ros.routes.framing`) and reconnects with
doubling backoff, from ``backoff[0]`` up to ``backoff[1]`` seconds, whenever the connection
is lost, until :meth:`~UnixSocketClient.close`. It talks only to a server whose process runs
as one of ``server_uids`` (this user and root by default), as the kernel says
(``SO_PEERCRED``): a socket another user put in its place gets nothing.

Frames from the server are checked like the server's (:func:`polycephaly_ros.codec.check`:
JSON only, control subjects and the poison pill refused, ``route`` set here) and refused
ones are logged and dropped; error frames with no recipient are addressed to this client's
name. A frame over ``max_frame`` is logged and dropped.

Threading: ``on_envelope(envelope)`` is called from the client's one background thread, for
each frame received; if it raises, the error is logged and reading goes on. ``send()`` may
be called from any thread; while disconnected it raises :class:`RecipientUnavailable` at
once, and if the server takes nothing for ``send_timeout`` seconds it raises too and the
client reconnects (a frame may have been cut short). An exception that escapes the thread
otherwise is logged and given to ``on_failure`` (a route head's ``transport_failed``).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Iterable

from ... import codec
from ...wire import send_within
from ...envelope import new_id
from ...errors import EnvelopeError, RecipientUnavailable, StateError
from ..framing import MAX_FRAME, READ_SIZE, LineSplitter, encode_frame
from .connection import Peer

_log = logging.getLogger(__name__)

ClientCallback = Callable[[dict[str, Any]], None]


class UnixSocketClient:
    """Connect to a UnixSocketServer from a background thread, reconnecting with backoff.

    The threading contract is in the module documentation.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_envelope: ClientCallback,
        *,
        name: str,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.05, 2.0),
        route: str = 'uds',
        max_frame: int = MAX_FRAME,
        poison_pill: str | None = None,
        send_timeout: float = 2.0,
        server_uids: Iterable[int] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        #: Whose server this client talks to (SO_PEERCRED): this user and root by default.
        self.server_uids = frozenset(server_uids if server_uids is not None
                                     else (os.getuid(), 0))
        self.name = name
        self.send_timeout = send_timeout
        self.reconnect = reconnect
        self.backoff = backoff
        self.route = route
        self.max_frame = max_frame
        self._on_envelope = on_envelope
        self._on_failure = on_failure
        self._poison_pill = poison_pill
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set while connected.
        self.connected_event = threading.Event()
        #: Set while not connected (the opposite of connected_event).
        self.disconnected_event = threading.Event()
        self.disconnected_event.set()

    @property
    def connected(self) -> bool:
        """Tell whether the client is connected to the server now."""
        return self.connected_event.is_set()

    def start(self) -> None:
        """Start connecting (and reading) in a background thread."""
        if self._thread is not None:
            raise StateError(f'the client of {self.path} is already running')
        self._thread = threading.Thread(
            target=self._run, name=f'uds-client:{self.path}', daemon=True
        )
        self._thread.start()

    def send(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Send an envelope to the server and return it as sent (missing ids filled in)."""
        envelope = {
            'sender': self.name, 'messageid': new_id(), 'threadid': new_id(),
            'threadindex': 1, 'time': time.time(), **envelope,
        }
        data = encode_frame(envelope)
        with self._lock:
            sock = self._sock
            if sock is None:
                raise RecipientUnavailable(f'not connected to {self.path}')
            try:
                send_within(sock, data, self.send_timeout)
            except TimeoutError:  # part of a frame may be out: start afresh
                self._hang_up(sock)
                raise RecipientUnavailable(
                    f'the server at {self.path} took nothing for {self.send_timeout:g} s; '
                    'reconnecting') from None
            except OSError as exc:
                self._hang_up(sock)
                raise RecipientUnavailable(f'lost the connection to {self.path}: {exc}') from None
        return envelope

    def close(self) -> None:
        """Disconnect, stop reconnecting and join the thread."""
        self._closing.set()
        with self._lock:
            if self._sock is not None:
                self._hang_up(self._sock)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None

    def __enter__(self) -> UnixSocketClient:
        """Start the client and return it."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client."""
        self.close()

    # -- client thread ---------------------------------------------------------------
    @staticmethod
    def _hang_up(sock: socket.socket) -> None:
        """Shut the connection down both ways, which ends the reader's recv()."""
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _run(self) -> None:
        """Run the client's thread; report an exception that escapes it to on_failure."""
        try:
            self._connect_and_serve()
        except Exception as exc:
            _log.exception('the client of %s failed', self.path)
            if self._on_failure is not None:
                self._on_failure(exc)

    def _connect_and_serve(self) -> None:
        """Connect, read until the connection ends, and again while reconnecting."""
        first = True
        while not self._closing.is_set() and (first or self.reconnect):
            sock = self._connect()
            if sock is None:
                return
            first = False
            try:
                self._serve(sock)
            finally:
                with self._lock:
                    self._sock = None
                    self.connected_event.clear()
                    self.disconnected_event.set()
                sock.close()
                _log.info('disconnected from %s', self.path)

    def _connect(self) -> socket.socket | None:
        """Return a connected socket, retrying with backoff; None once closing."""
        delay, longest = self.backoff
        while not self._closing.is_set():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                peer = Peer.of(sock)
                if peer.uid not in self.server_uids:
                    raise PermissionError(f'the server at {self.path} runs as uid {peer.uid} '
                                          f'(pid {peer.pid}), not as one of '
                                          f'{sorted(self.server_uids)}: not talking to it')
            except OSError as exc:
                sock.close()
                log = _log.error if isinstance(exc, PermissionError) else _log.debug
                log('cannot connect to %s (%s); retrying in %.2f s', self.path, exc, delay)
                self._closing.wait(delay)
                delay = min(delay * 2, longest)
                continue
            with self._lock:
                if self._closing.is_set():
                    sock.close()
                    return None
                self._sock = sock
                self.disconnected_event.clear()
                self.connected_event.set()
            _log.info('connected to %s as %s', self.path, self.name)
            return sock
        return None

    def _serve(self, sock: socket.socket) -> None:
        """Read frames from one connection until it ends."""
        lines = LineSplitter(self.max_frame)
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except OSError as exc:
                if exc.errno not in (errno.ECONNRESET, errno.EBADF, errno.ENOTCONN):
                    _log.warning('reading from %s failed: %s', self.path, exc)
                return
            if not data:
                return
            for line in lines.feed(data):
                if line is None:
                    _log.warning('%s: dropped a frame longer than %d bytes',
                                 self.path, self.max_frame)
                else:
                    self._deliver(line)

    def _deliver(self, line: bytes) -> None:
        """Check one frame and hand it to on_envelope; log and drop what is refused."""
        try:
            obj = codec.parse(line)
            if not obj.get('recipient'):
                obj['recipient'] = self.name  # error frames about unparseable sends
            envelope = codec.check(obj, route=self.route, poison_pill=self._poison_pill)
        except EnvelopeError as exc:
            _log.warning('%s: rejected a frame from the server: %s', self.path, exc)
            return
        try:
            self._on_envelope(envelope)
        except Exception:
            _log.exception('%s: on_envelope failed', self.path)
