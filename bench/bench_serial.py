#!/usr/bin/env python3
"""Round trip over the serial route, beside a bare pyserial echo over the same kind of pty.

A client in this process holds the master end of a pseudo-terminal pair (``os.openpty()``, one
pair per server) and writes the same envelope (about 270 bytes) to the server on the slave
end, then waits for its reply:

* raw: a bare pyserial program opens the slave, reads what is waiting (``read(in_waiting or
  1)``), splits frames, parses each with orjson, answers with the reply envelope (sender and
  recipient swapped, same thread, index + 1, new message id) and writes it back: the least a
  JSON-over-serial service does; in either framing (for cobs it also checks and appends the
  CRC-32 and COBS-decodes and -encodes, with the route's own functions);
* transport alone: our SerialTransport answering in its own callback, no head (the decode with
  every header checked, a reply from envelope.answer, the framing): the route's floor;
* route, served by the answering head: a SerialRouteHead subclass whose own filter answers
  (the raw program's shape: the thread that reads the device answers);
* route, echo head behind the route head (threads): the route head delivers to another head,
  whose reply is written to the device from that head's own thread.

As bench_uds.py explains, placement decides more than code on a small VM, so each path is
measured pinned to one CPU (client and server on CPU 0), pinned to two (client on 0, server on
1) and unpinned, beside the raw program in the same placement; rounds are interleaved and the
table reports the median of the per-round medians and p90. Target: route <= 1.5 x raw.

Run: ./dev env -- python bench/bench_serial.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import sys
import time
import tty
import zlib

import orjson
from placement import pin

import polycephaly_ros
from polycephaly_ros.envelope import new_id
from polycephaly_ros.routes.serial import SerialRouteHead, cobs_decode, cobs_encode

REQUEST = {'sender': 'touch', 'recipient': 'echo', 'subject': 'ping', 'body': 'Hello, World!',
           'messageid': '9da03bcf-af3d-49ad-a9d4-17617c974de6',
           'threadid': '05cc7e85-f291-4c63-af34-6d47b8fc2594', 'threadindex': 1,
           'time': 123456789.0, 'args': ['Arg1', 'Arg2'], 'kwargs': {'abc': 123, 'xyz': 789}}
_PAYLOAD = orjson.dumps(REQUEST)
FRAMES = {'json': _PAYLOAD + b'\n',
          'cobs': cobs_encode(_PAYLOAD + zlib.crc32(_PAYLOAD).to_bytes(4, 'little')) + b'\0'}
DELIMITER = {'json': b'\n', 'cobs': b'\0'}


# -- raw baseline ---------------------------------------------------------------------------------
def raw_server(path: str, framing: str) -> None:
    """Answer every frame on a serial device with bare pyserial."""
    import serial

    device = serial.Serial(path, 115200)  # blocking reads
    delimiter, buf = DELIMITER[framing], b''
    while True:
        buf += device.read(device.in_waiting or 1)
        *frames, buf = buf.split(delimiter)
        for frame in frames:
            if framing == 'cobs':
                data = cobs_decode(frame)
                frame = data[:-4]
                assert zlib.crc32(frame) == int.from_bytes(data[-4:], 'little')
            env = orjson.loads(frame)
            reply = dict(env)
            reply.update(sender=env['recipient'], recipient=env['sender'], subject='reply',
                         messageid=new_id(), threadindex=env['threadindex'] + 1,
                         time=time.time())
            out = orjson.dumps(reply)
            device.write(out + b'\n' if framing == 'json' else
                         cobs_encode(out + zlib.crc32(out).to_bytes(4, 'little')) + b'\0')


# -- the transport alone --------------------------------------------------------------------------
def transport_server(path: str, framing: str) -> None:
    """Answer every frame in the transport's callback, in its loop: no head, queue or filters."""
    from polycephaly_ros.envelope import answer
    from polycephaly_ros.loop import Loop
    from polycephaly_ros.routes.serial import SerialTransport

    loop = Loop()
    transport = SerialTransport(path, lambda env: transport.send(answer(env, 'echo', env['body'])),
                                framing=framing)
    transport.start(loop=loop)
    while True:
        loop.run_once()


# -- the route ------------------------------------------------------------------------------------
class Serve(SerialRouteHead):
    """Own the serial device and answer every 'ping' in the same head."""

    @polycephaly_ros.message_filter(route='serial', subject='ping')
    def ping(self, message: dict) -> None:
        """Answer with the body."""
        self.reply(message, message['body'])


class Echo(polycephaly_ros.Process):
    """Answer every 'ping' from the serial line with its body."""

    @polycephaly_ros.message_filter(route='serial', subject='ping')
    def ping(self, message: dict) -> None:
        """Answer with the body."""
        self.reply(message, message['body'])


def route_app(path: str, framing: str, served: bool) -> None:
    """Run an application serving the device: the route head answers, or a head behind it."""
    app = polycephaly_ros.Application(ros=False, threads_timeout=5)
    if served:
        app.add_process(Serve, name='echo', path=path, framing=framing)
    else:
        app.add_process(SerialRouteHead, name='serial', path=path, framing=framing)
        app.add_process(Echo, name='echo')
    sys.exit(app.run())


# -- client ---------------------------------------------------------------------------------------
class Client:
    """The master end of one pty pair; the server opens the slave's path."""

    def __init__(self, framing: str) -> None:
        self.fd, self.slave = os.openpty()
        tty.setraw(self.fd)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.frame, self.delimiter = FRAMES[framing], DELIMITER[framing]

    def round_trip(self) -> None:
        """Send the request and read its whole reply."""
        os.write(self.fd, self.frame)
        data = os.read(self.fd, 65536)
        while not data.endswith(self.delimiter):
            data += os.read(self.fd, 65536)

    def ready(self, timeout: float = 20.0) -> None:
        """Return once the server answers (a bench, so polling is fine here)."""
        os.set_blocking(self.fd, False)
        deadline = time.monotonic() + timeout
        data = b''
        while not data.endswith(self.delimiter):
            assert time.monotonic() < deadline, f'no answer on {self.path}'
            os.write(self.fd, self.frame)
            time.sleep(0.2)
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                data = b''
        time.sleep(0.3)
        try:
            while os.read(self.fd, 65536):  # answers to the extra probes
                pass
        except BlockingIOError:
            pass
        os.set_blocking(self.fd, True)

    def round_trips(self, count: int) -> list[float]:
        """Return the time of each of count round trips."""
        times, clock = [], time.perf_counter
        for _ in range(count):
            t = clock()
            self.round_trip()
            times.append(clock() - t)
        return times


def main() -> None:
    """Measure every path in every placement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=2000, help='round trips per round')
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    ctx = mp.get_context('spawn')
    variants = {  # name: (framing, target, args after path)
        'raw pyserial echo (json)': ('json', raw_server, ('json',)),
        'transport alone, no head (json)': ('json', transport_server, ('json',)),
        'route, served by the answering head (json)': ('json', route_app, ('json', True)),
        'route, echo head behind the route head (json)': ('json', route_app, ('json', False)),
        'raw pyserial echo (cobs)': ('cobs', raw_server, ('cobs',)),
        'route, served by the answering head (cobs)': ('cobs', route_app, ('cobs', True)),
    }
    clients = {name: Client(framing) for name, (framing, _, _) in variants.items()}
    servers = {name: ctx.Process(target=target, args=(clients[name].path, *extra), daemon=True)
               for name, (_, target, extra) in variants.items()}
    for p in servers.values():
        p.start()
    for client in clients.values():
        client.ready()
    every = set(range(os.cpu_count() or 1))
    placements = {'one CPU': ({0}, {0}), 'unpinned': (every, every)}
    if len(every) > 1:
        placements['two CPUs'] = ({0}, {1})
    p50s = {(where, name): [] for where in placements for name in variants}
    p90s = {(where, name): [] for where in placements for name in variants}
    try:
        for client in clients.values():
            client.round_trips(300)  # warm up
        for _ in range(args.rounds):
            for where, (client_cpus, server_cpus) in placements.items():
                os.sched_setaffinity(0, client_cpus)
                for p in servers.values():
                    pin(p.pid, server_cpus)
                for name, client in clients.items():
                    client.round_trips(200)  # settle in the new placement
                    times = sorted(client.round_trips(args.count))
                    p50s[where, name].append(times[len(times) // 2])
                    p90s[where, name].append(times[int(len(times) * 0.9)])
    finally:
        for p in servers.values():
            os.kill(p.pid, signal.SIGTERM)
        for p in servers.values():
            p.join(10)
            if p.is_alive():
                p.kill()
    print(f'\nSerial round trip over a pty, {len(FRAMES["json"])}-byte JSON line / '
          f'{len(FRAMES["cobs"])}-byte COBS frame, {args.rounds} rounds x {args.count} '
          f'(median of round medians), {os.cpu_count()} CPUs\n')
    print('| placement | path | round trip p50 | p90 | ratio to raw (p50) |')
    print('|---|---|---|---|---|')
    for where in placements:
        for name, (framing, _, _) in variants.items():
            base = statistics.median(p50s[where, f'raw pyserial echo ({framing})'])
            p50 = statistics.median(p50s[where, name])
            p90 = statistics.median(p90s[where, name])
            print(f'| {where} | {name} | {p50 * 1e6:.0f} µs | {p90 * 1e6:.0f} µs | '
                  f'{p50 / base:.2f} × |')
    print('\nTarget: route <= 1.5 x raw.')


if __name__ == '__main__':
    main()
