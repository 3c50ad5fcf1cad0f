"""The D-Bus route's names and settings: object path, interface, members, which bus, checks.

The route exports one object (:data:`OBJECT_PATH`) with one interface (:data:`INTERFACE`):

* method ``Send(s envelope) -> s reply``: an envelope as JSON in, the reply envelope as
  JSON out (or an ``error`` envelope saying why there is none);
* signal ``Envelope(s envelope)``: an envelope the application sends to an outside name
  that has no call waiting for it, as JSON.

:class:`RouteInterface` describes them for introspection (so ``gdbus call`` and ``busctl
introspect`` know the signatures); the calls themselves are answered by the route's
message handler (:mod:`.server`) before dbus-fast would call it. This module imports no
head machinery. Threading: it holds no state; :class:`RouteInterface` is exported and used in
the thread of the link that connects (:mod:`.connection`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from dbus_fast import BusType, validators
from dbus_fast.service import ServiceInterface, method, signal

from ... import codec
from ...errors import ConfigurationError

#: The object the server exports and the client calls.
OBJECT_PATH = '/io/polycephaly/Route'
#: The interface of that object.
INTERFACE = 'io.polycephaly.Route1'
#: The method taking an envelope and answering its reply: ``Send(s) -> s``.
METHOD = 'Send'
#: The signal carrying an envelope to subscribers: ``Envelope(s)``.
SIGNAL = 'Envelope'
#: The header a call's envelope carries inside the application, so its reply finds the call.
CALL_HEADER = 'dbus_call'
#: The bus daemon's own name, path and interface.
DBUS = 'org.freedesktop.DBus'
DBUS_PATH = '/org/freedesktop/DBus'
#: D-Bus error names the route answers with.
INVALID_ARGS = 'org.freedesktop.DBus.Error.InvalidArgs'
#: Seconds a connection (socket, authentication, Hello, name) may take before it is retried.
CONNECT_TIMEOUT = 5.0


class RouteInterface(ServiceInterface):
    """Describe the route's method and signal for introspection (calls go to the handler)."""

    def __init__(self, name: str = INTERFACE) -> None:
        super().__init__(name)

    @method(name=METHOD)
    def send(self, envelope: 's') -> 's':  # noqa: F821 (a D-Bus signature)
        """Answer a call the route's handler did not take (it always does while serving)."""
        return codec.encode(codec.error_envelope('the route is not serving yet')).decode()

    @signal(name=SIGNAL)
    def envelope(self) -> 's':  # noqa: F821 (a D-Bus signature)
        """Describe the signal (the route emits it as a message of its own)."""
        return ''


def bus_address(bus: str) -> tuple[str | None, BusType]:
    """Return (address, bus type) for 'session', 'system' or an explicit D-Bus address."""
    if bus == 'session':
        return None, BusType.SESSION
    if bus == 'system':
        return None, BusType.SYSTEM
    return bus, BusType.SESSION


def describe(bus: str) -> str:
    """Return the bus as it should appear in a log line."""
    if bus in ('session', 'system'):
        return f'the {bus} bus'
    return f'the bus at {bus}'


def check_settings(cls: type, kwargs: Mapping[str, Any]) -> None:
    """Raise ConfigurationError naming the first bad D-Bus setting in kwargs."""
    where = cls.__name__
    bus = kwargs.get('bus', 'session')
    if not isinstance(bus, str) or (bus not in ('session', 'system') and ':' not in bus):
        raise ConfigurationError(f"{where}: bus is 'session', 'system' or a D-Bus address such "
                                 f"as 'unix:path=/run/dbus/system_bus_socket', not {bus!r}")
    if bus.startswith('unix:path='):
        path = bus.split('=', 1)[1].split(',', 1)[0]
        if len(os.fsencode(path)) > 107:
            raise ConfigurationError(f'{where}: the bus socket path {path!r} is longer than '
                                     'AF_UNIX takes (107 bytes)')
    name = kwargs.get('bus_name')
    if not isinstance(name, str) or name.startswith(':') or not validators.is_bus_name_valid(name):
        raise ConfigurationError(f"{where} needs bus_name=<a well-known D-Bus name such as "
                                 f"'io.polycephaly.Robot'>, not {name!r}")
    path = kwargs.get('object_path', OBJECT_PATH)
    if not isinstance(path, str) or not validators.is_object_path_valid(path):
        raise ConfigurationError(f'{where}: object_path must be a D-Bus object path, not {path!r}')
    interface = kwargs.get('interface', INTERFACE)
    if not isinstance(interface, str) or not validators.is_interface_name_valid(interface):
        raise ConfigurationError(f'{where}: interface must be a D-Bus interface name, not '
                                 f'{interface!r}')
    for key, default in (('call_timeout', 1.0), ('max_message', 1.0)):
        value = kwargs.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigurationError(f'{where}: {key} must be a number > 0, not {value!r}')
    calls = kwargs.get('max_calls', 1)
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise ConfigurationError(f'{where}: max_calls must be a whole number >= 1, not {calls!r}')
    backoff = kwargs.get('backoff', (0.05, 2.0))
    try:
        first, longest = (float(b) for b in backoff)
        ok = 0 < first <= longest
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigurationError(f'{where}: backoff must be (first, longest) seconds, 0 < first '
                                 f'<= longest, not {backoff!r}')
