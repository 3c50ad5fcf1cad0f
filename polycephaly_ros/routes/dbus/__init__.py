"""The D-Bus route: envelopes as JSON strings through a D-Bus daemon (dbus-fast, asyncio).

The package, one concept a module:

* :mod:`.interface` -- the object path, interface, method ``Send(s) -> s`` and signal
  ``Envelope(s)``, the introspection data, which bus, and the checks of the settings.
* :mod:`.connection` -- :class:`BusLink`: one connection, its asyncio loop in a thread of its
  own, reconnecting with backoff.
* :mod:`.server` -- :class:`DbusServer`: owns a bus name; each call of ``Send`` is delivered
  to a head and returns that head's reply; other envelopes go out as signals.
* :mod:`.client` -- :class:`DbusClient`: calls another application's ``Send`` and delivers
  the replies and that application's signals.
* :mod:`.heads` -- :class:`DbusServerHead` and :class:`DbusClientHead`, route heads
  (:mod:`polycephaly_ros.routes.base`); the only module here that imports the head machinery.

Threading: each transport runs dbus-fast's asyncio loop in a thread of its own
(:mod:`.connection`); sending is thread-safe. The bus's policy decides who may own the name
and who may call it: a policy for the system bus is shipped in
``config/dbus/polycephaly-robot.conf``.
"""

from __future__ import annotations

from .client import DbusClient
from .connection import BusLink
from .heads import DbusClientHead, DbusServerHead
from .interface import CALL_HEADER, INTERFACE, METHOD, OBJECT_PATH, SIGNAL, RouteInterface
from .server import HOLD_RETRY, DbusServer

__all__ = ['CALL_HEADER', 'HOLD_RETRY', 'INTERFACE', 'METHOD', 'OBJECT_PATH', 'SIGNAL',
           'BusLink', 'DbusClient', 'DbusClientHead', 'DbusServer', 'DbusServerHead',
           'RouteInterface']
