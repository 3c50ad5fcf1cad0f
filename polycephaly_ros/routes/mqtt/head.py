"""The MQTT route as a head: :class:`MqttRouteHead` owns one :class:`~.transport.MqttTransport`.

The route head's contract (inbound delivery, replies by ``via``, bounces, ``remote`` names) is
in :mod:`polycephaly_ros.routes.base`; the topics are in :mod:`.topics`. This is the only module
of the route that imports the head machinery.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ...errors import ConfigurationError
from ..base import RouteHead
from ..framing import MAX_FRAME
from .outbox import Outbox
from .topics import Topics
from .transport import MqttTransport, read_password

#: Header an outbound envelope may carry to be published retained (it is not sent).
RETAIN = 'retain'


class MqttRouteHead(RouteHead):
    """A head joining this application to an MQTT broker.

    kwargs (from add_process): ``robot`` (this application's id on the broker, required),
    ``host`` ('127.0.0.1'), ``port`` (1883; 8883 is usual with TLS), ``prefix``
    ('polycephaly'), ``protocol`` (5, or 3 for MQTT 3.1.1), ``qos`` (1), ``keepalive`` (30 s),
    ``client_id`` ('<prefix>-<robot>': keep it stable, the persistent session is under it),
    ``session_expiry`` (3600 s the broker keeps the session while this application is away),
    ``backoff`` ((0.1, 5.0) s between reconnect attempts, doubling), ``outbox`` (10000
    envelopes waiting for the broker), ``outbox_file`` (None: in memory; a path keeps them
    across restarts), ``max_payload`` (:data:`MAX_FRAME` bytes), ``dedupe`` (10000 message ids
    remembered), ``tls`` ({'ca_file', 'cert_file', 'key_file'}), ``username``,
    ``password_file`` (its first line), ``peer`` (the id of the application that ``remote``
    names live in), ``remote``, ``route`` ('mqtt').

    Inbound envelopes go to the head their topic names with ``route='mqtt'``; replies go back
    to the request's reply topic. An envelope to a ``remote`` name goes to that head's inbox
    on ``peer``; any other outbound envelope goes to ``<prefix>/<robot>/out/<recipient>``,
    retained if it carries ``retain=True``. Threading: the transport runs in paho's network
    thread, which delivers inbound envelopes; transmit() is safe from any thread.
    """

    route = 'mqtt'
    transmit_from_any_thread = True  # MqttTransport.send() is thread-safe
    transport: MqttTransport  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check the broker settings; return the remote names."""
        Topics(kwargs.get('prefix', 'polycephaly'), kwargs.get('robot', ''))
        if kwargs.get('remote') and not kwargs.get('peer'):
            raise ConfigurationError(f'{cls.__name__}: remote names need peer=<the id of the '
                                     'application they live in>')
        if kwargs.get('peer'):
            Topics(kwargs.get('prefix', 'polycephaly'), kwargs['peer'])
        if kwargs.get('protocol', 5) not in (3, 5) or kwargs.get('qos', 1) not in (0, 1):
            raise ConfigurationError(f'{cls.__name__}: protocol is 3 or 5 and qos 0 or 1, not '
                                     f'{kwargs.get("protocol")!r} and {kwargs.get("qos")!r}')
        if not 1 <= int(kwargs.get('outbox', 10_000)) <= 60_000:
            raise ConfigurationError(f'{cls.__name__}: outbox holds 1..60000 envelopes (MQTT '
                                     'message ids are 16 bits)')
        for key in ('ca_file', 'cert_file', 'key_file'):
            path = (kwargs.get('tls') or {}).get(key)
            if path is not None and not os.path.isfile(path):
                raise ConfigurationError(f'{cls.__name__}: tls {key} {path!r} is no file')
        return super().configure(kwargs)

    @property
    def connected(self) -> bool:
        """Tell whether the route is connected to the broker now."""
        transport = getattr(self, 'transport', None)
        return transport is not None and transport.connected

    def open_transport(self) -> None:
        """Start connecting to the broker, in paho's network thread."""
        kw = self.kwargs
        self.transport = MqttTransport(
            self._on_envelope, robot=kw['robot'], host=kw.get('host', '127.0.0.1'),
            port=kw.get('port', 1883), prefix=kw.get('prefix', 'polycephaly'),
            client_id=kw.get('client_id'), protocol=kw.get('protocol', 5), qos=kw.get('qos', 1),
            keepalive=kw.get('keepalive', 30), session_expiry=kw.get('session_expiry', 3600),
            tls=kw.get('tls'), username=kw.get('username'),
            password=read_password(kw.get('password_file')),
            backoff=tuple(kw.get('backoff', (0.1, 5.0))),
            outbox=Outbox(int(kw.get('outbox', 10_000)), kw.get('outbox_file')),
            max_payload=kw.get('max_payload', MAX_FRAME), dedupe=kw.get('dedupe', 10_000),
            route=self.route, poison_pill=self.runtime.poison_pill)
        self._remote = set(type(self).configure(kw))
        self.transport.start()

    def _on_envelope(self, envelope: dict[str, Any]) -> None:
        """Deliver an inbound envelope (paho's thread), waiting up to the bus's send timeout."""
        # A reply echoes its request's headers: an outsider's 'retain' would make it retained.
        envelope.pop(RETAIN, None)
        self.deliver(envelope)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Publish an envelope: to a remote name's inbox on peer, or as the module doc says."""
        retain = bool(envelope.pop(RETAIN, False))
        recipient = envelope['recipient']
        topic = (self.transport.topics.inbox(recipient, self.kwargs['peer'])
                 if recipient in self._remote else None)
        self.transport.send(envelope, topic, retain)

    def close_transport(self) -> None:
        """Say offline, disconnect and stop reconnecting."""
        transport = getattr(self, 'transport', None)
        if transport is not None:
            transport.close()
