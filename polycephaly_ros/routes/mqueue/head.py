"""The POSIX message queue route as a head: :class:`MqueueRouteHead` owns one MqueueTransport.

The route head's contract (inbound delivery, replies by ``via``, bounces, ``remote`` names) is
in :mod:`polycephaly_ros.routes.base`; the queues in :mod:`.queues`, the transport in
:mod:`.transport`. This is the only module of the route that imports the head machinery.

One queue per route head, not one per head: the envelope's ``recipient`` names the head
(as on the socket), so one reader and one descriptor serve every head, a peer needs to know
one queue name, and a user's ``RLIMIT_MSGQUEUE`` (about nine default-sized queues) is not
spent on heads. Two applications each run one route head, each reading its own queue and
naming the other's as ``peer_queue``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ...errors import ConfigurationError
from ..base import RouteHead
from . import queues
from .transport import MqueueTransport


def _positive(cls: type, kwargs: Mapping[str, Any], key: str) -> None:
    """Raise ConfigurationError unless kwargs[key] is absent or a whole number >= 1."""
    value = kwargs.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f'{cls.__name__}: {key} must be a whole number >= 1, not '
                                 f'{value!r}')


class MqueueRouteHead(RouteHead):
    """A head joining this application to a peer through POSIX message queues.

    kwargs (from add_process): ``queue`` (required: the name of our queue, such as
    ``'/robot.service'``), ``peer_queue`` (the peer's queue: replies, error messages and
    ``remote`` names go there; None: this route only receives, and refused messages are
    counted and logged), ``queue_mode`` (0o600; 0o620 or 0o660 with ``group``), ``group``
    (name or gid), ``max_messages`` and ``max_message_size`` (the system's ``msg_default`` and
    ``msgsize_default``: 10 and 8192 unless changed), ``send_timeout`` (seconds a send waits
    for room in the peer's full queue before it bounces; the bus's send timeout),
    ``peer_uids`` (who may own the peer's queue: this user and root), ``transport_thread``
    (False), ``remote``, ``route`` ('mqueue').

    Inbound envelopes go to the head named in ``recipient`` with ``route='mqueue'`` and
    ``via=<this head>``; every outbound one goes to ``peer_queue``. Threading: by default
    our queue's descriptor is watched by this head's inbox, so messages are read, decoded and
    delivered in this head's thread between envelopes (do not block in a subclass's life() or
    filters); ``transport_thread=True`` reads in a thread of its own instead. transmit() is
    safe from any thread, so other heads of this process send out in their own thread.
    """

    route = 'mqueue'
    transmit_from_any_thread = True  # MqueueTransport.send() is thread-safe
    transport: MqueueTransport  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check the queue names, mode and sizes; return the remote names."""
        queues.check_name(kwargs.get('queue'))
        peer = kwargs.get('peer_queue')
        if peer is not None:
            queues.check_name(peer, 'peer_queue')
            if peer == kwargs['queue']:
                raise ConfigurationError(f'{cls.__name__}: peer_queue is our own queue {peer}')
        queues.check_mode(kwargs.get('queue_mode', 0o600), kwargs.get('group'))
        if kwargs.get('group') is not None:
            queues.group_id(kwargs['group'])
        for key in ('max_messages', 'max_message_size'):
            _positive(cls, kwargs, key)
        remote = super().configure(kwargs)
        if remote and peer is None:
            raise ConfigurationError(f'{cls.__name__}: remote names need peer_queue=<the queue '
                                     'they are reached through>')
        return remote

    def open_transport(self) -> None:
        """Create our queue and read it, in this head's thread unless transport_thread."""
        kw = self.kwargs
        uids = kw.get('peer_uids')
        self.transport = MqueueTransport(
            kw['queue'], self._on_envelope, peer_queue=kw.get('peer_queue'), route=self.route,
            mode=kw.get('queue_mode', 0o600), group=kw.get('group'),
            max_messages=kw.get('max_messages'), max_message_size=kw.get('max_message_size'),
            poison_pill=self.runtime.poison_pill,
            send_timeout=kw.get('send_timeout', self.runtime.send_timeout),
            hold_timeout=self.runtime.send_timeout,
            peer_uids=None if uids is None else frozenset(int(u) for u in uids),
            on_failure=self.transport_failed)
        self.transport.start(loop=None if kw.get('transport_thread', False)
                             else self.runtime.inbox)

    def _on_envelope(self, envelope: dict[str, Any]) -> None:
        """Deliver an envelope to its recipient head at once, or raise saying why not."""
        # QueueFull at once makes the transport hold the message and offer it again: this
        # thread never waits for its own queue.
        self.deliver(envelope, timeout=0)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the peer's queue."""
        self.transport.send(envelope)

    def close_transport(self) -> None:
        """Stop reading and remove our queue."""
        transport = getattr(self, 'transport', None)
        if transport is not None:
            transport.stop()

