"""A plain dbus-fast peer, as an outside program without our library would write it.

:class:`Peer` connects to a bus from an asyncio loop in a thread of its own and offers
blocking calls to the tests: :meth:`Peer.call` calls a method (any signature) and returns the
reply message, :meth:`Peer.request` sends an envelope to the route's ``Send`` and returns the
reply envelope, and :meth:`Peer.subscribe` collects the route's ``Envelope`` signals.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import orjson
from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

ROUTE = {'path': '/io/polycephaly/Route', 'interface': 'io.polycephaly.Route1'}


class Peer:
    """A dbus-fast connection to the bus at address; signals it subscribed to wait in .signals."""

    def __init__(self, address: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.signals: queue.Queue[Message] = queue.Queue()
        self.bus: MessageBus = self._run(self._connect(address))

    async def _connect(self, address: str) -> MessageBus:
        bus = await MessageBus(bus_address=address).connect()
        bus.add_message_handler(self._message)
        return bus

    def _message(self, msg: Message) -> bool | None:
        if msg.message_type is MessageType.SIGNAL and msg.member == 'Envelope':
            self.signals.put(msg)
        return None

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, destination: str, body: list, signature: str = 's', member: str = 'Send',
             no_reply: bool = False, **where: str) -> Message | None:
        """Call a method of destination (the route's Send by default); return the reply."""
        msg = Message(destination=destination, member=member, signature=signature, body=body,
                      flags=MessageFlag.NO_REPLY_EXPECTED if no_reply else MessageFlag.NONE,
                      **{**ROUTE, **where})
        if no_reply:
            self._run(self._send(msg))
            return None
        return self._run(self.bus.call(msg))

    async def _send(self, msg: Message) -> None:
        await self.bus.send(msg)

    def request(self, destination: str, envelope: dict | str) -> dict:
        """Send an envelope (a dict, or text as it is) to Send; return the reply envelope."""
        text = envelope if isinstance(envelope, str) else orjson.dumps(envelope).decode()
        reply = self.call(destination, [text])
        assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply
        return orjson.loads(reply.body[0])

    def subscribe(self, rule: str = "type='signal',interface='io.polycephaly.Route1'") -> None:
        """Add a match rule (by default: every signal of the route's interface)."""
        reply = self.call('org.freedesktop.DBus', [rule], member='AddMatch',
                          path='/org/freedesktop/DBus', interface='org.freedesktop.DBus')
        assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply

    def next_signal(self, timeout: float = 10.0) -> tuple[Message, dict]:
        """Return the next signal and its envelope; fail after timeout seconds."""
        try:
            msg = self.signals.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'no signal within {timeout} s') from None
        return msg, orjson.loads(msg.body[0])

    def close(self) -> None:
        """Disconnect and stop the loop."""
        self.loop.call_soon_threadsafe(self.bus.disconnect)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> Peer:
        """Return the peer."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the peer."""
        self.close()
