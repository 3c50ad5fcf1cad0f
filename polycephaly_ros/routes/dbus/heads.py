"""The D-Bus route as heads: a server head owning a bus name, a client head calling one.

:class:`DbusServerHead` serves this application's heads on a bus name through a
:class:`~.server.DbusServer`; :class:`DbusClientHead` reaches another application's
``DbusServerHead`` through a :class:`~.client.DbusClient`. Both are
:class:`~polycephaly_ros.routes.base.RouteHead` subclasses: the route head's contract (inbound
delivery, replies by ``via``, bounces, ``remote`` names) is in :mod:`polycephaly_ros.routes.base`.
This is the only module of the route that imports the head machinery.

Threading: each head's transport runs dbus-fast's asyncio loop in a thread of its own
(:mod:`.connection`), which decodes and delivers inbound envelopes; the heads of the route
head's process send out from their own thread (``transmit`` is thread-safe).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..base import RouteHead
from ..framing import MAX_FRAME
from .client import DbusClient
from .interface import INTERFACE, OBJECT_PATH, check_settings
from .server import DbusServer


def _common(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the transport options both heads take, from their kwargs."""
    return {'bus': kwargs.get('bus', 'session'), 'bus_name': kwargs['bus_name'],
            'object_path': kwargs.get('object_path', OBJECT_PATH),
            'interface': kwargs.get('interface', INTERFACE),
            'max_message': kwargs.get('max_message', MAX_FRAME),
            'backoff': tuple(kwargs.get('backoff', (0.05, 2.0)))}


class DbusServerHead(RouteHead):
    """A head serving this application's heads on a D-Bus name.

    kwargs (from add_process): ``bus_name`` (required: the well-known name to own, e.g.
    'io.polycephaly.Robot'), ``bus`` ('session', 'system' or an address such as
    'unix:path=/run/robot/bus'; 'session'), ``object_path`` ('/io/polycephaly/Route'),
    ``interface`` ('io.polycephaly.Route1'), ``call_timeout`` (5.0 s a call waits for its
    reply), ``max_calls`` (256 calls in progress), ``max_message`` (:data:`MAX_FRAME` bytes
    of JSON each way), ``names`` (1024 callers remembered for signals), ``backoff``
    ((0.05, 2.0) s between reconnect attempts, doubling), ``route`` ('dbus'), ``remote``
    (outside names the heads may send to without ``via``: they go out as signals).

    A call of ``Send`` goes to the head named in its envelope's ``recipient`` with
    ``route='dbus'`` and ``via=<this head>``; that head's reply is the call's return value.
    Envelopes to other outside names are emitted as the signal ``Envelope``. A name another
    connection owns, or that the bus's policy refuses, is a configuration error when the
    head starts (the application ends with EXIT_CONFIG); a bus that cannot be reached is
    retried meanwhile, and sends bounce.
    """

    route = 'dbus'
    transmit_from_any_thread = True  # DbusServer.send() is thread-safe
    server: DbusServer  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check the D-Bus settings; return the remote names."""
        check_settings(cls, kwargs)
        return super().configure(kwargs)

    @property
    def connected(self) -> bool:
        """Tell whether the head owns its name on the bus now."""
        server = getattr(self, 'server', None)
        return server is not None and server.connected

    def open_transport(self) -> None:
        """Connect, export the object and take the name (or raise ConfigurationError)."""
        kw = self.kwargs
        self.server = DbusServer(
            self._on_envelope, route=self.route, poison_pill=self.runtime.poison_pill,
            call_timeout=kw.get('call_timeout', 5.0), max_calls=kw.get('max_calls', 256),
            hold_timeout=self.runtime.send_timeout, names=kw.get('names', 1024),
            on_failure=self.transport_failed, **_common(kw))
        self.server.start()

    def _on_envelope(self, envelope: dict[str, Any]) -> None:
        """Deliver a caller's envelope at once, or raise saying why not (QueueFull: held)."""
        self.deliver(envelope, timeout=0)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Answer the call envelope replies to, or emit it as a signal."""
        self.server.send(envelope)

    def close_transport(self) -> None:
        """Disconnect (the bus releases the name)."""
        server = getattr(self, 'server', None)
        if server is not None:
            server.close()


class DbusClientHead(RouteHead):
    """A head connecting this application to another one's DbusServerHead over D-Bus.

    kwargs (from add_process): ``bus_name`` (required: the name the other application's
    server head owns), ``remote`` (names of its heads that this application's heads may send
    to without ``via``), ``bus``, ``object_path``, ``interface``, ``max_message``,
    ``backoff`` and ``route`` as for :class:`DbusServerHead`, ``call_timeout`` (10.0 s a call
    may take before its sender gets a bounce; keep it above the server's), ``max_calls``
    (128 calls in progress; one more bounces at once).

    Envelopes whose ``via`` is this head (or whose recipient is in ``remote``) are calls of
    ``Send``; the reply is delivered to the sender, so ``wait_for_reply`` works across the
    bus. A call that fails (no such name, the bus's policy, the bus lost, no answer in time)
    gives its sender a bounce; so does a send while disconnected, at once. Signals from the
    server that name a head of this application are delivered to it.
    """

    route = 'dbus'
    transmit_from_any_thread = True  # DbusClient.send() is thread-safe
    client: DbusClient  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check the D-Bus settings; return the remote names."""
        check_settings(cls, kwargs)
        return super().configure(kwargs)

    @property
    def connected(self) -> bool:
        """Tell whether the client is connected to the bus now."""
        client = getattr(self, 'client', None)
        return client is not None and client.connected

    def open_transport(self) -> None:
        """Start connecting, in the client's own thread."""
        kw = self.kwargs
        self.client = DbusClient(
            self._on_envelope, self._bounce, route=self.route,
            poison_pill=self.runtime.poison_pill, call_timeout=kw.get('call_timeout', 10.0),
            max_calls=kw.get('max_calls', 128), hold_timeout=self.runtime.send_timeout,
            on_failure=self.transport_failed, **_common(kw))
        self.client.start()

    def _on_envelope(self, envelope: dict[str, Any]) -> None:
        """Deliver a reply or signal at once, or raise saying why not (QueueFull: held)."""
        self.deliver(envelope, timeout=0)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Call the server's Send with envelope; its reply comes back by itself."""
        self.client.send(envelope)

    def close_transport(self) -> None:
        """Disconnect and stop reconnecting."""
        client = getattr(self, 'client', None)
        if client is not None:
            client.close()
