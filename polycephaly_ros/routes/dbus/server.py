"""The D-Bus route's server transport: a bus name whose ``Send`` method reaches the heads.

:class:`DbusServer` owns ``bus_name`` on a bus (through a :class:`~.connection.BusLink`, which
reconnects) and exports :data:`~.interface.OBJECT_PATH` with :data:`~.interface.INTERFACE`.

Inbound: ``Send(s envelope) -> s reply``
    The argument is checked once, here: at most ``max_message`` bytes, JSON only, then
    :func:`polycephaly_ros.codec.check` (control subjects and the poison pill refused,
    ``route`` set). The envelope gets the header :data:`~.interface.CALL_HEADER` (any value
    the caller gave is replaced) and is handed to ``deliver``; ``reply()`` echoes that header,
    so the head's reply finds the call and becomes its return value. Until then the call waits,
    ``call_timeout`` seconds (checked every quarter of it, by one timer for all calls); then it
    returns an ``error`` envelope saying so. Anything
    refused (bad JSON or headers, too big, an unknown or stopped head, more than ``max_calls``
    calls in progress) returns an ``error`` envelope at once (:func:`codec.error_envelope`);
    a call with another signature than ``s`` gets the D-Bus error ``InvalidArgs``. While the
    recipient's queue is full, ``deliver`` raises QueueFull and the envelope is offered again
    every :data:`HOLD_RETRY` seconds, ``hold_timeout`` at most. A call flagged
    NO_REPLY_EXPECTED (``busctl call --expect-reply=no``) is delivered the same way without the
    header; what it would have been answered goes out as a signal to the caller.

Outbound: :meth:`DbusServer.send`
    An envelope with the header of a call still waiting is that call's return value. Any other
    (a head writing to an outside name, a reply after its call timed out) is emitted as the
    signal ``Envelope(s)``: to the connection that last called as its recipient (the route
    learns callers' names from their envelopes' ``sender``; a name's entry is forgotten when
    its connection leaves the bus), else to every subscriber.

Bounds: ``max_calls`` calls in progress (held, delivered or waiting for a reply), ``names``
remembered callers, ``max_message`` bytes each way. Counters are in :attr:`DbusServer.stats`:
calls; delivered; replied; refused (every call answered with an error, busy and timeouts
included: calls = replied + refused once all are answered); busy; timeouts; late (replies after
their call ended); signals; lost (what could not be written, calls cut by a lost connection).
Log lines about outside input are throttled (:class:`~polycephaly_ros.throttle.Throttle`).

Threading: every callback runs in the link's thread (:mod:`.connection`), ``deliver`` too, so
it must not block (a route head delivers with ``timeout=0``). :meth:`send` may be called from
any thread; it encodes there and hands the text to the link's thread.
"""

from __future__ import annotations

import collections
import itertools
import logging
from typing import Any, Callable

from dbus_fast import DBusError, Message, MessageFlag, MessageType, NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

from ... import codec
from ...errors import (ConfigurationError, EnvelopeError, PolycephalyError, QueueFull,
                       RecipientUnavailable)
from ...throttle import Throttle
from ..framing import MAX_FRAME
from .connection import BusLink, ask_daemon
from .interface import (CALL_HEADER, DBUS, INTERFACE, INVALID_ARGS, METHOD, OBJECT_PATH, SIGNAL,
                        RouteInterface)

_log = logging.getLogger(__name__)

#: Seconds between offers of an envelope whose recipient's queue is full.
HOLD_RETRY = 0.002
_CALL, _SIGNAL = MessageType.METHOD_CALL, MessageType.SIGNAL
_NO_REPLY = MessageFlag.NO_REPLY_EXPECTED
_VANISHED = (f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',"
             "arg2=''")


class _Call:
    """A call in progress: its message, what an error answer needs, its envelope until delivered."""

    __slots__ = ('msg', 'about', 'envelope', 'timer', 'hold_until', 'deadline', 'wants_reply')

    def __init__(self, msg: Message, envelope: dict[str, Any], wants_reply: bool) -> None:
        self.msg, self.envelope, self.wants_reply = msg, envelope, wants_reply
        self.about = {h: envelope[h] for h in ('sender', 'recipient', 'threadid', 'threadindex')}
        self.timer: Any = None  # (while held: the next offer)
        self.hold_until: float | None = None
        self.deadline: float | None = None  # (once delivered: when it gets an error)


class DbusServer:
    """Serve the route's object under a bus name; see the module documentation."""

    def __init__(
        self,
        deliver: Callable[[dict[str, Any]], None],
        *,
        bus: str = 'session',
        bus_name: str,
        object_path: str = OBJECT_PATH,
        interface: str = INTERFACE,
        route: str = 'dbus',
        poison_pill: str | None = None,
        call_timeout: float = 5.0,
        max_calls: int = 256,
        max_message: int = MAX_FRAME,
        hold_timeout: float = 2.0,
        names: int = 1024,
        backoff: tuple[float, float] = (0.05, 2.0),
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.bus_name, self.object_path, self.interface = bus_name, object_path, interface
        self.route, self.poison_pill = route, poison_pill
        self.call_timeout, self.max_calls, self.max_message = call_timeout, max_calls, max_message
        self.hold_timeout, self.max_names = hold_timeout, names
        self._deliver = deliver
        self.link = BusLink(bus, name=bus_name, on_connect=self._set_up,
                            on_message=self._on_message, on_lost=self._lost, backoff=backoff,
                            on_failure=on_failure)
        #: What happened so far (see the module documentation).
        self.stats: collections.Counter[str] = collections.Counter()
        self._calls: dict[int, _Call] = {}
        self._keys = itertools.count(1)
        self._names: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._sweeping = False  # whether a sweep for overdue calls is due
        self._throttle = Throttle(_log)

    @property
    def connected(self) -> bool:
        """Tell whether the server owns its name on the bus now."""
        return self.link.connected

    def start(self) -> None:
        """Connect and serve in the link's thread; ConfigurationError if the name is refused."""
        self.link.start()

    def close(self) -> None:
        """Release the name, disconnect and join the link's thread."""
        self.link.close()
        self._lost()

    def send(self, envelope: dict[str, Any]) -> None:
        """Answer the call envelope replies to, or emit it as a signal (from any thread)."""
        key = envelope.pop(CALL_HEADER, None)
        data = codec.encode(envelope)
        if len(data) > self.max_message:
            reason = (f'the envelope is {len(data)} bytes as JSON; the D-Bus route takes at most '
                      f'{self.max_message}')
            if key is not None:  # the caller is told too, at once
                self.link.call_soon(self._fail, key, f'the reply was refused: {reason}')
            raise EnvelopeError(reason)
        if not self.link.connected:
            raise RecipientUnavailable(f'not connected to {self.link.where}')
        self.link.call_soon(self._out, key, envelope['recipient'], data.decode())

    # -- the link's thread -----------------------------------------------------------------
    async def _set_up(self, bus: MessageBus) -> None:
        """Export the object, watch callers leave and take the name (ConfigurationError if not)."""
        bus.export(self.object_path, RouteInterface(self.interface))
        await ask_daemon(bus, 'AddMatch', 's', [_VANISHED])
        try:
            reply = await bus.request_name(self.bus_name, NameFlag.DO_NOT_QUEUE)
        except DBusError as exc:
            raise ConfigurationError(f'the bus refused the name {self.bus_name!r}: {exc.text} '
                                     '(its policy: see config/dbus/)') from None
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            owner = await ask_daemon(bus, 'GetNameOwner', 's', [self.bus_name])
            pid = await ask_daemon(bus, 'GetConnectionUnixProcessID', 's', owner)
            raise ConfigurationError(f'the name {self.bus_name!r} is owned by another connection '
                                     f'({owner[0]}, pid {pid[0]}): is the application running '
                                     'twice?')

    def _on_message(self, msg: Message) -> Message | bool | None:
        """Take calls of Send on the route's object; let dbus-fast handle everything else."""
        if msg.message_type is not _CALL:
            if msg.message_type is _SIGNAL and msg.member == 'NameOwnerChanged' \
                    and msg.sender == DBUS and msg.body[2] == '':
                self._vanished(msg.body[0])
            return None
        if msg.member != METHOD or msg.path != self.object_path or \
                msg.interface not in (self.interface, None):
            return None
        self.stats['calls'] += 1
        wants_reply = not msg.flags & _NO_REPLY
        if msg.signature != 's':
            self.stats['refused'] += 1
            self._throttle.warning('signature', 'D-Bus %s: refused a call from %s with signature '
                                   '%r', self.bus_name, msg.sender, msg.signature)
            return Message.new_error(msg, INVALID_ARGS, f'{METHOD} takes one string (signature '
                                     f'"s"): an envelope as JSON, not "{msg.signature}"') \
                if wants_reply else True
        text: str = msg.body[0]
        obj = None
        try:
            if len(text) > self.max_message or (
                    4 * len(text) > self.max_message and len(text.encode()) > self.max_message):
                raise EnvelopeError(f'the envelope is {len(text.encode())} bytes; the D-Bus '
                                    f'route takes at most {self.max_message}')
            obj = codec.parse(text)
            envelope = codec.check(obj, route=self.route, poison_pill=self.poison_pill)
        except EnvelopeError as exc:
            return self._refuse(msg, str(exc), obj, wants_reply)
        if len(self._calls) >= self.max_calls:
            self.stats['busy'] += 1
            return self._refuse(msg, f'busy: {len(self._calls)} calls are in progress, the most '
                                'this route takes; try again later', envelope, wants_reply)
        self._learn(envelope['sender'], msg.sender)
        key = next(self._keys)
        if wants_reply:
            envelope[CALL_HEADER] = key
        else:
            envelope.pop(CALL_HEADER, None)
        self._calls[key] = _Call(msg, envelope, wants_reply)
        self._offer(key)
        return True

    def _offer(self, key: int) -> None:
        """Deliver a call's envelope, or hold it while its recipient's queue is full."""
        call = self._calls.get(key)
        if call is None or call.envelope is None:
            return
        try:
            self._deliver(call.envelope)
        except QueueFull as exc:
            loop = self.link.loop
            assert loop is not None
            now = loop.time()
            if call.hold_until is None:
                call.hold_until = now + self.hold_timeout
            if now < call.hold_until:
                call.timer = loop.call_later(HOLD_RETRY, self._offer, key)
            else:
                self._fail(key, f'not delivered: {exc} (for {self.hold_timeout:g} s)')
            return
        except PolycephalyError as exc:
            self._fail(key, f'not delivered: {exc}')
            return
        except Exception as exc:  # a bug of ours: say so, answer, go on
            _log.exception('D-Bus %s: delivering a call failed', self.bus_name)
            self._fail(key, f'internal error: {type(exc).__name__}')
            return
        self.stats['delivered'] += 1
        call.envelope = None  # the head has it now
        loop = self.link.loop
        if not call.wants_reply:
            del self._calls[key]
        elif loop is not None:
            call.deadline = loop.time() + self.call_timeout
            if not self._sweeping:  # (one timer for all calls: cheaper than one a call)
                self._sweeping = True
                loop.call_later(self.call_timeout / 4, self._sweep)

    def _sweep(self) -> None:
        """End the calls whose reply is overdue; look again later while calls wait."""
        loop = self.link.loop
        now = loop.time() if loop is not None else float('inf')
        waiting = False
        for key, call in list(self._calls.items()):
            if call.deadline is not None and call.deadline <= now:
                self.stats['timeouts'] += 1
                self._fail(key, f'no reply from {call.about["recipient"]!r} within '
                           f'{self.call_timeout:g} s')
            else:
                waiting = waiting or call.deadline is not None
        self._sweeping = waiting and loop is not None
        if self._sweeping:
            loop.call_later(self.call_timeout / 4, self._sweep)

    def _fail(self, key: int, reason: str) -> None:
        """End a call with an error envelope naming reason."""
        call = self._calls.pop(key, None)
        if call is None:
            return
        if call.timer is not None:
            call.timer.cancel()
        answer = self._refuse(call.msg, reason, call.about, call.wants_reply)
        if isinstance(answer, Message) and self.link.bus is not None:
            self._write(self.link.bus, answer)

    def _refuse(self, msg: Message, reason: str, original: dict[str, Any] | None,
                wants_reply: bool) -> Message | bool:
        """Count and log a refused call; return its error answer (or signal it, for a post)."""
        self.stats['refused'] += 1
        self._throttle.warning('refused', 'D-Bus %s: refused a call from %s (%r): %s',
                               self.bus_name, msg.sender, (original or {}).get('sender'), reason)
        text = codec.encode(codec.error_envelope(reason, original)).decode()
        if wants_reply:
            return Message.new_method_return(msg, 's', [text])
        if self.link.bus is not None and (original or {}).get('subject') != 'error':
            self._write(self.link.bus, self._signal(text, msg.sender))
        return True

    def _out(self, key: int | None, recipient: str, text: str) -> None:
        """Send an envelope out: as its call's return value, or as a signal."""
        bus = self.link.bus
        call = self._calls.pop(key, None) if key is not None else None
        if bus is None:
            self.stats['lost'] += 1
            self._throttle.warning('lost', 'D-Bus %s: lost an envelope to %r: disconnected',
                                   self.bus_name, recipient)
            return
        if call is not None and call.wants_reply:
            self.stats['replied'] += 1  # (counted first: the caller may look at once)
            self._write(bus, Message.new_method_return(call.msg, 's', [text]))
            return
        if key is not None:
            self.stats['late'] += 1
            self._throttle.warning('late', 'D-Bus %s: a reply to %r came after its call ended; '
                                   'emitted as a signal', self.bus_name, recipient)
        self.stats['signals'] += 1
        self._write(bus, self._signal(text, self._names.get(recipient.lower())))

    def _signal(self, text: str, destination: str | None) -> Message:
        """Return the Envelope signal carrying text, to destination or (None) to all."""
        return Message(message_type=_SIGNAL, destination=destination, path=self.object_path,
                       interface=self.interface, member=SIGNAL, signature='s', body=[text])

    def _write(self, bus: MessageBus, msg: Message) -> None:
        """Send msg on bus; count it lost if it cannot be written."""
        future = bus.send(msg)
        if future.done():  # (written at once, the common case: no callback, no loop turn)
            self._written(future)
        else:
            future.add_done_callback(self._written)

    def _written(self, future: Any) -> None:
        """Count and log a message that could not be written."""
        if not future.cancelled() and future.exception() is not None:
            self.stats['lost'] += 1
            self._throttle.warning('lost', 'D-Bus %s: could not write a message: %s',
                                   self.bus_name, future.exception())

    def _learn(self, sender: str, unique: str | None) -> None:
        """Remember which connection last called as sender (the most recent max_names)."""
        if unique is None:
            return
        names, name = self._names, sender.lower()
        if names.get(name) != unique:
            names[name] = unique
        names.move_to_end(name)
        if len(names) > self.max_names:
            names.popitem(last=False)

    def _vanished(self, unique: str) -> None:
        """Forget the names a connection that left the bus called as."""
        if unique.startswith(':') and unique in self._names.values():
            for name in [n for n, u in self._names.items() if u == unique]:
                del self._names[name]

    def _lost(self) -> None:
        """Drop the calls in progress (their callers lost them too) and the callers' names."""
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if call.timer is not None:
                call.timer.cancel()
        if calls:
            self.stats['lost'] += len(calls)
            _log.warning('D-Bus %s: %d call(s) in progress were cut by the lost connection',
                         self.bus_name, len(calls))
        self._names.clear()
