"""The ROS outbox: envelopes to names that are no head of the application, on their inbox topics.

A name that is neither a head nor behind a route is a ROS peer (or another application's
head): the bus hands its envelopes here, and they are published on
``<ns>/polycephaly/<name>/inbox`` (or as JSON text on ``…/inbox_json`` when only that one has a
subscriber: a client that cannot build our message type). One outbox per process; its
publishers are kept for the most recently used :data:`LINKS` names and destroyed after that,
so one-off names cost nothing for long.

Sends wait, answers do not
    A head's own ``send()`` waits at most the send timeout for a subscriber of the name's inbox
    to be matched, then raises :class:`~polycephaly_ros.errors.Unreachable`, instead of
    publishing into the void; a full KEEP_ALL history raises ``QueueFull`` after the same
    timeout. An *answer* to a peer (a reply to an envelope that came from ROS, or an error
    envelope about one) never makes the head wait: if the peer's inbox is matched it is
    published at once, otherwise it is handed to the outbox's thread, which publishes it once
    a subscriber shows up in the graph within :data:`ANSWER_WAIT` seconds. A sender that does
    not listen (a ghost) costs a graph lookup, no publisher; at most :data:`PENDING` answers
    wait (the oldest is dropped beyond that), and every one dropped is counted (``dropped``)
    and logged, a few lines per period.

Threading contract: every method may be called from any thread; the answers that wait are
published by the outbox's own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from ..envelope import normalize_name
from ..errors import EnvelopeError, QueueFull, UnknownRecipient, Unreachable
from ..throttle import Throttle
from . import convert, native
from .topics import inbox_json_topic, inbox_qos, inbox_topic, report_incompatible

if TYPE_CHECKING:
    from ..bus import Bus

#: How many names keep their publishers (the most recently used ones).
LINKS = 128
#: How many answers may wait for their peer's inbox at once.
PENDING = 256
#: How long an answer waits for its peer's inbox to have a subscriber (seconds).
ANSWER_WAIT = 1.0
#: How often the answers set aside look for their peers again (seconds).
LOOK_AGAIN = 0.05
_log = logging.getLogger('polycephaly_ros.ros.outbox')


class _Link:
    """The publishers to one outside name's inbox topics: typed, and JSON once it is needed."""

    __slots__ = ('node', 'publisher', 'json_publisher', 'matched', 'topic', 'json_topic', 'lock',
                 'users')

    def __init__(self, node: Any, name: str) -> None:
        self.node = node
        self.matched = threading.Event()
        self.lock = threading.Lock()
        self.users = 0  # sends using it now (it is not destroyed meanwhile)
        self.publisher = self._create(convert.envelope_type(), inbox_topic(name))
        self.topic = self.publisher.topic_name  # fully resolved, for messages
        self.json_publisher: Any = None
        self.json_topic = node.resolve_topic_name(inbox_json_topic(name))

    def _create(self, kind: type, topic: str) -> Any:
        from rclpy.event_handler import PublisherEventCallbacks

        events = PublisherEventCallbacks(
            matched=self._on_matched,
            incompatible_qos=report_incompatible('publisher of',
                                                 self.node.resolve_topic_name(topic)))
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

    def destroy(self) -> None:
        """Destroy the publishers."""
        for publisher in (self.publisher, self.json_publisher):
            if publisher is not None:
                self.node.destroy_publisher(publisher)


class RosOutbox:
    """Publish envelopes to outside names' inbox topics; the bus's ROS bridge in one process."""

    def __init__(self, node: Any, bus: Bus) -> None:
        self.node = node
        self._bus = bus
        self._links: OrderedDict[str, _Link] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: deque[tuple[float, tuple[str, str] | None, dict]] = deque()
        self._idle = False
        self._closed = False
        self._prefix = node.get_namespace().rstrip('/') + '/'  # of the inbox topics
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._throttle = Throttle(_log)
        self.sent = 0
        #: Answers that were never published (their peer never listened, or too many waited).
        self.dropped = 0

    def __call__(self, envelope: dict, patient: bool = True) -> None:
        """Send envelope (patient: a head's own send) or answer with it (see the module doc)."""
        if patient:
            self.send(envelope, self._bus.send_timeout)
        else:
            self.answer(envelope)

    # -- links, a bounded cache ---------------------------------------------------------------
    def _take_link(self, name: str) -> _Link:
        with self._lock:
            link = self._links.get(name)
            if link is None:
                link = self._links[name] = _Link(self.node, name)
                self._evict()
            else:
                self._links.move_to_end(name)
            link.users += 1
            return link

    def _give_link(self, link: _Link) -> None:
        with self._lock:
            link.users -= 1

    def _evict(self) -> None:
        """Destroy the least recently used links beyond LINKS that nobody uses (lock held)."""
        for name in list(self._links)[:max(len(self._links) - LINKS, 0)]:
            if self._links[name].users == 0:
                self._links.pop(name).destroy()

    # -- a head's own sends -------------------------------------------------------------------
    def send(self, envelope: dict, timeout: float) -> None:
        """Publish envelope on its recipient's inbox topic, or raise saying why it cannot."""
        name = _topic_name(envelope['recipient'])
        msg = convert.to_message(envelope)  # a body that is not JSON-able fails here
        link = self._take_link(name)
        try:
            deadline = time.monotonic() + timeout
            publisher = link.ready(deadline)
            if publisher is None:
                heads = ', '.join(self._bus.directory.names)
                raise Unreachable(
                    f'no head named {name!r} in this application (heads: {heads}), and no '
                    f'subscriber of ROS topic {link.topic} (or {link.json_topic}) appeared '
                    f'within {timeout:g} s; envelope {envelope.get("subject")!r} not sent')
            self._publish(link, publisher, envelope, msg, deadline)
        finally:
            self._give_link(link)

    def _publish(self, link: _Link, publisher: Any, envelope: dict, msg: Any,
                 deadline: float) -> None:
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
                                    f'{envelope.get("subject")!r} in time (the reader is not '
                                    f'keeping up): {exc}') from exc

    # -- answers: never waited for ------------------------------------------------------------
    def answer(self, envelope: dict) -> None:
        """Publish an answer to a peer now if its inbox is matched, else let it wait aside."""
        try:
            name = _topic_name(envelope['recipient'])
        except UnknownRecipient as exc:
            self._drop(envelope, str(exc))
            return
        with self._lock:
            link = self._links.get(name)
            if link is not None:
                link.users += 1
        if link is not None:
            try:
                publisher = link.ready(0.0)
                if publisher is not None:
                    msg = convert.to_message(envelope)
                    self._publish(link, publisher, envelope, msg, time.monotonic() + 0.1)
                    return
            except (EnvelopeError, QueueFull) as exc:
                self._drop(envelope, str(exc))
                return
            finally:
                self._give_link(link)
        self._set_aside(envelope)

    def _set_aside(self, envelope: dict) -> None:
        with self._lock:
            if self._closed:
                reason, dropped = 'the application is stopping', envelope
            else:
                reason, dropped = f'more than {PENDING} answers were waiting', None
                if len(self._pending) >= PENDING:
                    dropped = self._pending.popleft()[2]
                self._pending.append((time.monotonic() + ANSWER_WAIT, None, envelope))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._answer_loop,
                                                    name='ros-answers', daemon=True)
                    self._thread.start()
                if self._idle:  # (a busy thread looks again by itself: no wake-up per answer)
                    self._wake.notify()
        if dropped is not None:
            self._drop(dropped, reason)

    def _answer_loop(self) -> None:
        """Publish the answers set aside once their peer listens; drop them after ANSWER_WAIT."""
        while True:
            with self._lock:
                self._idle = True
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                self._idle = False
                waiting = list(self._pending)
                self._pending.clear()
            later = []
            try:  # one graph lookup a pass: most peers set aside are ghosts with no topic at all
                known = {topic for topic, _ in self.node.get_topic_names_and_types()}
            except Exception:  # noqa: BLE001 - the node went: close() follows
                known = set()
            for deadline, topics, envelope in waiting:
                if topics is None:  # (the inbox topics in the node's namespace, no remapping)
                    inbox = f'{self._prefix}{inbox_topic(normalize_name(envelope["recipient"]))}'
                    topics = (inbox, f'{inbox}_json')
                if not self._deliver_aside(envelope, topics, deadline, known):
                    later.append((deadline, topics, envelope))
            if later:  # (looked at again in a while: graph lookups are not free)
                with self._lock:
                    self._pending.extendleft(reversed(later))
                time.sleep(LOOK_AGAIN)  # a pace, not a wait for an event: there is none

    def _deliver_aside(self, envelope: dict, topics: tuple[str, str], deadline: float,
                       known: set[str]) -> bool:
        """Try once; tell whether the answer is done with (published or dropped)."""
        try:
            if not any(t in known and self.node.count_subscribers(t) for t in topics):
                if time.monotonic() < deadline and not self._closed:
                    return False
                self._drop(envelope, f'nobody subscribes to {topics[0]} (or {topics[1]})')
                return True
            self.send(envelope, max(deadline - time.monotonic(), 0.0))
        except Exception as exc:  # noqa: BLE001 - an answer that cannot go is counted, logged
            self._drop(envelope, str(exc))
        return True

    def close(self) -> None:
        """Stop answering (what waits is dropped and counted) and destroy the publishers."""
        with self._lock:
            self._closed = True
            waiting = [envelope for _, _, envelope in self._pending]
            self._pending.clear()
            self._wake.notify()
            thread, self._thread = self._thread, None
        for envelope in waiting:
            self._drop(envelope, 'the application is stopping')
        if thread is not None:
            thread.join(2.0)
        with self._lock:
            links, self._links = list(self._links.values()), OrderedDict()
        for link in links:
            link.destroy()

    def _drop(self, envelope: dict, reason: str) -> None:
        self.dropped += 1
        self._throttle.warning('drop', 'dropped the %r answer to %r (%d dropped so far): %s',
                               envelope.get('subject'), envelope.get('recipient'), self.dropped,
                               reason)

    def send_error(self, error: dict) -> None:
        """Send an error envelope to the outside sender it answers, without waiting."""
        self.answer(error)


def _topic_name(recipient: Any) -> str:
    """Return recipient as the name of ROS inbox topics, or raise UnknownRecipient."""
    try:
        return normalize_name(recipient)
    except EnvelopeError:
        raise UnknownRecipient(f'{recipient!r} is no head of this application and cannot name a '
                               'ROS inbox topic (use a letter, then letters, digits or _)'
                               ) from None
