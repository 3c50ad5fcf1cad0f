"""One D-Bus connection kept up by an asyncio loop in a thread of its own, reconnecting.

:class:`BusLink` connects to a bus (``'session'``, ``'system'`` or an explicit address such
as ``unix:path=/run/robot/bus``) with dbus-fast, lets its owner set the connection up
(``on_connect``: export an object, request a name, add match rules) and hands every message
the bus receives to ``on_message`` first. When the connection is lost it calls ``on_lost``
and connects again, waiting ``backoff[0]`` seconds, doubling up to ``backoff[1]``, until
:meth:`BusLink.close`. A connection attempt (socket, authentication, Hello, set-up) that takes
more than :data:`~.interface.CONNECT_TIMEOUT` seconds is given up and retried.

A :class:`~polycephaly_ros.errors.ConfigurationError` raised by ``on_connect`` (a name another
connection owns, a policy that denies it) is *fatal* on the first attempt: :meth:`start`
raises it, since retrying cannot help. Later it is logged as an error and retried with the
longest backoff.

Threading contract: dbus-fast is asyncio; this module runs its loop in one thread of its own,
named ``dbus:<name>``. ``on_connect``, ``on_message`` and ``on_lost`` run in that thread, and
so does whatever is passed to :meth:`BusLink.call_soon` (the one way in from other threads).
:meth:`start`, :meth:`close` and :attr:`connected` may be used from any thread. An exception
that escapes the loop otherwise is logged and given to ``on_failure`` (a route head's
``transport_failed``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Awaitable, Callable

from dbus_fast import DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

from ...errors import ConfigurationError, RecipientUnavailable, StateError
from .interface import CONNECT_TIMEOUT, DBUS, DBUS_PATH, bus_address, describe

_log = logging.getLogger(__name__)

OnConnect = Callable[[MessageBus], Awaitable[None]]
OnMessage = Callable[[Message], Any]


class BusLink:
    """Keep one dbus-fast connection up from a thread of its own; see the module documentation."""

    def __init__(
        self,
        bus: str,
        *,
        name: str,
        on_connect: OnConnect,
        on_message: OnMessage,
        on_lost: Callable[[], None] = lambda: None,
        backoff: tuple[float, float] = (0.05, 2.0),
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.bus_spec, self.name, self.backoff = bus, name, backoff
        self.where = describe(bus)
        self._on_connect, self._on_message, self._on_lost = on_connect, on_message, on_lost
        self._on_failure = on_failure
        #: The connected bus (loop thread only), None while disconnected.
        self.bus: MessageBus | None = None
        #: The asyncio loop of the link's thread, once started.
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Set while connected (and set up).
        self.connected_event = threading.Event()
        self._first = threading.Event()  # set once the first attempt ended, either way
        self._fatal: BaseException | None = None
        self._closing = False
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ident: int | None = None  # the link's thread, once it runs
        self._said: str | None = None  # the last reason logged for a failed attempt

    @property
    def connected(self) -> bool:
        """Tell whether the link is connected (and set up) now."""
        return self.connected_event.is_set()

    def start(self, wait: float = CONNECT_TIMEOUT + 1.0) -> None:
        """Start the thread; return after the first attempt (raise what was fatal in it)."""
        if self._thread is not None:
            raise StateError(f'the D-Bus link {self.name!r} is already running')
        self._thread = threading.Thread(target=self._run, name=f'dbus:{self.name}', daemon=True)
        self._thread.start()
        self._first.wait(wait)
        if self._fatal is not None:
            self.close()
            raise self._fatal

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run callback(*args) in the link's thread: now when called there, else soon."""
        loop = self.loop
        if loop is None or self._closing:
            raise RecipientUnavailable(f'the D-Bus link to {self.where} is closed')
        if threading.get_ident() == self._ident:
            callback(*args)
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed meanwhile
            raise RecipientUnavailable(f'the D-Bus link to {self.where} is closed') from None

    def close(self) -> None:
        """Disconnect, stop reconnecting and join the thread (from any thread but its own)."""
        self._closing = True
        loop = self.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._stop)
            except RuntimeError:
                pass  # the loop is closed already
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    # -- the link's thread -----------------------------------------------------------------
    def _stop(self) -> None:
        """Wake the reconnect wait and disconnect (in the link's thread)."""
        if self._wake is not None:
            self._wake.set()
        if self.bus is not None:
            self.bus.disconnect()

    def _run(self) -> None:
        """Run the link's thread: its asyncio loop, until closed."""
        self._ident = threading.get_ident()
        loop = self.loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._keep_connected())
        except Exception as exc:
            _log.exception('the D-Bus link %r to %s failed', self.name, self.where)
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._first.set()
            self.connected_event.clear()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _keep_connected(self) -> None:
        """Connect, wait for the connection to end, and again, until closed."""
        self._wake = asyncio.Event()
        delay, longest = self.backoff
        while not self._closing:
            bus = await self._connect()
            if bus is None:
                if self._fatal is not None:
                    return
                await self._pause(delay)
                delay = min(delay * 2, longest)
                continue
            if self._closing:  # close() came while connecting
                bus.disconnect()
                break
            delay = self.backoff[0]
            self.bus, self._said = bus, None
            self.connected_event.set()
            self._first.set()
            _log.info('D-Bus %r: connected to %s as %s', self.name, self.where, bus.unique_name)
            try:
                await bus.wait_for_disconnect()
            except Exception as exc:  # the connection broke rather than closed
                _log.debug('D-Bus %r: the connection ended: %r', self.name, exc)
            self.connected_event.clear()
            self.bus = None
            self._on_lost()
            if not self._closing:
                _log.warning('D-Bus %r: lost the connection to %s; reconnecting', self.name,
                             self.where)

    async def _connect(self) -> MessageBus | None:
        """Return a connected, set-up bus; None after a failure (logged, fatal one kept)."""
        address, bus_type = bus_address(self.bus_spec)
        bus: MessageBus | None = None
        try:
            bus = MessageBus(bus_address=address, bus_type=bus_type)
            await asyncio.wait_for(bus.connect(), CONNECT_TIMEOUT)
            bus.add_message_handler(self._on_message)
            await asyncio.wait_for(self._on_connect(bus), CONNECT_TIMEOUT)
            return bus
        except ConfigurationError as exc:
            if not self._first.is_set():
                self._fatal = exc
            _log.error('D-Bus %r on %s: %s', self.name, self.where, exc)
        except Exception as exc:  # (OSError, timeouts, authentication, a refused call ...)
            reason = f'{type(exc).__name__}: {exc}'
            if reason != self._said:  # once per reason, not at every retry
                _log.warning('D-Bus %r: cannot connect to %s (%s); retrying every %g s at most',
                             self.name, self.where, reason, self.backoff[1])
            self._said = reason
        self._first.set()
        if bus is not None:
            bus.disconnect()
        return None

    async def _pause(self, delay: float) -> None:
        """Wait delay seconds, or less if the link is closing."""
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass


async def ask_daemon(bus: MessageBus, member: str, signature: str = '',
                     body: list[Any] | None = None) -> list[Any]:
    """Call a method of the bus daemon itself; return the reply's body or raise DBusError."""
    reply = await bus.call(Message(destination=DBUS, path=DBUS_PATH, interface=DBUS,
                                   member=member, signature=signature, body=body or []))
    if reply.message_type is MessageType.ERROR:
        raise DBusError(reply.error_name, reply.body[0] if reply.body else '', reply)
    return reply.body
