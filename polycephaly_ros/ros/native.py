"""The private rclpy and rcl calls this package makes, in one place, behind small functions.

rclpy has no public API for what :mod:`.subscriptions` does (a head's thread taking its
messages itself, woken by rcl) nor a public name for the error ``publish()`` raises when a
KEEP_ALL writer's history is full. Everything that touches rclpy's implementation singleton,
an entity's ``handle`` (``pointer``, ``take_message``) or librcl directly is here, so an rclpy
upgrade is checked in one module (and by ``test/ros/test_native.py``).

The native half, ``src/rcl_notify.c`` (built by colcon into ``libpolycephaly_ros_notify.so``
beside this module), is a callback for ``rcl_subscription_set_on_new_message_callback()`` and
``rcl_event_set_callback()`` that adds the number of new messages (or events) to an eventfd
whose descriptor is the user data. It runs in a middleware thread and takes neither a lock
nor the GIL. Beside it, ``src/exit_timer.c`` is the last resort of a hung DDS teardown
(:func:`exit_after`): a C thread that ends the process with a chosen code.

Threading contract: every function may be called from any thread; after notify_on_*() with
``fd=None`` returns, the middleware no longer calls back, so the eventfd may be closed.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from ..errors import RosError

#: The shared library built from src/rcl_notify.c.
LIBRARY = Path(__file__).with_name('libpolycephaly_ros_notify.so')
#: The symbol of the native callback in LIBRARY.
CALLBACK = 'polycephaly_ros_notify'

_native: tuple[Any, int] | None = None  # (librcl, address of the native callback)
_exit_timer: Any = None


def _implementation() -> Any:
    from rclpy.impl.implementation_singleton import rclpy_implementation

    return rclpy_implementation


def rcl_error() -> type[Exception]:
    """Return the exception class rclpy raises when rcl fails (e.g. a full KEEP_ALL history)."""
    return _implementation().RCLError


def load_callback() -> tuple[Any, int]:
    """Return librcl and the address of the native callback, loading both once."""
    global _native
    if _native is None:
        import rclpy  # noqa: F401 - loads librcl, which the soname below then names

        try:
            rcl = ctypes.CDLL('librcl.so')
            notify = ctypes.CDLL(str(LIBRARY))
        except OSError as exc:
            raise RosError(f'cannot load the rcl notification callback ({exc}); '
                           'is polycephaly_ros built with colcon?') from exc
        rcl.rcl_subscription_set_on_new_message_callback.argtypes = (
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        rcl.rcl_event_set_callback.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        callback = ctypes.cast(getattr(notify, CALLBACK), ctypes.c_void_p).value
        _native = (rcl, callback)
    return _native


def exit_after(seconds: float, code: int) -> None:
    """End the process with exit code code in seconds unless called again (0: disarm).

    The timer is a C thread that never takes the GIL: it acts while a DDS teardown holds it.
    """
    global _exit_timer
    if _exit_timer is None:
        try:
            _exit_timer = ctypes.CDLL(str(LIBRARY)).polycephaly_ros_exit_after
        except (OSError, AttributeError) as exc:
            raise RosError(f'cannot load the exit timer ({exc}); is polycephaly_ros built '
                           'with colcon?') from exc
        _exit_timer.argtypes = (ctypes.c_double, ctypes.c_int)
    error = _exit_timer(float(seconds), int(code))
    if error:
        raise RosError(f'the exit timer could not start: errno {error}')


def _set(function_name: str, handle: Any, fd: int | None) -> None:
    rcl, callback = load_callback()
    with handle:  # keeps the entity alive during the call
        ret = getattr(rcl, function_name)(handle.pointer, None if fd is None else callback,
                                          None if fd is None else fd)
    if ret != 0:
        raise RosError(f'{function_name} failed (rcl_ret_t {ret})')


def notify_on_message(subscription: Any, fd: int | None) -> None:
    """Add to eventfd fd for every message subscription receives (at once for any waiting)."""
    _set('rcl_subscription_set_on_new_message_callback', subscription.handle, fd)


def notify_on_event(event: Any, fd: int | None) -> None:
    """Add to eventfd fd whenever event (from incompatible_qos_event) fires; fd=None stops it."""
    _set('rcl_event_set_callback', event, fd)


def take_message(subscription: Any) -> Any:
    """Take the next waiting message of subscription, or None."""
    handle = subscription.handle
    with handle:
        taken = handle.take_message(subscription.msg_type, False)
    return None if taken is None else taken[0]


def incompatible_qos_event(subscription: Any) -> Any:
    """Return the requested-incompatible-QoS event of subscription (take with take_event)."""
    from rclpy.event_handler import QoSSubscriptionEventType

    return _implementation().EventHandle(
        subscription.handle,
        QoSSubscriptionEventType.RCL_SUBSCRIPTION_REQUESTED_INCOMPATIBLE_QOS)


def take_event(event: Any) -> Any:
    """Return the event's news (a QoSRequestedIncompatibleQoSInfo) or None."""
    with event:
        return event.take_event()


def destroy_event(event: Any) -> None:
    """Destroy an event from incompatible_qos_event once nothing uses it."""
    event.destroy_when_not_in_use()
