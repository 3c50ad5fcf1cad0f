"""The MQTT route's transport: one paho-mqtt 2.x client that carries envelopes as JSON.

:class:`MqttTransport` connects to a broker (MQTT 5 by default, 3.1.1 selectable), keeps a
persistent session (``clean_start`` off, a session expiry: the broker keeps what arrives for
this application while it is away), subscribes to this application's inboxes and publishes
its presence; topics are in :mod:`.topics`. It reconnects by itself with doubling backoff,
from ``backoff[0]`` to ``backoff[1]`` seconds, and connects whenever the broker comes, even
if it was down at start-up.

Inbound
    Each message on ``<prefix>/<robot>/<head>/inbox`` is checked once, here: size, topic, JSON
    (never anything else), :func:`polycephaly_ros.codec.check` (control subjects and the
    poison pill refused, ``route`` set), and its ``recipient`` must be the topic's head (filled
    in from the topic when absent). A duplicate (a message id among the last ``dedupe`` seen:
    QoS 1 is at least once) is dropped and counted. The reply topic (MQTT 5's response topic,
    or the envelope's ``reply_to`` header) and correlation data are remembered by thread id,
    so replies on that thread go there. ``on_envelope(envelope)`` then gets it; if it raises a
    PolycephalyError, or the message was refused, an ``error`` envelope naming what was wrong
    goes back to the reply topic (else to ``out/<sender>``; else it is only logged). The
    message is acknowledged (manual PUBACK) only after that, so one the application never
    took is sent again by the broker.

Outbound
    :meth:`MqttTransport.send` publishes at QoS 1 (by default) to the reply topic remembered
    for the envelope's thread, to ``topic`` if given (a request to another application's head:
    its response topic is the sender's own inbox here), or else to ``out/<recipient>``. Every
    message takes a place in the :class:`~.outbox.Outbox` until the broker acknowledges it; a
    full outbox raises QueueFull. Sent while the broker is unreachable, it goes out in order
    on reconnect.

Threading: paho's network thread (``loop_start``) runs every callback, so ``on_envelope``
runs there, one message at a time (a slow one holds up the others; the broker's receive
maximum bounds what waits). :meth:`send` may be called from any thread. Counters are in
:attr:`MqttTransport.stats`.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Mapping

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ... import codec
from ...envelope import new_id
from ...errors import EnvelopeError, PolycephalyError, RecipientUnavailable, StateError
from ..framing import MAX_FRAME
from .outbox import Outbox, Record
from .properties import ReplyProperties
from .topics import Topics

_log = logging.getLogger(__name__)

ONLINE, OFFLINE = b'online', b'offline'


class _Recent(collections.OrderedDict):
    """The last `size` keys (and values) put in; older ones are forgotten."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any = None) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Set TCP_NODELAY on the broker connection, at every (re)connect.

    paho writes a PUBACK and then, soon after, a head's reply: without it the reply waits
    for the broker's delayed ACK (40 ms on Linux).
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttTransport:
    """Carry envelopes over one MQTT connection; see the module documentation."""

    def __init__(
        self,
        on_envelope: Callable[[dict[str, Any]], None],
        *,
        robot: str,
        host: str = '127.0.0.1',
        port: int = 1883,
        prefix: str = 'polycephaly',
        client_id: str | None = None,
        protocol: int = 5,
        qos: int = 1,
        keepalive: int = 30,
        persistent: bool = True,
        session_expiry: int = 3600,
        presence: bool = True,
        tls: Mapping[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
        outbox: Outbox | None = None,
        max_payload: int = MAX_FRAME,
        dedupe: int = 10_000,
        route: str = 'mqtt',
        poison_pill: str | None = None,
    ) -> None:
        self.topics = Topics(prefix, robot)
        self.host, self.port, self.qos, self.protocol = host, int(port), int(qos), int(protocol)
        self.client_id = client_id or f'{prefix.replace("/", "-")}-{robot}'
        self.keepalive, self.persistent, self.session_expiry = keepalive, persistent, session_expiry
        self.presence, self.tls, self.backoff = presence, tls, backoff
        self.username, self.password = username, password
        self.outbox = outbox if outbox is not None else Outbox()
        self.max_payload, self.route, self.poison_pill = max_payload, route, poison_pill
        self._on_envelope = on_envelope
        self._seen = _Recent(dedupe)          # message ids handled (network thread only)
        self._replies = _Recent(dedupe)       # thread id -> (reply topic, correlation data)
        self._lock = threading.Lock()         # _replies, _keys, _early; never held over paho
        self._keys: dict[int, int | None] = {}  # paho mid -> outbox key, until acknowledged
        self._early: set[int] = set()         # mids acknowledged before _keys knew them
        self._client: paho.Client | None = None
        self._closing = False
        #: Why the broker refused the last connection (None once connected).
        self.refusal: str | None = None
        #: Set while connected to the broker.
        self.connected_event = threading.Event()
        #: What happened so far: received, delivered, duplicates, refused, published, acked,
        #: rejected_by_broker, connects, lost_at_close.
        self.stats: collections.Counter[str] = collections.Counter()

    @property
    def connected(self) -> bool:
        """Tell whether the transport is connected to the broker now."""
        return self.connected_event.is_set()

    # -- life ------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting (and reconnecting) in paho's network thread."""
        if self._client is not None:
            raise StateError(f'the MQTT transport of {self.topics.robot!r} is already running')
        v5 = self.protocol == 5
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                             clean_session=None if v5 else not self.persistent)
        client.manual_ack_set(True)
        client.reconnect_delay_set(*self.backoff)
        client.on_connect, client.on_disconnect = self._connected, self._disconnected
        client.on_message, client.on_publish = self._received, self._acknowledged
        client.on_connect_fail = self._connect_failed
        client.on_socket_open = _no_delay
        if self.presence:
            client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        if self.tls:
            client.tls_set(ca_certs=self.tls.get('ca_file'), certfile=self.tls.get('cert_file'),
                           keyfile=self.tls.get('key_file'))
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        self._client = client
        restored = self.outbox.pending()
        for key, record in restored:  # what the last run left: first, in order
            self._hand_over(key, record)
        if restored:
            _log.info('MQTT %s: %d envelopes left unacknowledged by the last run will be sent '
                      'again', self.topics.robot, len(restored))
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry if self.persistent else 0
            properties.ReceiveMaximum = 100
        client.connect_async(self.host, self.port, self.keepalive, properties=properties,
                             clean_start=not self.persistent if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY)
        client.loop_start()

    def close(self) -> None:
        """Say ``offline``, disconnect and stop; count what the broker never acknowledged."""
        client, self._closing = self._client, True
        if client is None:
            return
        if self.connected:
            self.outbox.wait_empty(1.0)  # what is in flight, a moment to be acknowledged
        if self.presence and self.connected:
            try:
                client.publish(self.topics.status, OFFLINE, qos=1, retain=True).wait_for_publish(1.0)
            except (RuntimeError, ValueError) as exc:
                _log.debug('could not say offline: %s', exc)
        client.disconnect()
        client.loop_stop()
        left = len(self.outbox)
        if left:
            self.stats['lost_at_close'] += 0 if self.outbox.path else left
            _log.warning('MQTT %s: closed with %d envelopes not acknowledged by the broker (%s)',
                         self.topics.robot, left, f'kept in {self.outbox.path} for the next run'
                         if self.outbox.path else 'lost: no outbox file')
        self.outbox.close()
        self._client = None

    def __enter__(self) -> MqttTransport:
        """Start the transport and return it."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the transport."""
        self.close()

    # -- outbound, any thread ----------------------------------------------------------
    def send(self, envelope: dict[str, Any], topic: str | None = None,
             retain: bool = False) -> dict[str, Any]:
        """Publish an envelope (see the module doc) and return it as sent, ids filled in."""
        envelope = {'messageid': new_id(), 'threadid': new_id(), 'threadindex': 1,
                    'time': time.time(), **envelope}
        response = correlation = None
        if topic is None:
            with self._lock:
                topic, correlation = self._replies.get(envelope['threadid'], (None, None))
            topic = topic or self.topics.out(envelope['recipient'])
        else:
            response = self.topics.inbox(str(envelope['sender']).lower())
            correlation = str(envelope['messageid']).encode()
            if self.protocol != 5:
                envelope['reply_to'], response, correlation = response, None, None
        payload = codec.encode(envelope)
        if len(payload) > self.max_payload:
            raise EnvelopeError(f'the envelope is {len(payload)} bytes as JSON; the MQTT route '
                                f'takes at most {self.max_payload}')
        record = Record(topic, payload, retain, response, correlation)
        self._hand_over(self.outbox.add(record), record)
        return envelope

    def flush(self, timeout: float) -> bool:
        """Wait until the broker acknowledged everything sent; tell whether it did in time."""
        return self.outbox.wait_empty(timeout)

    def _hand_over(self, key: int | None, record: Record) -> None:
        """Give record to paho (which sends it now, or once connected); track its ack."""
        client = self._client
        if client is None:
            if key is not None:
                self.outbox.done(key)
            raise StateError('the MQTT transport is not running')
        properties = None
        if record.response_topic or record.correlation:
            properties = ReplyProperties(record.response_topic, record.correlation)
        try:
            info = client.publish(record.topic, record.payload, qos=self.qos,
                                  retain=record.retain, properties=properties)
            refused = None if info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN) else (
                paho.error_string(info.rc))
        except ValueError as exc:  # (a topic paho will not publish to)
            refused = str(exc)
        if refused is not None:
            if key is not None:
                self.outbox.done(key)
            raise RecipientUnavailable(f'MQTT publish to {record.topic[:80]!r} failed: {refused}')
        self.stats['published'] += 1
        with self._lock:
            early = info.mid in self._early
            if early:
                self._early.discard(info.mid)
            else:
                self._keys[info.mid] = key
        if early and key is not None:
            self.outbox.done(key)

    # -- paho's network thread ---------------------------------------------------------
    def _acknowledged(self, client: paho.Client, userdata: Any, mid: int,
                      reason: paho.ReasonCode, properties: Any) -> None:
        with self._lock:
            if mid not in self._keys:
                self._early.add(mid)
                return
            key = self._keys.pop(mid)
        if key is not None:
            self.outbox.done(key)
        self.stats['acked'] += 1
        if reason.is_failure:
            self.stats['rejected_by_broker'] += 1
            _log.error('MQTT %s: the broker refused a message: %s', self.topics.robot, reason)

    def _connected(self, client: paho.Client, userdata: Any, flags: Any,
                   reason: paho.ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            if self.refusal != str(reason):  # once per reason, not at every retry
                _log.error('MQTT %s: %s:%d refused the connection: %s', self.topics.robot,
                           self.host, self.port, reason)
            self.refusal = str(reason)
            return
        self.refusal = None
        self.stats['connects'] += 1
        client.subscribe(self.topics.inboxes, qos=self.qos)
        if self.presence:
            self._hand_over(None, Record(self.topics.status, ONLINE, retain=True))
        self.connected_event.set()
        _log.info('MQTT %s: connected to %s:%d (session %s)', self.topics.robot, self.host,
                  self.port, 'resumed' if flags.session_present else 'new')

    def _connect_failed(self, client: paho.Client, userdata: Any) -> None:
        if self.refusal is None:  # once until it connects (TLS, a wrong port, a broker down)
            _log.warning('MQTT %s: cannot connect to %s:%d%s; retrying (every %g s at most)',
                         self.topics.robot, self.host, self.port,
                         ' over TLS' if self.tls else '', self.backoff[1])
        self.refusal = self.refusal or 'the connection failed'

    def _disconnected(self, client: paho.Client, userdata: Any, flags: Any,
                      reason: paho.ReasonCode, properties: Any) -> None:
        was = self.connected_event.is_set()
        self.connected_event.clear()
        if was and not self._closing:
            _log.warning('MQTT %s: lost the broker at %s:%d (%s); reconnecting',
                         self.topics.robot, self.host, self.port, reason)

    def _received(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._receive(message)
        except Exception:  # a bug of ours: say so; the connection and the others go on
            _log.exception('MQTT %s: handling a message on %r failed', self.topics.robot,
                           message.topic)
        finally:
            client.ack(message.mid, message.qos)

    def _receive(self, message: paho.MQTTMessage) -> None:
        self.stats['received'] += 1
        properties = message.properties
        given = getattr(properties, 'ResponseTopic', None)
        correlation = getattr(properties, 'CorrelationData', None)
        obj: dict[str, Any] | None = None
        response: str | None = None  # a reply topic once checked (a refused one is never used)
        refused: EnvelopeError | None = None
        if given is not None:
            try:
                response = self.topics.check_reply_topic(given)
            except EnvelopeError as exc:
                refused = exc  # (said once the payload gave a sender to tell)
        try:
            if len(message.payload) > self.max_payload:
                raise EnvelopeError(f'the message is {len(message.payload)} bytes; the MQTT '
                                    f'route takes at most {self.max_payload}')
            head = self.topics.head_of(message.topic)
            obj = codec.parse(message.payload)
            given = obj.pop('reply_to', None)
            if refused is not None:
                raise refused
            if response is None and given is not None:
                response = self.topics.check_reply_topic(given)
            recipient = obj.setdefault('recipient', head)
            if isinstance(recipient, str) and recipient.lower() != head:
                raise EnvelopeError(f"header 'recipient' ({recipient[:40]!r}) is not the head "
                                    f"the topic names ({head!r})")
            envelope = codec.check(obj, route=self.route, poison_pill=self.poison_pill)
        except EnvelopeError as exc:
            self._refuse(str(exc), obj, response, correlation)
            return
        messageid = envelope['messageid']
        if messageid in self._seen:
            self.stats['duplicates'] += 1
            _log.debug('MQTT %s: dropped a duplicate of %s', self.topics.robot, messageid)
            return
        self._seen.put(messageid)
        if response is not None:
            with self._lock:
                self._replies.put(envelope['threadid'], (response, correlation))
        try:
            self._on_envelope(envelope)
        except PolycephalyError as exc:
            self._refuse(f'not delivered: {exc}', envelope, response, correlation)
            return
        self.stats['delivered'] += 1

    def _refuse(self, reason: str, original: dict[str, Any] | None, topic: str | None,
                correlation: bytes | None) -> None:
        """Count, log and answer a refused message with an error envelope where one can go."""
        self.stats['refused'] += 1
        error = codec.error_envelope(reason, original)
        if topic is None and error['recipient']:
            topic = self.topics.out(error['recipient'])
        _log.warning('MQTT %s: refused a message from %r: %s', self.topics.robot,
                     (original or {}).get('sender'), reason)
        if topic is None or (original or {}).get('subject') == 'error':
            return  # nowhere to answer, or an error about an error
        try:
            record = Record(topic, codec.encode(error), correlation=correlation)
            self._hand_over(self.outbox.add(record), record)
        except PolycephalyError as exc:
            _log.warning('MQTT %s: could not send that error back: %s', self.topics.robot, exc)


def read_password(path: str | os.PathLike[str] | None) -> str | None:
    """Return the first line of a password file (None for no file)."""
    if path is None:
        return None
    with open(path, encoding='utf-8') as file:
        return file.readline().rstrip('\n')
