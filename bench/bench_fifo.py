#!/usr/bin/env python3
"""Round trip over the named pipe route, beside a bare FIFO echo, in the same run.

Every server answers the same newline-delimited JSON envelope (about 270 bytes) from another
process, through a pair of pipes (the client writes ``in`` and reads ``out``):

* raw: a hand-written server reads a line from ``in``, parses it with orjson, answers with the
  reply envelope (sender and recipient swapped, same thread, index + 1, new message id) on
  ``out``: the least any JSON-over-FIFO service does;
* transport alone: our FifoTransport answering in its own callback, no head: the floor;
* route, served by the answering head: a FifoRouteHead subclass whose own filter answers;
* route, echo head behind the route head: the route head delivers to another head (a thread)
  whose reply goes out from that head's thread.

As in bench_uds.py, each path is measured pinned to one CPU, to two (client on 0, server on
1) and unpinned, each beside the raw server in the same placement; rounds are interleaved and
the table reports the median of the per-round medians and p90. Target: route <= 1.5 x raw.

Run: ./dev env -- python bench/bench_fifo.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time

import orjson
from placement import pin

import polycephaly_ros
from polycephaly_ros.envelope import answer, new_id
from polycephaly_ros.routes.fifo import FifoRouteHead, FifoTransport

REQUEST = {'sender': 'touch', 'recipient': 'echo', 'subject': 'ping', 'body': 'Hello, World!',
           'messageid': '9da03bcf-af3d-49ad-a9d4-17617c974de6',
           'threadid': '05cc7e85-f291-4c63-af34-6d47b8fc2594', 'threadindex': 1,
           'time': 123456789.0, 'args': ['Arg1', 'Arg2'], 'kwargs': {'abc': 123, 'xyz': 789}}
LINE = orjson.dumps(REQUEST) + b'\n'


# -- raw baseline ---------------------------------------------------------------------------
def raw_server(directory: str) -> None:
    """Answer every line on in with its reply on out (blocking reads and writes)."""
    os.mkdir(directory, 0o700)
    for name in ('in', 'out'):
        os.mkfifo(os.path.join(directory, name), 0o600)
    inp = os.open(os.path.join(directory, 'in'), os.O_RDONLY)  # (waits for the client)
    out = os.open(os.path.join(directory, 'out'), os.O_WRONLY)
    buf = b''
    while data := os.read(inp, 65536):
        buf += data
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            env = orjson.loads(line)
            reply = dict(env)
            reply.update(sender=env['recipient'], recipient=env['sender'], subject='reply',
                         messageid=new_id(), threadindex=env['threadindex'] + 1,
                         time=time.time())
            os.write(out, orjson.dumps(reply) + b'\n')


# -- the transport alone ------------------------------------------------------------------------
def transport_server(directory: str) -> None:
    """Answer every frame in the transport's callback: no head, no queue, no filters."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_envelope(envelope: dict) -> None:
        """Answer at once, from the transport's thread."""
        transport.send(answer(envelope, 'echo', envelope['body']))

    transport = FifoTransport(directory, on_envelope)
    transport.start()
    stop.wait()
    transport.stop()


# -- the route --------------------------------------------------------------------------------
class Serve(FifoRouteHead):
    """Read the pipe and answer every 'ping' in the same head."""

    @polycephaly_ros.message_filter(route='fifo', subject='ping')
    def ping(self, message: dict) -> None:
        """Answer with the body."""
        self.reply(message, message['body'])


class Echo(polycephaly_ros.Process):
    """Answer every 'ping' from the route with its body."""

    @polycephaly_ros.message_filter(route='fifo', subject='ping')
    def ping(self, message: dict) -> None:
        """Answer with the body."""
        self.reply(message, message['body'])


def route_app(directory: str, served: bool) -> None:
    """Run an application: the served route head, or a route head and an echo head."""
    app = polycephaly_ros.Application(ros=False, threads_timeout=5)
    if served:
        app.add_process(Serve, name='echo', directory=directory)
    else:
        app.add_process(FifoRouteHead, name='fifo', directory=directory)
        app.add_process(Echo, name='echo')
    sys.exit(app.run())


# -- client -----------------------------------------------------------------------------------
class Client:
    """The writing end of a server's in and the reading end of its out (blocking)."""

    def __init__(self, directory: str) -> None:
        """Open the server's pipes and check it answers."""
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(directory, 'out')):
            assert time.monotonic() < deadline, f'no pipes in {directory}'
            time.sleep(0.05)
        self.inp = os.open(os.path.join(directory, 'in'), os.O_WRONLY)
        # Not blocking in open(): the route opens out only once it has something to send.
        self.out = os.open(os.path.join(directory, 'out'), os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(self.out, True)
        os.write(self.inp, LINE)
        while not (data := os.read(self.out, 65536)):  # (no writer yet: the end of the file)
            assert time.monotonic() < deadline, f'no reply from {directory}'
            time.sleep(0.01)
        assert orjson.loads(data)['subject'] == 'reply'

    def recv_line(self) -> bytes:
        """Return the bytes up to and with the next newline."""
        data = os.read(self.out, 65536)
        while not data.endswith(b'\n'):
            more = os.read(self.out, 65536)
            if not more:
                raise ConnectionError('the server closed out')
            data += more
        return data

    def round_trips(self, count: int) -> list[float]:
        """Return the times of count round trips, in seconds."""
        times = []
        clock, write, fd = time.perf_counter, os.write, self.inp
        for _ in range(count):
            t = clock()
            write(fd, LINE)
            self.recv_line()
            times.append(clock() - t)
        return times

    def close(self) -> None:
        """Close (and remove) what the client made."""
        os.close(self.inp)
        os.close(self.out)


def main() -> None:
    """Measure every path in every placement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=3000, help='round trips per round')
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    ctx = mp.get_context('spawn')
    tmp = tempfile.mkdtemp(prefix='bench-fifo-')
    raw = 'raw FIFO echo'
    variants = {  # name: (directory, target, args)
        raw: ('raw', raw_server, ()),
        'transport alone (no head)': ('tr', transport_server, ()),
        'route, served by the answering head': ('sv', route_app, (True,)),
        'route, echo head behind the route head (threads)': ('rt', route_app, (False,)),
    }
    dirs = {name: os.path.join(tmp, v[0]) for name, v in variants.items()}
    servers = [ctx.Process(target=target, args=(dirs[name], *extra), daemon=name == raw)
               for name, (_, target, extra) in variants.items()]
    for p in servers:
        p.start()
    clients = {name: Client(path) for name, path in dirs.items()}
    every = set(range(os.cpu_count() or 1))
    placements = {'one CPU': ({0}, {0}), 'unpinned': (every, every)}
    if len(every) > 1:
        placements['two CPUs'] = ({0}, {1})
    p50s = {(where, name): [] for where in placements for name in clients}
    p90s = {(where, name): [] for where in placements for name in clients}
    try:
        for client in clients.values():
            client.round_trips(500)  # warm up
        for _ in range(args.rounds):
            for where, (client_cpus, server_cpus) in placements.items():
                os.sched_setaffinity(0, client_cpus)
                for p in servers:
                    pin(p.pid, server_cpus)
                for name, client in clients.items():
                    client.round_trips(200)  # settle in the new placement
                    times = sorted(client.round_trips(args.count))
                    p50s[where, name].append(times[len(times) // 2])
                    p90s[where, name].append(times[int(len(times) * 0.9)])
    finally:
        for client in clients.values():
            client.close()  # (the raw server ends at the end of its input)
        for p in servers[1:]:
            os.kill(p.pid, signal.SIGTERM)
        for p in servers:
            p.join(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'\nFIFO round trip, {len(LINE)}-byte JSON line, {args.rounds} rounds x {args.count} '
          f'(median of round medians), {os.cpu_count()} CPUs\n')
    print('| placement | path | round trip p50 | p90 | ratio to raw (p50) |')
    print('|---|---|---|---|---|')
    for where in placements:
        base = statistics.median(p50s[where, raw])
        for name in clients:
            p50 = statistics.median(p50s[where, name])
            p90 = statistics.median(p90s[where, name])
            print(f'| {where} | {name} | {p50 * 1e6:.0f} µs | {p90 * 1e6:.0f} µs | '
                  f'{p50 / base:.2f} × |')
    print('\nTarget: route <= 1.5 x raw.')


if __name__ == '__main__':
    main()
