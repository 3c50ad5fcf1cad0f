"""Subscriptions a head's own thread takes from, woken by rcl: no executor in between.

rcl can call back from the middleware's own thread when a subscription receives a message
(``rcl_subscription_set_on_new_message_callback``) or one of its events fires
(``rcl_event_set_callback``); rclcpp's events executor is built on that. Here the callback is
native (:mod:`.native`, ``src/rcl_notify.c``): it adds the count to an eventfd and returns,
taking neither a lock nor the GIL. A head's thread watches the eventfd in its inbox's epoll
and takes the messages itself, so they reach the head with no executor and no other thread
in between.

:class:`HeadSubscriptions` puts that together for a head: the executor never sees its
subscriptions (their callback group lets it run nothing), so a slow callback elsewhere in the
process does not hold a head's input back, and nothing crosses a thread on the way in. The
taking itself (batches, holding a message while its recipient is full, looking again when
there is room) works on any source of messages (:meth:`HeadSubscriptions.add`), which is how
it is tested without DDS.

Threading contract: a HeadSubscriptions belongs to the thread that polls its inbox; every
callback it makes (on_message, on_incompatible) runs there. wake() may be called from any
thread.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from . import native

_log = logging.getLogger('polycephaly_ros.ros.subscriptions')

#: Messages taken from one subscription before the head turns to its other work.
BATCH = 64

#: Called with each message taken; returns False when it cannot take it now (the message is
#: then held, and offered again once an envelope leaves the head's queue, or after
#: look_again_later()).
OnMessage = Callable[[Any], bool]


@dataclass
class _Taken:
    name: str  # the topic, for logs
    take: Callable[[], Any]  # the next waiting message, or None
    on_message: OnMessage
    subscription: Any = None  # the rclpy subscription, for subscribe()'s entries
    event: Any = None  # its incompatible-QoS event
    on_incompatible: Callable[[Any], None] | None = None
    held: Any = None  # a message on_message could not take yet


def _taken_by_head() -> Any:
    """Return a callback group whose entities the executor never waits for nor runs."""
    from rclpy.callback_groups import CallbackGroup

    class TakenByHead(CallbackGroup):
        def can_execute(self, entity: Any) -> bool:
            return False

        def beginning_execution(self, entity: Any) -> bool:
            return False

        def ending_execution(self, entity: Any) -> None:
            pass

    return TakenByHead()


def _drain(fd: int) -> None:
    try:
        os.eventfd_read(fd)  # takes every count added so far
    except BlockingIOError:
        pass


def _never_called(_msg: Any) -> None:
    raise AssertionError('the executor took a message meant for a head thread')


class HeadSubscriptions:
    """The subscriptions of one head that its thread takes from, watched by the head's inbox."""

    def __init__(self, inbox: Any) -> None:
        self._inbox = inbox
        self._group: Any = None
        self._taken: list[_Taken] = []
        self._closed = False
        self._ready = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._evented = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        inbox.watch(self._ready, self._take)
        inbox.watch(self._evented, self._take_events)

    def subscribe(self, node: Any, kind: type, topic: str, qos: Any, on_message: OnMessage,
                  on_incompatible: Callable[[Any], None]) -> Any:
        """Subscribe node to topic; the head's thread calls on_message for each message.

        on_incompatible gets the QoSRequestedIncompatibleQoSInfo of a mismatched publisher.
        """
        from rclpy.event_handler import SubscriptionEventCallbacks

        if self._group is None:
            self._group = _taken_by_head()
        sub = node.create_subscription(
            kind, topic, _never_called, qos, callback_group=self._group,
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))
        event = native.incompatible_qos_event(sub)
        self._taken.append(_Taken(sub.topic_name, functools.partial(native.take_message, sub),
                                  on_message, sub, event, on_incompatible))
        native.notify_on_message(sub, self._ready)
        native.notify_on_event(event, self._evented)
        return sub

    def add(self, name: str, take: Callable[[], Any], on_message: OnMessage) -> None:
        """Take from any source: take() returns its next message or None; call wake() on news."""
        self._taken.append(_Taken(name, take, on_message))

    def wake(self) -> None:
        """Make the head's thread look for messages at its next poll (what rcl does natively)."""
        if not self._closed:
            os.eventfd_write(self._ready, 1)

    def close(self, node: Any = None,
              leftover: Callable[[str, Any], None] | None = None) -> None:
        """Stop taking; hand leftover(topic, msg) what still waits; unsubscribe from node."""
        if self._closed:
            return
        self._closed = True
        for taken in self._taken:
            if taken.subscription is not None:
                native.notify_on_message(taken.subscription, None)
                native.notify_on_event(taken.event, None)
                native.destroy_event(taken.event)
        for fd in (self._ready, self._evented):
            self._inbox.unwatch(fd)
            os.close(fd)
        for taken in self._taken:
            msg = taken.held
            while msg is not None or (msg := taken.take()) is not None:
                if leftover is not None:
                    leftover(taken.name, msg)
                msg = None
            if taken.subscription is not None:
                node.destroy_subscription(taken.subscription)
        self._taken = []

    def _take(self, _fd: int) -> None:
        """Offer the waiting messages of each subscription until one cannot be taken (it waits).

        At most BATCH per subscription at a time: a flood on one topic must not keep the head
        from its other mail and topics (it comes back at its next poll()).
        """
        _drain(self._ready)
        for taken in self._taken:
            take, on_message = taken.take, taken.on_message
            msg, taken.held = taken.held, None
            for _ in range(BATCH):
                if msg is None and (msg := take()) is None:
                    break
                try:
                    took = on_message(msg)
                except Exception:  # a bug, not bad input: say so, keep the head running
                    _log.exception('could not handle a message on %s', taken.name)
                    took = True
                if not took:  # (its recipient is full: the other subscriptions go on)
                    taken.held = msg
                    self._inbox.when_room(self.wake)
                    break
                msg = None
            else:
                self.wake()  # more may wait

    def look_again_later(self, delay: float) -> None:
        """Offer a held message again in delay seconds (when room will come with no event)."""
        self._inbox.call_later(delay, self.wake)

    def _take_events(self, _fd: int) -> None:
        _drain(self._evented)
        for taken in self._taken:
            if taken.event is None:
                continue
            info = native.take_event(taken.event)
            if info is not None and info.total_count_change > 0:
                taken.on_incompatible(info)
