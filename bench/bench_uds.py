#!/usr/bin/env python3
"""Round trip over the Unix-socket route, beside a raw Unix-socket ping-pong, in the same run.

Both sides serve the same newline-delimited JSON envelope (about 250 bytes) from another
process, to a plain blocking-socket client in this process:

* raw: a hand-written server reads a line, parses it with orjson, answers with the reply
  envelope (sender and recipient swapped, same thread, index + 1, new message id) and writes
  it back: the least any JSON-over-Unix-socket service does;
* route: an application whose UnixSocketServerHead delivers the envelope to an echo head,
  whose reply comes back through the route head (thread heads; then the route head as a
  process head).

Rounds are interleaved (raw, route, route-process, raw, ...) and the table reports the median
of the per-round medians, p90 and the ratio to raw. Target: route <= 1.5 x raw.

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
import time

import orjson

import polycephaly_ros
from polycephaly_ros.envelope import new_id
from polycephaly_ros.routes.unix_socket import UnixSocketServerHead

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


# -- the route --------------------------------------------------------------------------------
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
    variants = {  # name: (socket file, route head mode, transport_thread)
        'route: thread heads': ('rt', 'thread', False),
        'route: route head as a process': ('rp', 'process', False),
        'route: thread heads, transport_thread=True': ('rx', 'thread', True),
    }
    paths = {'raw socket ping-pong': os.path.join(tmp, 'raw')}
    paths.update({name: os.path.join(tmp, v[0]) for name, v in variants.items()})
    ready = ctx.Event()
    servers = [ctx.Process(target=raw_server, args=(paths['raw socket ping-pong'], ready),
                           daemon=True)]
    servers += [ctx.Process(target=route_app, args=(paths[name], mode, threaded))
                for name, (_, mode, threaded) in variants.items()]
    for p in servers:
        p.start()
    ready.wait(20)
    socks = {name: connect(path) for name, path in paths.items()}
    p50s: dict[str, list[float]] = {name: [] for name in paths}
    p90s: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for sock in socks.values():
            round_trips(sock, 500)  # warm up
        for _ in range(args.rounds):
            for name, sock in socks.items():
                times = sorted(round_trips(sock, args.count))
                p50s[name].append(times[len(times) // 2])
                p90s[name].append(times[int(len(times) * 0.9)])
    finally:
        for sock in socks.values():
            sock.close()
        servers[0].terminate()
        for p in servers[1:]:
            os.kill(p.pid, signal.SIGTERM)
        for p in servers:
            p.join(10)
        shutil.rmtree(tmp, ignore_errors=True)
    raw = statistics.median(p50s['raw socket ping-pong'])
    print(f'\nUDS round trip, {len(LINE)}-byte JSON line, {args.rounds} rounds x {args.count} '
          f'(median of round medians), {os.cpu_count()} CPUs\n')
    print('| path | round trip p50 | p90 | ratio to raw (p50) |')
    print('|---|---|---|---|')
    for name in paths:
        p50 = statistics.median(p50s[name])
        p90 = statistics.median(p90s[name])
        print(f'| {name} | {p50 * 1e6:.0f} µs | {p90 * 1e6:.0f} µs | {p50 / raw:.2f} × |')
    print('\nTarget: route <= 1.5 x raw.')


if __name__ == '__main__':
    main()
