"""The Unix-socket route: envelopes as newline-delimited JSON over a Unix stream socket.

The package, one concept a module:

* :mod:`.server` -- :class:`UnixSocketServer`, the server transport: many clients served
  from one loop, error frames, back-pressure while a recipient's queue is full.
* :mod:`.socket_file` -- the server's socket file: claiming a path, creating it with tight
  permissions (``mode``, ``group``), removing it.
* :mod:`.client` -- :class:`UnixSocketClient`, the client transport: one connection,
  reconnecting with backoff.
* :mod:`.heads` -- :class:`UnixSocketServerHead` and :class:`UnixSocketClientHead`, route
  heads (:mod:`polycephaly_ros.routes.base`) that own one of the transports.

Framing (one JSON object a line, at most ``max_frame`` bytes, :data:`MAX_FRAME` by default)
is shared by every stream route and lives in :mod:`polycephaly_ros.routes.framing`.

Imports: this package's ``__init__`` imports the heads, and so the head machinery
(:mod:`polycephaly_ros.routes.base`, :mod:`polycephaly_ros.head`); the transport modules
(``server``, ``client``, ``socket_file``) and the framing import neither, and ``heads`` is
the only module here that does. (Today ``import polycephaly_ros`` itself imports the head
machinery, so importing a transport module alone saves nothing yet.)
"""

from __future__ import annotations

from ..framing import MAX_FRAME
from .client import UnixSocketClient
from .heads import MAX_PATH, UnixSocketClientHead, UnixSocketServerHead
from .server import HOLD_RETRY, MAX_PENDING, UnixSocketServer

__all__ = ['HOLD_RETRY', 'MAX_FRAME', 'MAX_PATH', 'MAX_PENDING', 'UnixSocketClient',
           'UnixSocketClientHead', 'UnixSocketServer', 'UnixSocketServerHead']
