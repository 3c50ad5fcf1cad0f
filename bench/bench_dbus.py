#!/usr/bin/env python3
"""Round trip over the D-Bus route beside a bare dbus-fast method call, through the same daemon.

One private dbus-daemon (test/support/dbus_daemon.py: a socket in a temporary folder, never the
machine's buses) carries every path. Each server runs in a process of its own and owns a name;
the client, in this process, is a plain dbus-fast connection calling ``Send(s) -> s`` with the
same envelope (about 270 bytes of JSON) and waiting for the answer, one call at a time:

* raw: a dbus-fast ServiceInterface whose ``Send`` parses the text with orjson and returns the
  reply envelope (sender and recipient swapped, same thread, index + 1, new message id) as
  orjson text: the least a JSON-over-D-Bus service does;
* transport alone: our DbusServer answering in its own callback, no head (the checks of every
  header, a reply from envelope.answer, the call's bookkeeping): the route's floor, which is
  also what a route head whose asyncio loop ran in the head's own thread would cost;
* route, served by the answering head: a DbusServerHead subclass whose own filter answers
  (the call is checked, delivered to that head's queue and answered from its thread);
* route, echo head behind the route head: the route head delivers to another head (a thread,
  then the route head as a process), whose reply comes back through it.

Every path is measured with client, daemon and servers on one CPU, on two (client on 0, the
rest on 1) and unpinned, each beside the raw server in the same placement; rounds are
interleaved, and the table reports the median of the per-round medians and p90.
Target: route <= 1.5 x raw.

Run: ./dev env -- python bench/bench_dbus.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import orjson
from placement import pin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'test' / 'support'))
from dbus_daemon import DbusDaemon  # noqa: E402  (test/support/dbus_daemon.py)

REQUEST = {'sender': 'touch', 'recipient': 'echo', 'subject': 'ping', 'body': 'Hello, World!',
           'messageid': '9da03bcf-af3d-49ad-a9d4-17617c974de6',
           'threadid': '05cc7e85-f291-4c63-af34-6d47b8fc2594', 'threadindex': 1,
           'time': 123456789.0, 'args': ['Arg1', 'Arg2'], 'kwargs': {'abc': 123, 'xyz': 789}}
TEXT = orjson.dumps(REQUEST).decode()
PATH, INTERFACE = '/io/polycephaly/Route', 'io.polycephaly.Route1'


# -- raw baseline ---------------------------------------------------------------------------
def raw_server(address: str, name: str) -> None:
    """Own name and answer Send with the reply envelope, made with orjson."""
    from dbus_fast.aio import MessageBus
    from dbus_fast.service import ServiceInterface, method

    from polycephaly_ros.envelope import new_id

    class Raw(ServiceInterface):
        def __init__(self) -> None:
            super().__init__(INTERFACE)

        @method(name='Send')
        def send(self, envelope: 's') -> 's':  # noqa: F821
            env = orjson.loads(envelope)
            reply = dict(env)
            reply.update(sender=env['recipient'], recipient=env['sender'], subject='reply',
                         messageid=new_id(), threadindex=env['threadindex'] + 1,
                         time=time.time())
            return orjson.dumps(reply).decode()

    async def serve() -> None:
        bus = await MessageBus(bus_address=address).connect()
        bus.export(PATH, Raw())
        await bus.request_name(name)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        bus.disconnect()

    asyncio.run(serve())


# -- the transport alone ------------------------------------------------------------------------
def transport_server(address: str, name: str) -> None:
    """Answer every call in the server's callback, in its own thread: no head, no hop."""
    from polycephaly_ros.envelope import answer
    from polycephaly_ros.routes.dbus import DbusServer

    def on_envelope(envelope: dict) -> None:
        server.send(answer(envelope, 'echo', envelope['body']))

    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # (for sigwait, in every thread)
    server = DbusServer(on_envelope, bus=address, bus_name=name)
    server.start()
    signal.sigwait([signal.SIGTERM])
    server.close()


# -- the route --------------------------------------------------------------------------------
def route_app(address: str, name: str, shape: str) -> None:
    """Run an application serving name: 'served' by the route head, or by an echo head."""
    import polycephaly_ros
    from polycephaly_ros.routes.dbus import DbusServerHead

    class Serve(DbusServerHead):
        @polycephaly_ros.message_filter(route='dbus', subject='ping')
        def ping(self, message: dict) -> None:
            self.reply(message, message['body'])

    class Echo(polycephaly_ros.Process):
        @polycephaly_ros.message_filter(route='dbus', subject='ping')
        def ping(self, message: dict) -> None:
            self.reply(message, message['body'])

    app = polycephaly_ros.Application(ros=False, threads_timeout=5)
    if shape == 'served':
        app.add_process(Serve, name='echo', bus=address, bus_name=name)
    else:
        app.add_process(DbusServerHead, name='dbus', bus=address, bus_name=name, mode=shape)
        app.add_process(Echo, name='echo')
    sys.exit(app.run())


# -- client -----------------------------------------------------------------------------------
async def connect(address: str):
    from dbus_fast.aio import MessageBus
    return await MessageBus(bus_address=address).connect()


async def round_trips(bus, name: str, count: int) -> list[float]:
    from dbus_fast import Message, MessageType
    times = []
    clock = time.perf_counter
    for _ in range(count):
        msg = Message(destination=name, path=PATH, interface=INTERFACE, member='Send',
                      signature='s', body=[TEXT])
        t = clock()
        reply = await bus.call(msg)
        times.append(clock() - t)
        if reply.message_type is not MessageType.METHOD_RETURN:
            raise RuntimeError(f'{name}: {reply.body}')
    return times


async def until_served(bus, name: str, timeout: float = 30.0) -> None:
    """Return once name answers a first call (a bench, so polling is fine here)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await round_trips(bus, name, 1)
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def measure(address: str, names: dict[str, str], servers: list, daemon_pid: int,
                  count: int, rounds: int) -> tuple[dict, dict, dict]:
    bus = await connect(address)
    for name in names.values():
        await until_served(bus, name)
        await round_trips(bus, name, 300)  # warm up
    every = set(range(os.cpu_count() or 1))
    placements = {'one CPU': ({0}, {0}), 'unpinned': (every, every)}
    if len(every) > 1:
        placements['two CPUs'] = ({0}, {1})
    p50s = {(where, path): [] for where in placements for path in names}
    p90s = {(where, path): [] for where in placements for path in names}
    for _ in range(rounds):
        for where, (client_cpus, server_cpus) in placements.items():
            os.sched_setaffinity(0, client_cpus)
            for pid in [daemon_pid, *(p.pid for p in servers)]:
                pin(pid, server_cpus)
            for path, name in names.items():
                await round_trips(bus, name, 100)  # settle in the new placement
                times = sorted(await round_trips(bus, name, count))
                p50s[where, path].append(times[len(times) // 2])
                p90s[where, path].append(times[int(len(times) * 0.9)])
    bus.disconnect()
    return placements, p50s, p90s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=2000, help='round trips per round')
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    ctx = mp.get_context('spawn')
    raw = 'raw dbus-fast method'
    variants = {  # path: (bus name, target, args)
        'transport alone (no head)': ('io.polycephaly.BenchTransport', transport_server, ()),
        'route, served by the answering head': ('io.polycephaly.BenchServed', route_app,
                                                ('served',)),
        'route, echo head behind the route head (threads)': ('io.polycephaly.BenchThread',
                                                             route_app, ('thread',)),
        'route, echo head behind the route head (route head a process)':
            ('io.polycephaly.BenchProcess', route_app, ('process',)),
    }
    names = {raw: 'io.polycephaly.BenchRaw'}
    names.update({path: v[0] for path, v in variants.items()})
    with DbusDaemon() as daemon:
        servers = [ctx.Process(target=raw_server, args=(daemon.address, names[raw]))]
        servers += [ctx.Process(target=target, args=(daemon.address, name, *extra))
                    for name, target, extra in variants.values()]
        for p in servers:
            p.start()
        try:
            placements, p50s, p90s = asyncio.run(measure(
                daemon.address, names, servers, daemon.process.pid, args.count, args.rounds))
        finally:
            for p in servers:
                os.kill(p.pid, signal.SIGTERM)
            for p in servers:
                p.join(10)
    print(f'\nD-Bus round trip, Send(s) -> s with a {len(TEXT)}-byte JSON envelope, through '
          f'one dbus-daemon, {args.rounds} rounds x {args.count} (median of round medians), '
          f'{os.cpu_count()} CPUs\n')
    print('| placement | path | round trip p50 | p90 | ratio to raw (p50) |')
    print('|---|---|---|---|---|')
    for where in placements:
        base = statistics.median(p50s[where, raw])
        for path in names:
            p50 = statistics.median(p50s[where, path])
            p90 = statistics.median(p90s[where, path])
            print(f'| {where} | {path} | {p50 * 1e6:.0f} µs | {p90 * 1e6:.0f} µs | '
                  f'{p50 / base:.2f} × |')
    print('\nTarget: route <= 1.5 x raw.')


if __name__ == '__main__':
    main()
