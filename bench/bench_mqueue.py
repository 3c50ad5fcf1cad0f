#!/usr/bin/env python3
"""Round trip over the POSIX message queue route, beside a bare mq send/receive echo, same run.

Every server answers the same JSON envelope (about 270 bytes) from another process, to a
plain posix_ipc client in this process that sends to the server's queue and waits on its own:

* raw: a hand-written server receives a message, parses it with orjson, answers with the reply
  envelope (sender and recipient swapped, same thread, index + 1, new message id) on the
  client's queue: the least any JSON-over-mqueue service does;
* transport alone: our MqueueTransport answering in its own callback, no head (decode with
  every header checked, a reply from envelope.answer, the peer-queue checks): the floor;
* route, served by the answering head: a MqueueRouteHead subclass whose own filter answers
  (the raw server's shape: the thread that reads the queue answers);
* route, echo head behind the route head: the route head delivers to another head (a thread)
  whose reply goes out from that head's thread.

As in bench_uds.py, each path is measured pinned to one CPU, to two (client on 0, server on
1) and unpinned, each beside the raw server in the same placement; rounds are interleaved and
the table reports the median of the per-round medians and p90. Target: route <= 1.5 x raw.

Run: ./dev env -- python bench/bench_mqueue.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import sys
import threading
import time
from typing import Any

import orjson
import posix_ipc
from placement import pin

import polycephaly_ros
from polycephaly_ros.envelope import answer, new_id
from polycephaly_ros.routes.mqueue import MqueueRouteHead, MqueueTransport

REQUEST = {'sender': 'touch', 'recipient': 'echo', 'subject': 'ping', 'body': 'Hello, World!',
           'messageid': '9da03bcf-af3d-49ad-a9d4-17617c974de6',
           'threadid': '05cc7e85-f291-4c63-af34-6d47b8fc2594', 'threadindex': 1,
           'time': 123456789.0, 'args': ['Arg1', 'Arg2'], 'kwargs': {'abc': 123, 'xyz': 789}}
MESSAGE = orjson.dumps(REQUEST)


# -- raw baseline ---------------------------------------------------------------------------
def raw_server(mine: str, theirs: str, ready: Any) -> None:
    """Answer every message on our queue on theirs."""
    queue = posix_ipc.MessageQueue(mine, posix_ipc.O_CREX, mode=0o600)
    ready.set()
    reply_to = None
    try:
        while True:
            data, _ = queue.receive()
            env = orjson.loads(data)
            reply = dict(env)
            reply.update(sender=env['recipient'], recipient=env['sender'], subject='reply',
                         messageid=new_id(), threadindex=env['threadindex'] + 1,
                         time=time.time())
            if reply_to is None:
                reply_to = posix_ipc.MessageQueue(theirs, read=False, write=True)
            reply_to.send(orjson.dumps(reply))
    finally:
        queue.unlink()


# -- the transport alone ------------------------------------------------------------------------
def transport_server(mine: str, theirs: str) -> None:
    """Answer every message in the transport's callback: no head, no queue, no filters."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_envelope(envelope: dict) -> None:
        """Answer at once, from the transport's thread."""
        transport.send(answer(envelope, 'echo', envelope['body']))

    transport = MqueueTransport(mine, on_envelope, peer_queue=theirs)
    transport.start()
    stop.wait()
    transport.stop()


# -- the route --------------------------------------------------------------------------------
class Serve(MqueueRouteHead):
    """Read the queue and answer every 'ping' in the same head."""

    @polycephaly_ros.message_filter(route='mqueue', subject='ping')
    def ping(self, message: dict) -> None:
        """Answer with the body."""
        self.reply(message, message['body'])


class Echo(polycephaly_ros.Process):
    """Answer every 'ping' from the route with its body."""

    @polycephaly_ros.message_filter(route='mqueue', subject='ping')
    def ping(self, message: dict) -> None:
        """Answer with the body."""
        self.reply(message, message['body'])


def route_app(mine: str, theirs: str, served: bool) -> None:
    """Run an application: the served route head, or a route head and an echo head."""
    app = polycephaly_ros.Application(ros=False, threads_timeout=5)
    if served:
        app.add_process(Serve, name='echo', queue=mine, peer_queue=theirs)
    else:
        app.add_process(MqueueRouteHead, name='mq', queue=mine, peer_queue=theirs)
        app.add_process(Echo, name='echo')
    sys.exit(app.run())


# -- client -----------------------------------------------------------------------------------
class Client:
    """Our queue, and the server's to send to once it exists."""

    def __init__(self, mine: str, theirs: str) -> None:
        """Make our queue, open the server's and check it answers."""
        self.mine = posix_ipc.MessageQueue(mine, posix_ipc.O_CREX, mode=0o600)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.to = posix_ipc.MessageQueue(theirs, read=False, write=True)
                break
            except posix_ipc.ExistentialError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.to.send(MESSAGE)
        assert orjson.loads(self.mine.receive(20)[0])['subject'] == 'reply'

    def round_trips(self, count: int) -> list[float]:
        """Return the times of count round trips, in seconds."""
        times = []
        clock, send, receive = time.perf_counter, self.to.send, self.mine.receive
        for _ in range(count):
            t = clock()
            send(MESSAGE)
            receive()
            times.append(clock() - t)
        return times

    def close(self) -> None:
        """Close (and remove) what the client made."""
        self.mine.unlink()
        self.mine.close()
        self.to.close()


def main() -> None:
    """Measure every path in every placement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=3000, help='round trips per round')
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    ctx = mp.get_context('spawn')
    tag = f'/pcy-bench-{os.getpid()}'
    raw = 'raw mq send/receive echo'
    variants = {  # name: (tag, target, args)
        'transport alone (no head)': ('tr', transport_server, ()),
        'route, served by the answering head': ('sv', route_app, (True,)),
        'route, echo head behind the route head (threads)': ('rt', route_app, (False,)),
    }
    queues = {name: (f'{tag}.{v[0]}', f'{tag}.{v[0]}c') for name, v in variants.items()}
    queues[raw] = (f'{tag}.raw', f'{tag}.rawc')
    ready = ctx.Event()
    servers = [ctx.Process(target=raw_server, args=(*queues[raw], ready), daemon=True)]
    servers += [ctx.Process(target=target, args=(*queues[name], *extra))
                for name, (_, target, extra) in variants.items()]
    for p in servers:
        p.start()
    ready.wait(20)
    clients = {name: Client(theirs, mine) for name, (mine, theirs) in
               sorted(queues.items(), key=lambda kv: kv[0] != raw)}
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
            client.close()
        servers[0].terminate()
        for p in servers[1:]:
            os.kill(p.pid, signal.SIGTERM)
        for p in servers:
            p.join(10)
        for mine, _ in queues.values():
            try:
                posix_ipc.unlink_message_queue(mine)
            except posix_ipc.ExistentialError:
                pass
    print(f'\nPOSIX mq round trip, {len(MESSAGE)}-byte JSON message, {args.rounds} rounds x '
          f'{args.count} (median of round medians), {os.cpu_count()} CPUs\n')
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
