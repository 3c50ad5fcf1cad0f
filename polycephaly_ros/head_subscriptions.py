"""Subscriptions a head's own thread takes from, woken by rcl: no executor in between.

rcl can call back from the middleware's own thread when a subscription receives a message
(``rcl_subscription_set_on_new_message_callback``) or one of its events fires
(``rcl_event_set_callback``); rclcpp's events executor is built on that. Here the callback
is native (``src/rcl_notify.c``, installed beside this module): it adds the count to an
eventfd and returns, taking neither a lock nor the GIL. A head's thread watches the eventfd
in its inbox's epoll and takes the messages itself, so they reach the head with no executor
and no other thread in between.

:class:`HeadSubscriptions` puts that together for a head: the executor never sees its
subscriptions (their callback group lets it run nothing), so a slow callback elsewhere in the
process does not hold a head's input back, and nothing crosses a thread on the way in.

Threading contract: ``notify_on_*`` may be called from any thread; after a call with
``fd=None`` returns, the middleware no longer calls back, so the eventfd may be closed.
A :class:`HeadSubscriptions` belongs to the thread that polls its inbox.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

_log = logging.getLogger('polycephaly_ros.head_subscriptions')
#: The shared library built from src/rcl_notify.c.
LIBRARY = Path(__file__).with_name('libpolycephaly_ros_notify.so')

#: Messages taken from one subscription before the head turns to its other work.
BATCH = 256

_native: tuple[Any, int] | None = None  # (librcl, address of the native callback)


def _load() -> tuple[Any, int]:
    global _native
    if _native is None:
        import rclpy  # noqa: F401 - loads librcl, which the soname below then names

        try:
            rcl = ctypes.CDLL('librcl.so')
            notify = ctypes.CDLL(str(LIBRARY))
        except OSError as exc:
            raise RuntimeError(f'cannot load the rcl notification callback ({exc}); '
                               'is polycephaly_ros built with colcon?') from exc
        rcl.rcl_subscription_set_on_new_message_callback.argtypes = (
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        rcl.rcl_event_set_callback.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        callback = ctypes.cast(notify.polycephaly_ros_notify, ctypes.c_void_p).value
        _native = (rcl, callback)
    return _native


def _set(function_name: str, handle: Any, fd: int | None) -> None:
    rcl, callback = _load()
    with handle:  # keeps the entity alive during the call
        ret = getattr(rcl, function_name)(handle.pointer, None if fd is None else callback,
                                          None if fd is None else fd)
    if ret != 0:
        raise RuntimeError(f'{function_name} failed (rcl_ret_t {ret})')


def notify_on_message(subscription: Any, fd: int | None) -> None:
    """Add to eventfd fd for every message subscription receives (at once for any waiting)."""
    _set('rcl_subscription_set_on_new_message_callback', subscription.handle, fd)


def notify_on_event(event: Any, fd: int | None) -> None:
    """Add to eventfd fd whenever event (an rclpy EventHandle) fires; fd=None stops it."""
    _set('rcl_event_set_callback', event, fd)


#: Called with each message taken; returns False when it cannot take it now (the message is
#: then held, and offered again once an envelope leaves the head's queue, or after
#: look_again_later()).
OnMessage = Callable[[Any], bool]


@dataclass
class _Taken:
    subscription: Any
    on_message: OnMessage
    event: Any  # its incompatible-QoS event
    on_incompatible: Callable[[Any], None]
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
        self._group = _taken_by_head()
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
        from rclpy.event_handler import QoSSubscriptionEventType, SubscriptionEventCallbacks
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        sub = node.create_subscription(
            kind, topic, _never_called, qos, callback_group=self._group,
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))
        event = _rclpy.EventHandle(
            sub.handle, QoSSubscriptionEventType.RCL_SUBSCRIPTION_REQUESTED_INCOMPATIBLE_QOS)
        self._taken.append(_Taken(sub, on_message, event, on_incompatible))
        notify_on_message(sub, self._ready)
        notify_on_event(event, self._evented)
        return sub

    def close(self, node: Any, leftover: Callable[[Any, Any], None] | None = None) -> None:
        """Stop taking; hand leftover(subscription, msg) what still waits; unsubscribe."""
        self._closed = True
        for taken in self._taken:
            notify_on_message(taken.subscription, None)
            notify_on_event(taken.event, None)
            taken.event.destroy_when_not_in_use()
        for fd in (self._ready, self._evented):
            self._inbox.unwatch(fd)
            os.close(fd)
        for taken in self._taken:
            sub = taken.subscription
            msg = taken.held
            while msg is not None or (msg := self._next(sub)) is not None:
                if leftover is not None:
                    leftover(sub, msg)
                msg = None
            node.destroy_subscription(sub)
        self._taken = []

    @staticmethod
    def _next(sub: Any) -> Any:
        with sub.handle:
            taken = sub.handle.take_message(sub.msg_type, False)
        return None if taken is None else taken[0]

    def _take(self, _fd: int) -> None:
        """Offer the waiting messages of each subscription until one cannot be taken (it waits).

        At most BATCH per subscription at a time: a flood on one topic must not keep the head
        from its other mail and topics (it comes back at its next poll()).
        """
        _drain(self._ready)
        for taken in self._taken:
            sub, on_message = taken.subscription, taken.on_message
            msg, taken.held = taken.held, None
            for _ in range(BATCH):
                if msg is None and (msg := self._next(sub)) is None:
                    break
                try:
                    took = on_message(msg)
                except Exception:  # a bug, not bad input: say so, keep the head running
                    _log.exception('could not handle a message on %s', sub.topic_name)
                    took = True
                if not took:  # (its recipient is full: the other subscriptions go on)
                    taken.held = msg
                    self._inbox.when_room(self._look_again)
                    break
                msg = None
            else:
                self._look_again()  # more may wait

    def look_again_later(self, delay: float) -> None:
        """Offer a held message again in delay seconds (when room will come with no event)."""
        self._inbox.call_later(delay, self._look_again)

    def _look_again(self) -> None:
        if not self._closed:
            os.eventfd_write(self._ready, 1)  # the next poll() takes what waits

    def _take_events(self, _fd: int) -> None:
        _drain(self._evented)
        for taken in self._taken:
            with taken.event:
                info = taken.event.take_event()
            if info is not None and info.total_count_change > 0:
                taken.on_incompatible(info)
