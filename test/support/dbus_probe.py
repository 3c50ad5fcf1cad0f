"""A small D-Bus program the policy tests run as another user: python dbus_probe.py ADDRESS CMD ...

Commands: ``own NAME`` prints the RequestName outcome (or the error's name);
``listen SECONDS`` subscribes to the route's signals, prints ``ready``, then prints the body of
the first signal that comes, or ``none`` after SECONDS.
"""

from __future__ import annotations

import asyncio
import sys

from dbus_fast import DBusError, Message, MessageType
from dbus_fast.aio import MessageBus


async def main(address: str, command: str, arg: str) -> None:
    bus = await MessageBus(bus_address=address).connect()
    if command == 'own':
        try:
            print((await bus.request_name(arg)).name, flush=True)
        except DBusError as exc:
            print(exc.type, flush=True)
        return
    got: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_message(msg: Message) -> None:
        if msg.message_type is MessageType.SIGNAL and msg.member == 'Envelope' \
                and not got.done():
            got.set_result(msg.body[0])

    bus.add_message_handler(on_message)
    await bus.call(Message(destination='org.freedesktop.DBus', path='/org/freedesktop/DBus',
                           interface='org.freedesktop.DBus', member='AddMatch', signature='s',
                           body=["type='signal',interface='io.polycephaly.Route1'"]))
    print('ready', flush=True)
    try:
        print(await asyncio.wait_for(got, float(arg)), flush=True)
    except asyncio.TimeoutError:
        print('none', flush=True)


if __name__ == '__main__':
    asyncio.run(main(*sys.argv[1:4]))
