#!/usr/bin/env python3
"""Round trip over the Unix-socket route, beside a raw Unix-socket ping-pong, in the same run.

Every server answers the same newline-delimited JSON envelope (about 270 bytes) from another
process, to a plain blocking-socket client in this process:

* raw: a hand-written server reads a line, parses it with orjson, answers with the reply
  envelope (sender and recipient swapped, same thread, index + 1, new message id) and writes
  it back: the least any JSON-over-Unix-socket service does;
* transport alone: our UnixSocketServer answering in its own callback, no head (the decode with
  every header checked, a reply from envelope.answer, the framing): the route's floor;
* route, served by the answering head: a UnixSocketServerHead subclass whose own filter
  answers (the raw server's shape: the thread that reads the socket answers);
* route, echo head behind the route head: the route head delivers to another head (a thread,
  then the route head as a process) whose reply comes back through it; and the same with
  ``transport_thread=True``.

On a small VM a round trip costs ~8 µs when client and server share a CPU and ~60 µs when
a wake-up has to cross CPUs, and without pinning the scheduler picks either, per process and
for long stretches: that, not the code, decided earlier runs. So every path is measured
pinned to one CPU (client and server on CPU 0), pinned to two (client on 0, server on 1) and
unpinned, each beside the raw server in the same placement. Rounds are interleaved; the table
reports the median of the per-round medians and p90. Target: route <= 1.5 x raw.

Run: ./dev env -- python bench/bench_uds.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time

import orjson
from placement import pin

import polycephaly_ros
from polycephaly_ros.envelope import answer, new_id
from polycephaly_ros.routes.unix_socket import UnixSocketServer, UnixSocketServerHead

REQUEST = {'sender': 'touch', 'recipient': 'echo', 'subject': 'ping', 'body': 'Hello, World!',
           'messageid': '9da03bcf-af3d-49ad-a9d4-17617c974de6',
           'threadid': '05cc7e85-f291-4c63-af34-6d47b8fc2594', 'threadindex': 1,
           'time': 123456789.0, 'args': ['Arg1', 'Arg2'], 'kwargs': {'abc': 123, 'xyz': 789}}
LINE = orjson.dumps(REQUEST) + b'\n'


# -- raw baseline ---------------------------------------------------------------------------
def raw_server(path: str, ready) -> None:
    """Serve one client at a time: each JSON line gets its reply line."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    ready.set()
    while True:
        conn, _ = listener.accept()
        buf = b''
        while True:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                env = orjson.loads(line)
                reply = dict(env)
                reply.update(sender=env['recipient'], recipient=env['sender'], subject='reply',
                             messageid=new_id(), threadindex=env['threadindex'] + 1,
                             time=time.time())
                conn.sendall(orjson.dumps(reply) + b'\n')
        conn.close()


# -- the transport alone ------------------------------------------------------------------------
def transport_server(path: str) -> None:
    """Answer every frame in the server's callback: no head, no queue, no filters."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_envelope(envelope: dict, client_id: int) -> None:
        server.send(client_id, answer(envelope, 'echo', envelope['body']))

    server = UnixSocketServer(path, on_envelope)
    server.start()
    stop.wait()
    server.stop()


# -- the route --------------------------------------------------------------------------------
class Serve(UnixSocketServerHead):
    """Serve the socket and answer every 'ping' in the same head."""

    @polycephaly_ros.message_filter(route='uds', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, message['body'])


def served_app(path: str) -> None:
    app = polycephaly_ros.Application(ros=False, threads_timeout=5)
    app.add_process(Serve, name='echo', path=path)
    sys.exit(app.run())


class Echo(polycephaly_ros.Process):
    """Answer every 'ping' from the socket with its body."""

    @polycephaly_ros.message_filter(route='uds', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, message['body'])


def route_app(path: str, route_mode: str, transport_thread: bool = False) -> None:
    app = polycephaly_ros.Application(ros=False, threads_timeout=5)
    app.add_process(UnixSocketServerHead, name='uds', path=path, mode=route_mode,
                    transport_thread=transport_thread)
    app.add_process(Echo, name='echo')
    sys.exit(app.run())


# -- client -----------------------------------------------------------------------------------
def connect(path: str, timeout: float = 20.0) -> socket.socket:
    """Connect once the server answers a first ping (a bench, so polling is fine here)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            sock.sendall(LINE)
            reply = orjson.loads(recv_line(sock))
            assert reply['subject'] == 'reply', reply
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def recv_line(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    while not data.endswith(b'\n'):
        more = sock.recv(65536)
        if not more:
            raise ConnectionError('server closed the connection')
        data += more
    return data


def round_trips(sock: socket.socket, count: int) -> list[float]:
    times = []
    clock = time.perf_counter
    for _ in range(count):
        t = clock()
        sock.sendall(LINE)
        recv_line(sock)
        times.append(clock() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=3000, help='round trips per round')
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    ctx = mp.get_context('spawn')
    tmp = tempfile.mkdtemp(prefix='bench-uds-')
    raw = 'raw socket ping-pong'
    variants = {  # name: (socket file, app, args)
        'transport alone (no head)': ('tr', transport_server, ()),
        'route, served by the answering head': ('sv', served_app, ()),
        'route, echo head behind the route head (threads)': ('rt', route_app, ('thread',)),
        'route, echo head behind the route head (route head a process)':
            ('rp', route_app, ('process',)),
        'route, echo head behind the route head, transport_thread=True':
            ('rx', route_app, ('thread', True)),
    }
    paths = {raw: os.path.join(tmp, 'raw')}
    paths.update({name: os.path.join(tmp, v[0]) for name, v in variants.items()})
    ready = ctx.Event()
    servers = [ctx.Process(target=raw_server, args=(paths[raw], ready), daemon=True)]
    servers += [ctx.Process(target=target, args=(paths[name], *extra))
                for name, (_, target, extra) in variants.items()]
    for p in servers:
        p.start()
    ready.wait(20)
    socks = {name: connect(path) for name, path in paths.items()}
    every = set(range(os.cpu_count() or 1))
    placements = {'one CPU': ({0}, {0}), 'unpinned': (every, every)}
    if len(every) > 1:
        placements['two CPUs'] = ({0}, {1})
    p50s = {(where, name): [] for where in placements for name in paths}
    p90s = {(where, name): [] for where in placements for name in paths}
    try:
        for sock in socks.values():
            round_trips(sock, 500)  # warm up
        for _ in range(args.rounds):
            for where, (client_cpus, server_cpus) in placements.items():
                os.sched_setaffinity(0, client_cpus)
                for p in servers:
                    pin(p.pid, server_cpus)
                for name, sock in socks.items():
                    round_trips(sock, 200)  # settle in the new placement
                    times = sorted(round_trips(sock, args.count))
                    p50s[where, name].append(times[len(times) // 2])
                    p90s[where, name].append(times[int(len(times) * 0.9)])
    finally:
        for sock in socks.values():
            sock.close()
        servers[0].terminate()
        for p in servers[1:]:
            os.kill(p.pid, signal.SIGTERM)
        for p in servers:
            p.join(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'\nUDS round trip, {len(LINE)}-byte JSON line, {args.rounds} rounds x {args.count} '
          f'(median of round medians), {os.cpu_count()} CPUs\n')
    print('| placement | path | round trip p50 | p90 | ratio to raw (p50) |')
    print('|---|---|---|---|---|')
    for where in placements:
        base = statistics.median(p50s[where, raw])
        for name in paths:
            p50 = statistics.median(p50s[where, name])
            p90 = statistics.median(p90s[where, name])
            print(f'| {where} | {name} | {p50 * 1e6:.0f} µs | {p90 * 1e6:.0f} µs | '
                  f'{p50 / base:.2f} × |')
    print('\nTarget: route <= 1.5 x raw.')


if __name__ == '__main__':
    main()
