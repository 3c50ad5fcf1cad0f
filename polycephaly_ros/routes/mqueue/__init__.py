"""The POSIX message queue route: one JSON envelope a message, through our queue and a peer's.

The package, one concept a module:

* :mod:`.queues` -- naming, limits, creating our queue with a tight mode and a lock (a stale
  one of a dead owner taken over or replaced), opening a peer's queue after checking it,
  removing ours.
* :mod:`.transport` -- :class:`MqueueTransport`: reads our queue (from a head's loop or a
  thread of its own) and sends to the peer's, usable without any head.
* :mod:`.head` -- :class:`MqueueRouteHead`, the route head (:mod:`polycephaly_ros.routes.base`)
  that owns a transport; the only module here that imports the head machinery.
"""

from __future__ import annotations

from .head import MqueueRouteHead
from .queues import MODES
from .transport import BATCH, HOLD_RETRY, MqueueTransport

__all__ = ['BATCH', 'HOLD_RETRY', 'MODES', 'MqueueRouteHead', 'MqueueTransport']
