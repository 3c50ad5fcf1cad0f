"""Have rcl bump an eventfd when a subscription gets messages or an event fires: no executor.

rcl can call back from the middleware's own thread when a subscription receives a message
(``rcl_subscription_set_on_new_message_callback``) or one of its events fires
(``rcl_event_set_callback``); rclcpp's events executor is built on that. Here the callback
is native (``src/rcl_notify.c``, installed beside this module): it adds the count to an
eventfd and returns, taking neither a lock nor the GIL. A head's thread watches the eventfd
in its inbox's epoll and takes the messages itself, so they reach the head with no executor
and no other thread in between.

Threading contract: call these from the thread that owns the entity's use; after a call
with ``fd=None`` returns, the middleware no longer calls back, so the eventfd may be closed.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

#: The shared library built from src/rcl_notify.c.
LIBRARY = Path(__file__).with_name('libpolycephaly_ros_notify.so')

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
