"""The Unix-socket route as heads: a server head and a client head, each owning one transport.

:class:`UnixSocketServerHead` serves this application's heads to outside clients through a
:class:`~polycephaly_ros.routes.unix_socket.server.UnixSocketServer`;
:class:`UnixSocketClientHead` connects this application to another one's server head through a
:class:`~polycephaly_ros.routes.unix_socket.client.UnixSocketClient`. Both are
:class:`~polycephaly_ros.routes.base.RouteHead` subclasses: the route head's contract (inbound
delivery, replies by ``via``, bounces, ``remote`` names) is in :mod:`polycephaly_ros.routes.base`.

This is the only module of the route that imports the head machinery; the transports, the
framing and the socket-file handling do not.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from ... import codec
from ...errors import ConfigurationError, PolycephalyError
from ..base import RouteHead
from ..framing import MAX_FRAME
from .client import UnixSocketClient
from .connection import Limits
from .server import UnixSocketServer

_log = logging.getLogger(__name__)

#: Longest socket path AF_UNIX takes on Linux (sun_path is 108 bytes, NUL included).
MAX_PATH = 107


def _check_path(cls: type, kwargs: Mapping[str, Any]) -> str:
    """Return the socket path in kwargs; raise ConfigurationError if it is missing or too long."""
    path = kwargs.get('path')
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigurationError(f'{cls.__name__} needs path=<socket file>, not {path!r}')
    size = len(os.fsencode(path))
    if size > MAX_PATH:
        raise ConfigurationError(f'socket path {os.fspath(path)!r} is {size} bytes; AF_UNIX takes '
                                 f'at most {MAX_PATH}: use a shorter directory')
    return os.fspath(path)


def _limits(kwargs: Mapping[str, Any]) -> Limits:
    """Return the server's Limits from the head's kwargs (ConfigurationError if bad)."""
    given = {k: kwargs[k] for k in ('max_connections', 'max_buffered', 'max_pending', 'linger',
                                    'allowed_uids') if k in kwargs}
    if given.get('allowed_uids') is not None:
        given['allowed_uids'] = frozenset(int(uid) for uid in given['allowed_uids'])
    return Limits(**given)


class UnixSocketServerHead(RouteHead):
    """A head serving the Unix-socket route: outside clients reach this application's heads.

    kwargs (from add_process): ``path`` (required), ``socket_mode`` (0o600; add_process's own
    ``mode`` is thread or process), ``group`` (name or gid, None), ``max_frame`` (bytes,
    :data:`MAX_FRAME`), ``route`` ('uds'), ``remote`` (client names the application's heads
    may send to without ``via``), ``transport_thread`` (False, see below), and the limits of
    :class:`~.connection.Limits`: ``max_connections`` (256), ``max_buffered`` (64 MiB),
    ``max_pending`` (16 MiB), ``linger`` (2 s), ``allowed_uids`` (None: any the file's mode
    lets in).

    Inbound frames go to the head named in ``recipient`` with ``route='uds'`` and
    ``via=<this head>``; replies come back here and go out to the client that last sent as
    the reply's recipient (clients are known by the ``sender`` of their frames, so a client
    is reachable once it has sent at least one frame on its connection). While the
    recipient's queue is full, that client's frames wait (see UnixSocketServer; after the
    bus's ``send_timeout`` the waiting frame is answered with an error frame).

    Threading: by default the server runs no thread of its own; its epoll descriptor is
    watched by this head's inbox, so frames are read, decoded and delivered in this head's
    thread between envelopes (so do not block in a subclass's life() or filters).
    ``transport_thread=True`` gives the server its own thread instead (one more thread hop
    each way; inbound keeps flowing while this head is busy).
    """

    route = 'uds'
    transmit_from_any_thread = True  # UnixSocketServer.send() is thread-safe
    server: UnixSocketServer  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check path and socket_mode; return the remote names."""
        _check_path(cls, kwargs)
        mode = kwargs.get('socket_mode', 0o600)
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
            raise ConfigurationError(f'socket_mode must be permission bits such as 0o600, '
                                     f'not {mode!r}')
        _limits(kwargs)
        return super().configure(kwargs)

    def open_transport(self) -> None:
        """Create the socket file and serve it, in this head's thread unless transport_thread."""
        kw = self.kwargs
        self.server = UnixSocketServer(
            _check_path(type(self), kw), self._on_frame, route=self.route,
            mode=kw.get('socket_mode', 0o600), group=kw.get('group'),
            max_frame=kw.get('max_frame', MAX_FRAME), poison_pill=self.runtime.poison_pill,
            hold_timeout=self.runtime.send_timeout, limits=_limits(kw),
            on_failure=self.transport_failed)
        # By default no thread of its own: the server's sockets are watched by this head's
        # inbox, so its I/O runs in the head's thread, one thread hop fewer each way.
        self.server.start(loop=None if kw.get('transport_thread', False) else self.runtime.inbox)

    def _on_frame(self, envelope: dict[str, Any], client_id: int) -> None:
        """Deliver a client's envelope to its recipient head at once, or raise saying why not."""
        # A PolycephalyError becomes an error frame to that client; QueueFull at once holds
        # the client's frames until there is room (never this thread waiting for its own queue).
        self.deliver(envelope, timeout=0)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the client that last sent as its recipient."""
        self.server.send_to_name(envelope['recipient'], envelope)

    def close_transport(self) -> None:
        """Stop serving and remove the socket file."""
        server = getattr(self, 'server', None)
        if server is not None:
            server.stop()


class UnixSocketClientHead(RouteHead):
    """A head connecting this application to another one's UnixSocketServerHead.

    kwargs (from add_process): ``path`` (required), ``remote`` (names of the other
    application's heads that this application's heads may send to without ``via``),
    ``client_name`` (the name this connection answers to on the server for error frames
    about unreadable frames; default: this head's name), ``reconnect`` (True),
    ``backoff`` ((0.05, 2.0): first and longest delay between connection attempts, doubling),
    ``max_frame`` (:data:`MAX_FRAME`), ``route`` ('uds'), ``server_uids`` (the uids the
    server's process may run as; default: this user and root).

    Envelopes whose ``via`` is this head (or whose recipient is in ``remote``) go out over
    the socket; frames from the server go to local heads with ``route='uds'``. While the
    server is away, sends bounce at once (an ``'error'`` reply, see polycephaly_ros.routes.base)
    and the transport keeps reconnecting with backoff.
    """

    route = 'uds'
    transmit_from_any_thread = True  # UnixSocketClient.send() is thread-safe
    client: UnixSocketClient  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check path and backoff; return the remote names."""
        _check_path(cls, kwargs)
        backoff = kwargs.get('backoff', (0.05, 2.0))
        try:
            first, longest = (float(b) for b in backoff)
            ok = 0 < first <= longest
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigurationError(f'backoff must be (first, longest) seconds, 0 < first <= '
                                     f'longest, not {backoff!r}')
        return super().configure(kwargs)

    @property
    def connected(self) -> bool:
        """Tell whether the client is connected to the server now."""
        client = getattr(self, 'client', None)
        return client is not None and client.connected

    def open_transport(self) -> None:
        """Start connecting to the server, in the client's own thread."""
        kw = self.kwargs
        self.client = UnixSocketClient(
            _check_path(type(self), kw), self._on_frame, name=kw.get('client_name', self.name),
            reconnect=kw.get('reconnect', True), backoff=tuple(kw.get('backoff', (0.05, 2.0))),
            route=self.route, max_frame=kw.get('max_frame', MAX_FRAME),
            poison_pill=self.runtime.poison_pill, send_timeout=self.runtime.send_timeout,
            server_uids=kw.get('server_uids'), on_failure=self.transport_failed)
        self.client.start()

    def _on_frame(self, envelope: dict[str, Any]) -> None:
        """Deliver an envelope from the server; answer one that cannot be with an error frame."""
        try:
            self.deliver(envelope)
        except PolycephalyError as exc:
            reason = f'not delivered: {exc}'
            _log.warning('%s: %s', self.client.path, reason)
            if envelope.get('subject') == 'error':
                return  # never answer an error with an error
            try:
                self.client.send(codec.error_envelope(reason, envelope))
            except PolycephalyError as lost:
                _log.warning('%s: could not send that error frame back: %s', self.client.path,
                             lost)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the server."""
        self.client.send(envelope)

    def close_transport(self) -> None:
        """Disconnect and stop reconnecting."""
        client = getattr(self, 'client', None)
        if client is not None:
            client.close()
