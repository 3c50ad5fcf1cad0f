"""The ROS bridge into a head: its inbox topics, read by the head's own thread.

The scheme (usable by any ROS node, without this library)
---------------------------------------------------------
Every head of every application subscribes, with its own node, to two *inbox topics* named
after it, relative to the application's namespace (``Application(namespace='/robot')``):
``<ns>/polycephaly/<head>/inbox`` (``polycephaly_ros/msg/Envelope``) and
``<ns>/polycephaly/<head>/inbox_json`` (``std_msgs/msg/String``, one JSON envelope object);
their QoS is in :mod:`.topics`. Sending to a name that is no head of the application goes out
through :mod:`.outbox` onto that name's inbox topics, so a reply to a plain ROS node goes to
the inbox named by its ``sender``, and two applications sharing a namespace talk by head name,
replies included (head names must be unique among the applications of one namespace).

An envelope arriving on either topic is converted (:mod:`polycephaly_ros.ros.convert`) and
checked once, at this edge (:func:`polycephaly_ros.codec.check`: ``sender`` required and
name-shaped, headers in range, the poison pill and every ``polycephaly.*`` control subject
refused); a ``sender`` that names a head of this application is refused too (nobody outside
speaks for a head). Its ``route`` is set to ``"ros"``, its ``via`` header dropped, and it is put
in the head's own inbox otherwise unchanged (message id, thread id and thread index are kept,
so ``wait_for_reply`` works across the graph). Filters see it on route ``"ros"``:
``add_filter(cb, route='ros', ...)`` or ``route=None`` for any.

Errors from the graph
---------------------
Bad JSON, a missing or out-of-range header, a recipient that is not the head owning the
inbox, a refused subject, or a head that has stopped: the envelope is dropped with a WARNING
(a few per period) naming the problem, and when it carries a usable ``sender`` (name-shaped,
and no head's: an outsider cannot aim error envelopes at a head) an error
envelope (:func:`polycephaly_ros.codec.error_envelope`: subject ``"error"``, sender
``"polycephaly"``, body ``{"error": reason}``, same thread, index + 1) goes to that sender's
inbox as an answer, which never makes the head wait (:mod:`.outbox`). The application keeps
running.

Threading: each head takes from its own inbox topics in its own thread (:class:`RosInbox`);
the process's rclpy executor never handles them, so an envelope from the graph reaches the
head's filters with no thread hop in between, and a slow callback elsewhere in the process
does not hold the head's mail back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from .. import codec
from ..envelope import normalize_name
from ..errors import EnvelopeError, QueueFull, RecipientUnavailable
from ..throttle import Throttle
from . import convert
from .outbox import RosOutbox
from .subscriptions import HeadSubscriptions
from .topics import inbox_json_topic, inbox_qos, inbox_topic, report_incompatible

if TYPE_CHECKING:
    from ..runtime import HeadRuntime

ROUTE = convert.ROUTE
_log = logging.getLogger('polycephaly_ros.ros.bridge')


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
        self._throttle = Throttle(_log)
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
                report_incompatible('subscription to', resolved))
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
        if self.runtime.knows(envelope['sender'].lower()):
            self._refuse(f'sender {envelope["sender"]!r} is a head of this application; '
                         'nobody outside speaks for it', envelope, topic)
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
        if usable:  # a name to answer, and not a head's: no error from outside goes to a head
            try:
                usable = not self.runtime.knows(normalize_name(sender))
            except EnvelopeError:
                usable = False
        self._throttle.warning('refused', 'refused an envelope on %s from %s: %s', topic,
                               repr(sender) if usable else 'a sender not answered (no error reply)',
                               reason)
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

        def close() -> None:  # before the node goes, after the heads' ROS inboxes
            bus.set_ros_bridge(None)
            outbox.close()
        runtime.own(close, 'the ROS outbox')
    return RosInbox(runtime, outbox)
