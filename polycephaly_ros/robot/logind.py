"""A small client of systemd-logind's ``org.freedesktop.login1.Manager`` over D-Bus (dbus-fast).

The updates head uses two of its methods (systemd's ``org.freedesktop.login1(5)``):

* ``Inhibit(s what, s who, s why, s mode) -> h fd`` (since systemd 183): an *inhibitor lock*
  held as long as the returned file descriptor stays open; :meth:`Logind.inhibit` returns it
  and closing it releases the lock;
* ``ScheduleShutdown(s type, t usec)`` (since systemd 220): a shutdown of type ``reboot``
  (``poweroff``, ...) at ``usec`` microseconds of CLOCK_REALTIME.

Threading contract: dbus-fast is asyncio; :class:`Logind` runs its loop in one daemon thread of
its own (``logind``) and its methods, called from any thread, wait for the answer there (at most
``timeout`` seconds). The connection negotiates Unix file descriptors (``negotiate_unix_fd``),
which ``Inhibit`` needs. A lost connection is made again at the next call.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

LOGIN1 = 'org.freedesktop.login1'
LOGIN1_PATH = '/org/freedesktop/login1'
MANAGER = 'org.freedesktop.login1.Manager'
#: D-Bus errors meaning that nobody answers for logind (rather than that it refused).
ABSENT = {'org.freedesktop.DBus.Error.ServiceUnknown', 'org.freedesktop.DBus.Error.NameHasNoOwner',
          'org.freedesktop.DBus.Error.NoReply', 'org.freedesktop.DBus.Error.Disconnected',
          'org.freedesktop.DBus.Error.Spawn.ServiceNotFound'}


class LogindError(Exception):
    """A logind call failed; ``unavailable`` tells that logind (or the bus) is not there."""

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def describe(bus: str) -> str:
    """Return the bus as it should appear in a log line."""
    return f'the {bus} bus' if bus in ('session', 'system') else f'the bus at {bus}'


class Logind:
    """A synchronous logind client whose dbus-fast loop runs in a thread of its own."""

    def __init__(self, bus: str = 'system', *, timeout: float = 5.0) -> None:
        self.bus_spec, self.timeout, self.where = bus, timeout, describe(bus)
        self._bus: MessageBus | None = None  # (loop thread only)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name='logind',
                                        daemon=True)
        self._thread.start()
        self._closed = False

    # -- any thread -------------------------------------------------------------------
    def check(self) -> None:
        """Connect and make sure org.freedesktop.login1 has an owner; raise LogindError if not."""
        self._wait(self._check())

    def inhibit(self, what: str, who: str, why: str, mode: str) -> int:
        """Take an inhibitor lock; return its file descriptor (close it to release the lock)."""
        reply = self._wait(self._call('Inhibit', 'ssss', [what, who, why, mode]))
        fds = list(reply.unix_fds or [])
        try:
            index = reply.body[0]
            fd = fds.pop(index)
        except (IndexError, TypeError) as exc:
            for other in fds:
                os.close(other)
            raise LogindError(f'Inhibit answered without a file descriptor ({exc})') from None
        for other in fds:
            os.close(other)
        return fd

    def schedule_shutdown(self, kind: str, usec: int) -> None:
        """Ask logind to shut down (kind: reboot, poweroff, ...) at usec (CLOCK_REALTIME, µs)."""
        self._wait(self._call('ScheduleShutdown', 'st', [kind, int(usec)]))

    def close(self) -> None:
        """Disconnect and stop the loop's thread."""
        if self._closed:
            return
        self._closed = True

        def stop() -> None:
            if self._bus is not None:
                self._bus.disconnect()
                self._bus = None
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    # -- the loop's thread ------------------------------------------------------------
    def _wait(self, coroutine: Any) -> Any:
        if self._closed:
            coroutine.close()
            raise LogindError('the logind client is closed', unavailable=True)
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout + 1.0)
        except TimeoutError:
            future.cancel()
            raise LogindError(f'no answer from logind on {self.where} within '
                              f'{self.timeout:g} s', unavailable=True) from None

    async def _connected(self) -> MessageBus:
        bus = self._bus
        if bus is not None and bus.connected:
            return bus
        if self.bus_spec == 'system':
            new = MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True)
        elif self.bus_spec == 'session':
            new = MessageBus(bus_type=BusType.SESSION, negotiate_unix_fd=True)
        else:
            new = MessageBus(bus_address=self.bus_spec, negotiate_unix_fd=True)
        try:
            await asyncio.wait_for(new.connect(), self.timeout)
        except Exception as exc:  # (no socket, refused, authentication, timeout ...)
            new.disconnect()
            raise LogindError(f'cannot connect to {self.where}: {type(exc).__name__}: {exc}',
                              unavailable=True) from None
        self._bus = new
        return new

    async def _check(self) -> None:
        bus = await self._connected()
        reply = await self._send(bus, Message(
            destination='org.freedesktop.DBus', path='/org/freedesktop/DBus',
            interface='org.freedesktop.DBus', member='NameHasOwner', signature='s',
            body=[LOGIN1]))
        if not reply.body[0]:
            raise LogindError(f'no {LOGIN1} on {self.where}', unavailable=True)

    async def _call(self, member: str, signature: str, body: list) -> Message:
        bus = await self._connected()
        return await self._send(bus, Message(
            destination=LOGIN1, path=LOGIN1_PATH, interface=MANAGER, member=member,
            signature=signature, body=body))

    async def _send(self, bus: MessageBus, message: Message) -> Message:
        what = f'{message.interface}.{message.member}'
        try:
            reply = await asyncio.wait_for(bus.call(message), self.timeout)
        except asyncio.TimeoutError:
            raise LogindError(f'{what}: no answer within {self.timeout:g} s',
                              unavailable=True) from None
        except DBusError as exc:
            raise LogindError(f'{what}: {exc.type}: {exc.text}',
                              unavailable=exc.type in ABSENT) from None
        except (OSError, EOFError) as exc:  # (the connection broke)
            raise LogindError(f'{what}: {type(exc).__name__}: {exc}', unavailable=True) from None
        if reply.message_type == MessageType.ERROR:
            for fd in reply.unix_fds or ():
                os.close(fd)
            error = reply.error_name or 'an error'
            text = reply.body[0] if reply.body else ''
            raise LogindError(f'{what}: {error}: {text}', unavailable=error in ABSENT)
        return reply
