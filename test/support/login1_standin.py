"""A stand-in for systemd-logind on a private bus: ``python login1_standin.py ADDRESS``.

It owns ``org.freedesktop.login1`` and answers, at ``/org/freedesktop/login1``, exactly two
methods of ``org.freedesktop.login1.Manager`` with their real signatures:

* ``Inhibit(ssss) -> h``: returns the write end of a new pipe (as logind does with a FIFO) and
  watches the read end: when every copy of the write end is closed, the lock is released;
* ``ScheduleShutdown(st)``: records the call and answers nothing more.

Everything it sees is printed on stdout as one JSON object per line, in the order it happened:
``{"event": "ready"}`` once it owns the name, ``{"event": "inhibit", "id": n, "what": ...,
"who": ..., "why": ..., "mode": ..., "sender": ...}``, ``{"event": "released", "id": n}``,
``{"event": "schedule", "type": ..., "usec": ...}``. Any other call is answered with
``org.freedesktop.DBus.Error.UnknownMethod``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from dbus_fast import Message, MessageType, NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

MANAGER = 'org.freedesktop.login1.Manager'
PATH = '/org/freedesktop/login1'


def emit(event: str, **fields: object) -> None:
    print(json.dumps({'event': event, **fields}), flush=True)


class Login1:
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.loop = asyncio.get_running_loop()
        self.count = 0

    def handle(self, msg: Message) -> bool | None:
        if msg.message_type != MessageType.METHOD_CALL or msg.destination in (
                None, 'org.freedesktop.DBus'):
            return None
        if msg.path == PATH and msg.interface == MANAGER:
            if msg.member == 'Inhibit' and msg.signature == 'ssss':
                self.inhibit(msg)
                return True
            if msg.member == 'ScheduleShutdown' and msg.signature == 'st':
                emit('schedule', type=msg.body[0], usec=msg.body[1])
                self.bus.send(Message.new_method_return(msg))
                return True
        self.bus.send(Message.new_error(msg, 'org.freedesktop.DBus.Error.UnknownMethod',
                                        f'no {msg.interface}.{msg.member} ({msg.signature}) '
                                        f'at {msg.path} in this stand-in'))
        return True

    def inhibit(self, msg: Message) -> None:
        self.count += 1
        ident = self.count
        read, write = os.pipe()
        what, who, why, mode = msg.body
        emit('inhibit', id=ident, what=what, who=who, why=why, mode=mode, sender=msg.sender)
        sent = self.bus.send(Message.new_method_return(msg, 'h', [0], unix_fds=[write]))
        sent.add_done_callback(lambda _: os.close(write))  # the caller holds the only copy now
        self.loop.add_reader(read, self.watch, read, ident)

    def watch(self, read: int, ident: int) -> None:
        if os.read(read, 4096):
            return  # (nobody writes to it; ignore)
        self.loop.remove_reader(read)
        os.close(read)
        emit('released', id=ident)


async def main(address: str) -> None:
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    login1 = Login1(bus)
    bus.add_message_handler(login1.handle)
    reply = await bus.request_name('org.freedesktop.login1', NameFlag.DO_NOT_QUEUE)
    if reply != RequestNameReply.PRIMARY_OWNER:
        raise SystemExit(f'could not own org.freedesktop.login1: {reply}')
    emit('ready')
    await bus.wait_for_disconnect()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1]))
