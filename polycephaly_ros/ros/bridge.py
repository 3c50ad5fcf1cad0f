"""The ROS bridge: every head's inbox topics, and publishing envelopes to outside names.

The scheme (usable by any ROS node, without this library)
---------------------------------------------------------
Every head of every application subscribes, with its own node, to two *inbox topics* named
after it, relative to the application's namespace (``Application(namespace='/robot')``):

==================================  ==============================  ==========================
topic                               type                            carries
==================================  ==============================  ==========================
``<ns>/polycephaly/<head>/inbox``       ``polycephaly_ros/msg/Envelope``  typed envelope
``<ns>/polycephaly/<head>/inbox_json``  ``std_msgs/msg/String``           one JSON envelope object
==================================  ==============================  ==========================

An envelope arriving on either topic is converted (:mod:`polycephaly_ros.ros.convert`), checked
(:func:`polycephaly_ros.codec.check`: the poison pill and every ``polycephaly.*`` control
subject are refused, core headers are type-checked), its ``route`` set to ``"ros"`` and its
``via`` header dropped, and it is put in the head's own inbox unchanged otherwise (message id,
thread id and thread index are kept, so ``wait_for_reply`` works across the graph). Filters
see it on route ``"ros"``: ``add_filter(cb, route='ros', ...)`` or ``route=None`` for any.

Sending to a recipient that is no head of the application (and names no route head in a
``via`` header) publishes the typed envelope on ``<ns>/polycephaly/<recipient>/inbox``, or,
when the recipient subscribes only to ``<ns>/polycephaly/<recipient>/inbox_json`` (a client
that cannot build our message type), the JSON text there. A
reply to a plain ROS node therefore goes to the inbox named by its ``sender``, and two
applications sharing a namespace (say a system service and a touchscreen client, in separate
processes or on separate machines) talk by head name, replies included. Head names must
therefore be unique among the applications of one namespace.

A send waits at most the application's ``send_timeout`` for a subscriber of the recipient's
inbox topics to be matched (the publishers' *matched* events, re-checked with
``get_subscription_count()``); without one it raises :class:`Unreachable` (both a
:class:`RecipientUnavailable` and an :class:`UnknownRecipient`) naming the topic, instead of
publishing into the void. One publisher per recipient is kept (two for JSON-only ones).

QoS of the inbox topics: RELIABLE, KEEP_ALL, VOLATILE
-----------------------------------------------------
* RELIABLE: envelopes are mail; a lost one is a lost request or a lost reply.
* KEEP_ALL: with KEEP_LAST a reliable writer overwrites samples the reader has not
  acknowledged yet, so a burst faster than the reader silently drops envelopes (38-92 % lost in
  floods, measured). With KEEP_ALL the writer keeps every unacknowledged sample; when its
  history is full ``publish()`` blocks and then raises ``RCLError``. The sender retries until
  its send timeout and then raises :class:`QueueFull`: back-pressure, never silent loss. On the
  receiving side the head takes a message only when its bounded queue has room; the others
  wait in the subscription, which slows the reader and so the writer.
* VOLATILE: a late joiner must not receive old requests or replies meant for a previous run.
  (A peer publishing with TRANSIENT_LOCAL still matches; one subscribing with TRANSIENT_LOCAL
  or BEST_EFFORT publishers do not, and that is reported.)

Incompatible QoS from a peer is logged at ERROR level, naming the topic and the policy, by
event callbacks on both the subscriptions and the publishers.

Errors from the graph
---------------------
Bad JSON, a missing or wrongly typed header, a recipient that is not the head owning the
inbox, a refused (control) subject, or a head that has stopped: the envelope is dropped with a
WARNING naming the problem, and when it carries a usable ``sender`` an error envelope
(:func:`polycephaly_ros.codec.error_envelope`: subject ``"error"``, sender ``"polycephaly"``,
body ``{"error": reason}``, same thread, index + 1) is published to
``<ns>/polycephaly/<sender>/inbox``. Error envelopes are sent from a helper thread, so a
sender that does not listen cannot stall the head. The application keeps running.

Threading: each head takes from its own inbox topics in its own thread (:class:`RosInbox`);
the process's rclpy executor never handles them, so an envelope from the graph reaches the
head's filters with no thread hop in between, and a slow callback elsewhere in the process
does not hold the head's mail back. The outbox may be called from any thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .. import codec
from ..envelope import normalize_name
from ..errors import EnvelopeError, QueueFull, RecipientUnavailable, UnknownRecipient, \
    Unreachable
from . import convert, native
from .subscriptions import HeadSubscriptions

if TYPE_CHECKING:
    from ..bus import Bus
    from ..runtime import HeadRuntime

ROUTE = convert.ROUTE
_log = logging.getLogger('polycephaly_ros.ros.bridge')


def inbox_topic(name: str) -> str:
    """Return the (relative) typed inbox topic of a head or ROS peer name."""
    return f'polycephaly/{name}/inbox'


def inbox_json_topic(name: str) -> str:
    """Return the (relative) JSON inbox topic of a head name."""
    return f'polycephaly/{name}/inbox_json'


def inbox_qos() -> Any:
    """Return the QoS of inbox topics: RELIABLE, KEEP_ALL, VOLATILE (see the module docstring)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def _incompatible(kind: str, topic: str) -> Any:
    def report(event: Any) -> None:
        from rclpy.qos import qos_policy_name_from_kind

        _log.error('incompatible QoS on %s %s: policy %s (seen %d time(s)); the inbox topics '
                   'need RELIABLE and VOLATILE', kind, topic,
                   qos_policy_name_from_kind(event.last_policy_kind), event.total_count)
    return report


class _Link:
    """The publishers to one outside name's inbox topics: typed, and JSON once it is needed."""

    __slots__ = ('node', 'publisher', 'json_publisher', 'matched', 'topic', 'json_topic', 'lock')

    def __init__(self, node: Any, name: str) -> None:
        self.node = node
        self.matched = threading.Event()
        self.lock = threading.Lock()
        self.publisher = self._create(convert.envelope_type(), inbox_topic(name))
        self.topic = self.publisher.topic_name  # fully resolved, for messages
        self.json_publisher: Any = None
        self.json_topic = node.resolve_topic_name(inbox_json_topic(name))

    def _create(self, kind: type, topic: str) -> Any:
        from rclpy.event_handler import PublisherEventCallbacks

        events = PublisherEventCallbacks(
            matched=self._on_matched,
            incompatible_qos=_incompatible('publisher of', self.node.resolve_topic_name(topic)))
        return self.node.create_publisher(kind, topic, inbox_qos(), event_callbacks=events)

    def _on_matched(self, info: Any) -> None:
        if info.current_count > 0:
            self.matched.set()

    def ready(self, deadline: float) -> Any:
        """Return the publisher to use, once the name has a subscriber (None at deadline).

        The typed inbox is preferred; a name with only a JSON inbox subscriber (a client that
        cannot build our message type) gets the JSON one. Counts are asked again every 50 ms,
        so this also works when called from the executor thread itself (whose matched
        callbacks cannot run meanwhile).
        """
        from std_msgs.msg import String

        while True:
            self.matched.clear()
            if self.publisher.get_subscription_count():
                return self.publisher
            if self.json_publisher is not None:
                if self.json_publisher.get_subscription_count():
                    return self.json_publisher
            elif self.node.count_subscribers(self.json_topic):
                with self.lock:
                    if self.json_publisher is None:
                        self.json_publisher = self._create(String, self.json_topic)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.matched.wait(min(remaining, 0.05))


class RosOutbox:
    """Publish envelopes to outside names' inbox topics; one per process, set as Bus.external."""

    def __init__(self, node: Any, bus: Bus) -> None:
        self.node = node
        self._bus = bus
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()
        self._errors: queue.SimpleQueue | None = None
        self.sent = 0

    def __call__(self, envelope: dict) -> None:
        self.send(envelope, self._bus.send_timeout)

    def _link(self, name: str) -> _Link:
        link = self._links.get(name)
        if link is None:
            with self._lock:
                link = self._links.get(name)
                if link is None:
                    link = self._links[name] = _Link(self.node, name)
        return link

    def send(self, envelope: dict, timeout: float) -> None:
        """Publish envelope on its recipient's inbox topic, or raise saying why it cannot."""
        name = envelope['recipient']
        try:
            name = normalize_name(name)
        except EnvelopeError:
            raise UnknownRecipient(f'{name!r} is no head of this application and cannot name a '
                                   'ROS inbox topic (use a letter, then letters, digits or _)'
                                   ) from None
        msg = convert.to_message(envelope)  # a body that is not JSON-able fails here
        link = self._link(name)
        deadline = time.monotonic() + timeout
        publisher = link.ready(deadline)
        if publisher is None:
            heads = ', '.join(self._bus.directory.names)
            raise Unreachable(
                f'no head named {name!r} in this application (heads: {heads}), and no subscriber '
                f'of ROS topic {link.topic} (or {link.json_topic}) appeared within {timeout:g} s; '
                f'envelope {envelope.get("subject")!r} not sent')
        if publisher is not link.publisher:
            msg = convert.to_json_string(envelope)
        full = native.rcl_error()
        while True:
            try:
                publisher.publish(msg)
                self.sent += 1
                return
            except full as exc:  # KEEP_ALL history full: publish() blocked, gave up
                if time.monotonic() >= deadline:
                    raise QueueFull(f'ROS topic {link.topic} did not take envelope '
                                    f'{envelope.get("subject")!r} within {timeout:g} s (the '
                                    f'reader is not keeping up): {exc}') from exc

    # -- error envelopes, sent from a helper thread -----------------------------------------
    def send_error(self, error: dict) -> None:
        """Send an error envelope to the outside sender it answers, without blocking."""
        if self._errors is None:
            with self._lock:
                if self._errors is None:
                    self._errors = queue.SimpleQueue()
                    threading.Thread(target=self._error_loop, name='ros-bridge-errors',
                                     daemon=True).start()
        self._errors.put(error)

    def _error_loop(self) -> None:
        while True:
            error = self._errors.get()
            try:
                self.send(error, self._bus.send_timeout)
            except Exception as exc:  # noqa: BLE001 - best effort: the warning was logged
                _log.warning('could not send the error envelope to %r: %s',
                             error.get('recipient'), exc)


class RosInbox:
    """The two inbox subscriptions of one head, taken from by the head's own thread.

    The executor never sees them (:class:`~polycephaly_ros.ros.subscriptions.HeadSubscriptions`):
    rcl wakes the head's inbox, and the head's thread takes, checks and queues the envelopes
    itself, between its other work. While the head's queue is full the rest stay in the
    subscription (KEEP_ALL), which holds the writer back.

    Threading contract: opened and closed by the head's runtime, in the head's thread;
    everything else runs from the inbox's poll(), in the head's thread too.
    """

    def __init__(self, runtime: HeadRuntime, outbox: RosOutbox) -> None:
        from std_msgs.msg import String

        self.runtime = runtime
        self.outbox = outbox
        self.delivered = 0
        self.refused = 0
        self._subscriptions = HeadSubscriptions(runtime.inbox)
        #: The resolved topic names, each with the reader that checks its messages.
        self.topics: dict[str, Callable[[Any, str], dict | None]] = {}
        node = runtime.node
        for topic, kind, read in ((inbox_topic(runtime.name), convert.envelope_type(),
                                   self._read_typed),
                                  (inbox_json_topic(runtime.name), String, self._read_json)):
            resolved = node.resolve_topic_name(topic)
            self._subscriptions.subscribe(
                node, kind, topic, inbox_qos(),
                lambda msg, read=read, resolved=resolved: self._offer(read(msg, resolved)),
                _incompatible('subscription to', resolved))
            self.topics[resolved] = read

    def _offer(self, envelope: dict | None) -> bool:
        """Queue a checked envelope (None: refused already); False while the queue is full."""
        if envelope is None:
            return True
        try:
            self.runtime.deliver(envelope, timeout=0)  # (no wake-up, no copy: its own inbox)
        except QueueFull:
            return False
        except RecipientUnavailable:  # the head is stopping: its last read is under way
            self._refuse(f'head {self.runtime.name!r} has stopped', envelope,
                         f'the inbox topics of {self.runtime.name!r}')
            return True
        self.delivered += 1
        return True

    def _read_typed(self, msg: Any, topic: str) -> dict | None:
        try:
            envelope = convert.from_message(msg, poison_pill=self.runtime.poison_pill)
        except EnvelopeError as exc:
            self._refuse(str(exc), convert.raw_fields(msg), topic)
            return None
        return self._addressed(envelope, topic)

    def _read_json(self, msg: Any, topic: str) -> dict | None:
        try:
            envelope = convert.from_json_text(msg.data, poison_pill=self.runtime.poison_pill)
        except EnvelopeError as exc:
            try:
                original = codec.parse(msg.data)
            except EnvelopeError:
                original = None
            self._refuse(str(exc), original, topic)
            return None
        return self._addressed(envelope, topic)

    def _addressed(self, envelope: dict, topic: str) -> dict | None:
        name = self.runtime.name
        if envelope['recipient'] != name:
            self._refuse(f'recipient {envelope["recipient"]!r} is not {name!r}, the head whose '
                         f'inbox this is', envelope, topic)
            return None
        return envelope

    def close(self) -> None:
        """Stop taking, answer what is still waiting with errors, and unsubscribe."""
        def refuse(topic: str, msg: Any) -> None:
            envelope = self.topics[topic](msg, topic)
            if envelope is not None:
                self._refuse(f'head {self.runtime.name!r} has stopped', envelope, topic)
        self._subscriptions.close(self.runtime.node, refuse)

    def _refuse(self, reason: str, original: dict | None, topic: str) -> None:
        self.refused += 1
        sender = (original or {}).get('sender')
        usable = isinstance(sender, str) and bool(sender)
        if usable:
            try:
                normalize_name(sender)
            except EnvelopeError:
                usable = False
        _log.warning('refused an envelope on %s from %s: %s', topic,
                     repr(sender) if usable else 'an unknown sender (no error reply)', reason)
        if usable:
            self.outbox.send_error(codec.error_envelope(reason, original))


def open_ros_inbox(runtime: HeadRuntime) -> RosInbox:
    """Subscribe the head's node to its inbox topics and let its bus publish to outside names.

    Called by the head runtime for every head that has a node. The first head of a process
    (the main head, or the only head of a head process) sets the bus's ROS bridge; its node
    publishes for every head of the process.
    """
    bus = runtime.bus
    outbox = bus.ros_bridge
    if not isinstance(outbox, RosOutbox):
        outbox = RosOutbox(runtime.node, bus)
        bus.set_ros_bridge(outbox)
    return RosInbox(runtime, outbox)
