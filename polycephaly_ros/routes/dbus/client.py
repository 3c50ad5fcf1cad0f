"""The D-Bus route's client transport: call another application's ``Send`` and hear its signals.

:class:`DbusClient` keeps a connection to a bus (a :class:`~.connection.BusLink`, which
reconnects with backoff) and calls ``Send`` on the server that owns ``bus_name``:

Outbound: :meth:`DbusClient.send`
    Encodes the envelope (at most ``max_message`` bytes) and calls ``Send`` with it, without
    waiting: the reply arrives later. While disconnected, or with ``max_calls`` calls in
    progress, it raises at once (a route head turns that into a bounce). A call that ends
    without a reply envelope (a D-Bus error: no owner, access denied, the connection lost; or
    no answer within ``call_timeout`` seconds) is given to ``on_undelivered(envelope, reason)``.

Inbound
    The return value of a call (the server's reply envelope, or its ``error`` envelope) and
    the signals ``Envelope(s)`` the owner of ``bus_name`` emits (broadcast, or addressed to
    this connection) are checked once, here: JSON only, :func:`polycephaly_ros.codec.check`
    (control subjects and the poison pill refused, ``route`` set), at most ``max_message``
    bytes. The server's ``error`` envelope about a call (sender ``polycephaly``) becomes the
    reply of the name called, to the head that called it, with a header ``refused_by`` (the
    server's bus name), so ``wait_for_reply`` returns it.
    Then ``on_envelope(envelope)`` gets it; it raises QueueFull while its recipient's queue is
    full (offered again every :data:`~.server.HOLD_RETRY` seconds, ``hold_timeout`` at most;
    ``max_calls`` envelopes at most wait so, more are not delivered) or
    another PolycephalyError (a signal for a name that is not one of ours: ignored and
    counted). Signals from any other connection are ignored. What is refused or cannot be
    delivered is counted in :attr:`DbusClient.stats` and logged (throttled).

Threading: as :mod:`.server`: callbacks in the link's thread, :meth:`send` from any thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable

from dbus_fast import DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

from ... import codec
from ...errors import EnvelopeError, PolycephalyError, QueueFull, RecipientUnavailable
from ...throttle import Throttle
from ..framing import MAX_FRAME
from .connection import BusLink, ask_daemon
from .interface import DBUS, INTERFACE, METHOD, OBJECT_PATH, SIGNAL
from .server import HOLD_RETRY

_log = logging.getLogger(__name__)

_RETURN, _ERROR, _SIGNAL = MessageType.METHOD_RETURN, MessageType.ERROR, MessageType.SIGNAL


class DbusClient:
    """Call a DbusServer's Send, deliver its replies and signals; see the module documentation."""

    def __init__(
        self,
        on_envelope: Callable[[dict[str, Any]], None],
        on_undelivered: Callable[[dict[str, Any], str], None],
        *,
        bus: str = 'session',
        bus_name: str,
        object_path: str = OBJECT_PATH,
        interface: str = INTERFACE,
        route: str = 'dbus',
        poison_pill: str | None = None,
        call_timeout: float = 10.0,
        max_calls: int = 128,
        max_message: int = MAX_FRAME,
        hold_timeout: float = 2.0,
        backoff: tuple[float, float] = (0.05, 2.0),
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.bus_name, self.object_path, self.interface = bus_name, object_path, interface
        self.route, self.poison_pill = route, poison_pill
        self.call_timeout, self.max_calls, self.max_message = call_timeout, max_calls, max_message
        self.hold_timeout = hold_timeout
        self._on_envelope, self._on_undelivered = on_envelope, on_undelivered
        self.link = BusLink(bus, name=f'client of {bus_name}', on_connect=self._set_up,
                            on_message=self._on_message, on_lost=self._lost, backoff=backoff,
                            on_failure=on_failure)
        #: calls, replies, errors (D-Bus errors), timeouts, signals, ignored, refused,
        #: undeliverable, lost.
        self.stats: collections.Counter[str] = collections.Counter()
        self._calls: dict[int, tuple[dict[str, Any], Any]] = {}  # serial -> (envelope, timer)
        self._in_flight = 0  # calls handed over or in progress (any thread, under _lock)
        self._held = 0  # envelopes waiting for room in their recipient's queue
        self._lock = threading.Lock()
        self._owner: str | None = None  # the unique name owning bus_name, when known
        self._throttle = Throttle(_log)

    @property
    def connected(self) -> bool:
        """Tell whether the client is connected to the bus now."""
        return self.link.connected

    def start(self) -> None:
        """Start connecting (and reconnecting) in the link's thread."""
        self.link.start()

    def close(self) -> None:
        """Disconnect and join the link's thread; what was in progress is undelivered."""
        self.link.close()
        self._lost()

    def send(self, envelope: dict[str, Any]) -> None:
        """Call Send with envelope (from any thread); its reply is delivered when it comes."""
        data = codec.encode(envelope)
        if len(data) > self.max_message:
            raise EnvelopeError(f'the envelope is {len(data)} bytes as JSON; the D-Bus route '
                                f'takes at most {self.max_message}')
        if not self.link.connected:
            raise RecipientUnavailable(f'not connected to {self.link.where}')
        with self._lock:
            if self._in_flight >= self.max_calls:
                raise QueueFull(f'{self._in_flight} calls to {self.bus_name} are in progress, '
                                'the most this route makes at once')
            self._in_flight += 1
        try:
            self.link.call_soon(self._call, envelope, data.decode())
        except PolycephalyError:
            self._release()
            raise

    # -- the link's thread -----------------------------------------------------------------
    async def _set_up(self, bus: MessageBus) -> None:
        """Subscribe to the server's signals and to its changes of owner; learn its owner."""
        await ask_daemon(bus, 'AddMatch', 's', [
            f"type='signal',sender='{self.bus_name}',path='{self.object_path}',"
            f"interface='{self.interface}',member='{SIGNAL}'"])
        await ask_daemon(bus, 'AddMatch', 's', [
            f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',"
            f"arg0='{self.bus_name}'"])
        try:
            self._owner = (await ask_daemon(bus, 'GetNameOwner', 's', [self.bus_name]))[0]
        except DBusError:
            self._owner = None  # not there yet: NameOwnerChanged says when it comes

    def _call(self, envelope: dict[str, Any], text: str) -> None:
        """Call Send with text; remember envelope until the answer (or the timeout) comes."""
        bus, loop = self.link.bus, self.link.loop
        if bus is None or loop is None:
            self._release()
            self._undelivered(envelope, f'not connected to {self.link.where}')
            return
        msg = Message(destination=self.bus_name, path=self.object_path,
                      interface=self.interface, member=METHOD, signature='s', body=[text])
        msg.serial = bus.next_serial()
        timer = loop.call_later(self.call_timeout, self._expire, msg.serial)
        self._calls[msg.serial] = (envelope, timer)
        self.stats['calls'] += 1
        future = bus.send(msg)
        if future.done():  # (written at once, the common case: no callback, no loop turn)
            self._written(future)
        else:
            future.add_done_callback(self._written)

    def _written(self, future: Any) -> None:
        """Log a call that could not be written (the loss is told when the link drops)."""
        if not future.cancelled() and future.exception() is not None:
            self._throttle.warning('write', 'D-Bus client of %s: could not write a call: %s',
                                   self.bus_name, future.exception())

    def _on_message(self, msg: Message) -> bool | None:
        """Take the returns of our calls and the server's signals; leave the rest to dbus-fast."""
        kind = msg.message_type
        if kind is _RETURN or kind is _ERROR:
            pending = self._calls.pop(msg.reply_serial, None)
            if pending is None:
                return None
            envelope, timer = pending
            timer.cancel()
            self._release()
            if kind is _ERROR:
                self.stats['errors'] += 1
                text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ''
                self._undelivered(envelope, f'D-Bus error {msg.error_name}: {text}')
            elif msg.signature != 's':
                self.stats['refused'] += 1
                self._undelivered(envelope, f'{self.bus_name} answered with signature '
                                  f'{msg.signature!r}, not an envelope')
            else:
                self.stats['replies'] += 1
                self._take(msg.body[0], envelope)
            return True
        if kind is _SIGNAL:
            if msg.member == 'NameOwnerChanged' and msg.sender == DBUS:
                if msg.body[0] == self.bus_name:
                    self._owner = msg.body[2] or None
                return None
            if msg.member == SIGNAL and msg.interface == self.interface and \
                    msg.path == self.object_path and msg.signature == 's':
                if msg.sender != self._owner or self._owner is None:
                    self.stats['ignored'] += 1
                    return True
                self.stats['signals'] += 1
                self._take(msg.body[0], None)
                return True
        return None

    def _take(self, text: str, asked: dict[str, Any] | None) -> None:
        """Check an envelope from the server and deliver it (asked: the call it answers)."""
        obj = None
        try:
            if len(text) > self.max_message:
                raise EnvelopeError(f'{len(text)} characters, over {self.max_message}')
            obj = codec.parse(text)
            if asked is not None and obj.get('sender') == codec.ERROR_SENDER:
                # The server's error about our call: from the name called, so that it is the
                # reply a wait_for_reply() waits for.
                obj.update(sender=asked['recipient'], recipient=asked['sender'],
                           refused_by=self.bus_name)
            envelope = codec.check(obj, route=self.route, poison_pill=self.poison_pill)
        except EnvelopeError as exc:
            self.stats['refused'] += 1
            self._throttle.warning('refused', 'D-Bus client of %s: refused an envelope from '
                                   'it: %s', self.bus_name, exc)
            return
        self._offer(envelope, asked is None, None)

    def _offer(self, envelope: dict[str, Any], signal: bool, until: float | None) -> None:
        """Deliver envelope, holding it (max_calls at most) while its recipient's queue is full."""
        loop = self.link.loop
        try:
            self._on_envelope(envelope)
        except QueueFull as exc:
            if loop is not None:
                now = loop.time()
                if until is None and self._held < self.max_calls:
                    until = now + self.hold_timeout
                    self._held += 1
                if until is not None and now < until:
                    loop.call_later(HOLD_RETRY, self._offer, envelope, signal, until)
                    return
            self._not_taken(envelope, f'{exc} (for {self.hold_timeout:g} s)')
        except PolycephalyError as exc:
            if signal:  # (a broadcast for somebody else's heads)
                self.stats['ignored'] += 1
                _log.debug('D-Bus client of %s: ignored a signal: %s', self.bus_name, exc)
            else:
                self._not_taken(envelope, str(exc))
        if until is not None:
            self._held -= 1

    def _not_taken(self, envelope: dict[str, Any], reason: str) -> None:
        """Count and log an envelope from the server that no head took."""
        self.stats['undeliverable'] += 1
        self._throttle.warning('undeliverable', 'D-Bus client of %s: could not deliver %r to '
                               '%r: %s', self.bus_name, envelope.get('subject'),
                               envelope.get('recipient'), reason)

    def _expire(self, serial: int) -> None:
        """End a call the server did not answer in time: undelivered."""
        pending = self._calls.pop(serial, None)
        if pending is not None:
            self.stats['timeouts'] += 1
            self._release()
            self._undelivered(pending[0], f'{self.bus_name} did not answer within '
                              f'{self.call_timeout:g} s')

    def _undelivered(self, envelope: dict[str, Any], reason: str) -> None:
        """Tell on_undelivered that envelope was not delivered, and why."""
        try:
            self._on_undelivered(envelope, reason)
        except Exception:
            _log.exception('D-Bus client of %s: on_undelivered failed', self.bus_name)

    def _release(self) -> None:
        """Free the place of one call in progress."""
        with self._lock:
            self._in_flight -= 1

    def _lost(self) -> None:
        """End the calls in progress: undelivered, the connection is gone."""
        calls, self._calls = self._calls, {}
        for envelope, timer in calls.values():
            timer.cancel()
            self._release()
            self.stats['lost'] += 1
            self._undelivered(envelope, f'lost the connection to {self.link.where}')
        self._owner = None
