"""The named pipe (FIFO) route: newline-delimited JSON in through a pipe ``in``, out by ``out``.

The package, one concept a module:

* :mod:`.fifo_file` -- the pipes' directory checked (like ssh-agent's), the pair made with a
  tight mode, a stale pair kept or replaced, a live one refused, both removed.
* :mod:`.transport` -- :class:`FifoTransport`: reads ``in`` (again after each last writer
  leaves), writes ``out`` without ever blocking on a missing reader; usable without any head.
* :mod:`.head` -- :class:`FifoRouteHead`, the route head (:mod:`polycephaly_ros.routes.base`)
  that owns a transport; the only module here that imports the head machinery.

Framing (one JSON object a line, at most ``max_frame`` bytes) is
:mod:`polycephaly_ros.routes.framing`'s, as on the Unix socket.
"""

from __future__ import annotations

from .fifo_file import MODES
from .head import FifoRouteHead
from .transport import HOLD_RETRY, FifoTransport

__all__ = ['HOLD_RETRY', 'MODES', 'FifoRouteHead', 'FifoTransport']
