#!/usr/bin/env python3
"""The MQTT route beside raw paho-mqtt, through the same mosquitto, in the same run.

One mosquitto on 127.0.0.1 (test/support/broker.py, with ``set_tcp_nodelay true``) carries
every path; every message is an envelope of about 270 bytes as JSON, at QoS 1, MQTT 5 on every
client. In other processes:

* raw: a plain paho client, the least a JSON service over MQTT does: it parses each message
  with orjson, answers 'ping' on a reply topic with the reply envelope (bench_uds.py's raw
  server), counts what arrives on an input topic (publishing 'done' at the N-th) and, told
  'go', publishes N envelopes from its main thread, each encoded with orjson;
* route: an Application of an MqttRouteHead (in a thread; in a process of its own) with an
  echo head (answers 'ping'), a count head (tells ``out/op_done`` at the N-th envelope) and a
  source head (told 'go', sends N envelopes ``via='mqtt'`` to ``op_sink``, which go to
  ``polycephaly/<robot>/out/op_sink``).

Paho never sets TCP_NODELAY, nor does mosquitto unless told (here it is told, or its own writes
would stall too); the route's transport sets it on every connection. Without it a QoS 1
request waits for a delayed TCP ACK (40 ms on Linux) wherever one side makes two small writes
in a row, as Nagle holds the second until the first is ACKed: a plain client's PUBACK for a
reply, then its next request; and, in the route, the PUBACK paho writes once the envelope is
delivered, then the reply the head publishes (a raw service publishes its reply inside
on_message, before paho's PUBACK). So raw paho is measured twice, with paho's defaults and
with TCP_NODELAY (through paho's on_socket_open), and the route is compared with the latter.

Measured from this process, each path by the same kind of client:

1. round trip, client -> head -> client: the remote operator's client is an MqttTransport
   (robot 'op0'/'op1', no presence, no persistent session) sending 'ping' to
   ``polycephaly/<robot>/echo/inbox`` and waiting for the reply on its own inbox; a plain paho
   client does the same to the raw service (and, to tell client from application, to the
   route). Median of the per-round medians, and of the per-round p90s.
2. QoS 1 throughput: (a) client -> application: N envelopes from one plain paho publisher
   (the same kind of bytes for raw and route; also from the MqttTransport client), timed until
   the counting side says it has all; (b) application -> client: 'go', then N envelopes into
   one plain paho subscriber here, timed until it has all. Median of the rounds.

Targets: round trip <= 1.3 x raw; throughput >= 0.8 x raw. A missed target is reported, not
an error: the exit status is non-zero only when something broke (a message lost, a process
that failed or did not come up). Every process and the broker are stopped at the end.

Run: ./dev env -- python bench/bench_mqtt.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'test' / 'support'))
from broker import Broker  # noqa: E402  (test/support/broker.py: a mosquitto on loopback)

import polycephaly_ros  # noqa: E402
from polycephaly_ros.envelope import new_id  # noqa: E402
from polycephaly_ros.routes.mqtt import MqttRouteHead, MqttTransport  # noqa: E402

BODY, ARGS, KWARGS = 'Hello, World!', ['Arg1', 'Arg2'], {'abc': 123, 'xyz': 789}
TIMEOUT = 30.0  # the longest wait for anything: then the bench broke


def envelope(sender: str, recipient: str, subject: str, body: object = BODY) -> dict:
    """Return an envelope with fresh ids (bench_uds.py's request, about 270 bytes as JSON)."""
    return {'sender': sender, 'recipient': recipient, 'subject': subject, 'body': body,
            'messageid': new_id(), 'threadid': new_id(), 'threadindex': 1, 'time': time.time(),
            'args': ARGS, 'kwargs': KWARGS}


def nodelay(client: paho.Client) -> None:
    """Set TCP_NODELAY on a paho client's socket, now and at every reconnect."""
    def on_socket_open(client: paho.Client, userdata, sock) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_socket_open = on_socket_open
    sock = client.socket()  # opened by paho's thread before the line above
    if sock is not None:
        on_socket_open(client, None, sock)


def plain_client(port: int, client_id: str, subscriptions: list[str], on_message,
                 no_delay: bool) -> paho.Client:
    """Return a plain paho client (MQTT 5, its network thread running), subscribed at QoS 1."""
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5)
    if no_delay:
        nodelay(client)
    client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in subscriptions])
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect('127.0.0.1', port)
    client.loop_start()
    if not subscribed.wait(TIMEOUT):
        raise RuntimeError(f'{client_id}: no subscription within {TIMEOUT:g} s')
    return client


# -- raw baseline (another process) -----------------------------------------------------
def raw_service(port: int, prefix: str, no_delay: bool, count: int, ready) -> None:
    """Answer pings, count inbound envelopes, publish N when told 'go': plain paho + orjson."""
    go = threading.Event()
    seen = 0

    def on_message(client: paho.Client, userdata, message: paho.MQTTMessage) -> None:
        nonlocal seen
        env = orjson.loads(message.payload)
        topic = message.topic
        if topic == prefix + 'ping':
            reply = dict(env)
            reply.update(sender=env['recipient'], recipient=env['sender'], subject='reply',
                         messageid=new_id(), threadindex=env['threadindex'] + 1,
                         time=time.time())
            client.publish(prefix + 'pong', orjson.dumps(reply), qos=1)
        elif topic == prefix + 'in':
            seen += 1
            if seen == count:
                seen = 0
                client.publish(prefix + 'done', orjson.dumps({'count': count}), qos=1)
        elif topic == prefix + 'go':
            go.set()

    client = plain_client(port, f'bench-raw-{prefix.split("/")[1]}',
                          [prefix + 'ping', prefix + 'in', prefix + 'go'], on_message, no_delay)
    ready.set()
    while True:  # until SIGTERM
        go.wait()
        go.clear()
        for _ in range(count):
            client.publish(prefix + 'out', orjson.dumps(envelope('source', 'op_sink', 'x')),
                           qos=1)


# -- the route (another process) --------------------------------------------------------
class Echo(polycephaly_ros.Process):
    """Answer every 'ping' from the route with its body."""

    @polycephaly_ros.message_filter(route='mqtt', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, message['body'])


class Count(polycephaly_ros.Process):
    """Count the 'x' envelopes from the route; at every n-th, tell op_done over the route."""

    def birth(self) -> None:
        self.seen = 0

    @polycephaly_ros.message_filter(route='mqtt', subject='x')
    def x(self, message: dict) -> None:
        self.seen += 1
        if self.seen == self.kwargs['n']:
            self.seen = 0
            self.send('op_done', 'count', self.kwargs['n'], via='mqtt')


class Source(polycephaly_ros.Process):
    """Told 'go' (body n), send n envelopes to op_sink over the route."""

    @polycephaly_ros.message_filter(route='mqtt', subject='go')
    def go(self, message: dict) -> None:
        for _ in range(int(message['body'])):
            self.send('op_sink', 'x', BODY, via='mqtt', args=ARGS, kwargs=KWARGS)


def route_app(port: int, robot: str, mode: str, count: int) -> None:
    app = polycephaly_ros.Application(ros=False, threads_timeout=10)
    app.add_process(Echo, name='echo')
    app.add_process(Count, name='count', n=count)
    app.add_process(Source, name='source')
    app.add_process(MqttRouteHead, name='mqtt', mode=mode,
                    robot=robot, port=port, outbox=min(60_000, max(10_000, 2 * count)))
    sys.exit(app.run())  # (the route head is added last: the others run once it answers)


# -- this process: the clients ---------------------------------------------------------------
class Tally:
    """Count the messages on some topics; set complete at the target."""

    def __init__(self) -> None:
        self.target, self.seen, self.complete = 0, 0, threading.Event()

    def expect(self, target: int) -> None:
        self.target, self.seen = target, 0
        self.complete.clear()

    def add(self, payload: bytes) -> None:
        orjson.loads(payload)  # as a client would
        self.seen += 1
        if self.seen == self.target:
            self.complete.set()


class Bench:
    """The bench's clients on the broker (each with and without TCP_NODELAY), and what they time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.done = Tally()   # 'done' from a counting side
        self.sink = Tally()   # envelopes from a publishing side
        # thread ids of the replies to the plain clients and to the MqttTransport clients
        self.replies = {no_delay: queue.SimpleQueue() for no_delay in (False, True)}
        self.op_replies = {no_delay: queue.SimpleQueue() for no_delay in (False, True)}
        self.plain: dict[bool, paho.Client] = {}
        self.op: dict[bool, MqttTransport] = {}

    def start(self, raws: dict[bool, str], robots: list[str]) -> None:
        """Connect a plain client and an MqttTransport client, each without and with TCP_NODELAY.

        Only the TCP_NODELAY plain client takes the throughput paths' messages.
        """
        for no_delay in (False, True):
            put = self.replies[no_delay].put

            def reply(payload: bytes, put=put) -> None:
                put(orjson.loads(payload)['threadid'])

            handlers = {raws[no_delay] + 'pong': reply, self.reply_topic(no_delay): reply}
            if no_delay:
                handlers.update({raws[True] + 'done': self.done.add,
                                 raws[True] + 'out': self.sink.add})
                for robot in robots:
                    handlers[f'polycephaly/{robot}/out/op_done'] = self.done.add
                    handlers[f'polycephaly/{robot}/out/op_sink'] = self.sink.add
            self.plain[no_delay] = plain_client(
                self.port, f'bench-plain-{int(no_delay)}', list(handlers),
                lambda c, u, m, handlers=handlers: handlers[m.topic](m.payload), no_delay)
            self.op[no_delay] = op = MqttTransport(
                lambda env, put=self.op_replies[no_delay].put: put(env['threadid']),
                robot=f'op{int(no_delay)}', port=self.port, client_id=f'bench-op-{int(no_delay)}',
                presence=False, persistent=False)
            op.start()  # (MqttTransport sets TCP_NODELAY itself)
        for op in self.op.values():
            if not op.connected_event.wait(TIMEOUT):
                raise RuntimeError('the MqttTransport client did not connect')

    @staticmethod
    def reply_topic(no_delay: bool) -> str:
        return f'bench/plain{int(no_delay)}/replies'

    @staticmethod
    def inbox(robot: str, head: str) -> str:
        return f'polycephaly/{robot}/{head}/inbox'

    def close(self) -> None:
        for op in self.op.values():
            op.close()
        for client in self.plain.values():
            client.disconnect()
            client.loop_stop()

    @staticmethod
    def _wait(replies: queue.SimpleQueue, threadid: str, timeout: float = TIMEOUT) -> None:
        while replies.get(timeout=timeout) != threadid:
            pass  # a late answer to an earlier ping (start-up)

    def wait_ready(self, robot: str, app: mp.Process) -> None:
        """Ping the route's echo head until it answers (the route subscribes once connected)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            sent = self.op[True].send(envelope('op', 'echo', 'ping'),
                                      topic=self.inbox(robot, 'echo'))
            try:
                self._wait(self.op_replies[True], sent['threadid'], 0.5)
                return
            except queue.Empty:
                if not app.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f'application {robot!r} did not answer within '
                                       f'{TIMEOUT:g} s (exit code {app.exitcode})') from None

    # -- 1. round trips ------------------------------------------------------------------
    def round_trips(self, client: str, no_delay: bool, target: str, count: int) -> list[float]:
        """Time count pings from client ('op' or 'plain') to target (a raw prefix or a robot)."""
        clock, times = time.perf_counter, []
        if client == 'op':
            op, replies, topic = self.op[no_delay], self.op_replies[no_delay], \
                self.inbox(target, 'echo')
            for _ in range(count):
                t = clock()
                sent = op.send({'sender': 'op', 'recipient': 'echo', 'subject': 'ping',
                                'body': BODY, 'args': ARGS, 'kwargs': KWARGS}, topic=topic)
                self._wait(replies, sent['threadid'])
                times.append(clock() - t)
            return times
        replies, properties = self.replies[no_delay], None
        if target.endswith('/'):
            topic = target + 'ping'
        else:
            topic = self.inbox(target, 'echo')
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self.reply_topic(no_delay)
        pings = [envelope('op', 'echo', 'ping') for _ in range(count)]
        pings = [(p['threadid'], orjson.dumps(p)) for p in pings]
        publish = self.plain[no_delay].publish
        for threadid, payload in pings:
            t = clock()
            publish(topic, payload, qos=1, properties=properties)
            self._wait(replies, threadid)
            times.append(clock() - t)
        return times

    # -- 2. throughput ---------------------------------------------------------------------
    def inbound(self, client: str, target: str, count: int) -> float:
        """Return msgs/s from client ('op' or 'plain', TCP_NODELAY) to target's counter."""
        self.done.expect(1)
        if client == 'op':
            op, topic = self.op[True], self.inbox(target, 'count')
            t = time.perf_counter()
            for _ in range(count):
                op.send({'sender': 'op', 'recipient': 'count', 'subject': 'x', 'body': BODY,
                         'args': ARGS, 'kwargs': KWARGS}, topic=topic)
        else:
            topic = target + 'in' if target.endswith('/') else self.inbox(target, 'count')
            payloads = [orjson.dumps(envelope('op', 'count', 'x')) for _ in range(count)]
            publish = self.plain[True].publish
            t = time.perf_counter()
            for payload in payloads:
                publish(topic, payload, qos=1)
        if not self.done.complete.wait(TIMEOUT):
            raise RuntimeError(f'inbound {client} -> {target}: the counter never had all {count}')
        return count / (time.perf_counter() - t)

    def outbound(self, source: str, count: int) -> float:
        """Return msgs/s from source (a raw prefix or a robot) to the plain client here."""
        self.sink.expect(count)
        if source.endswith('/'):
            topic, payload = source + 'go', b'{}'
        else:
            topic = self.inbox(source, 'source')
            payload = orjson.dumps(envelope('op', 'source', 'go', count))
        t = time.perf_counter()
        self.plain[True].publish(topic, payload, qos=1)
        if not self.sink.complete.wait(TIMEOUT):
            raise RuntimeError(f'outbound {source}: {self.sink.seen} of {count} came')
        return count / (time.perf_counter() - t)


# -- the run ------------------------------------------------------------------------------------
RAW_DEFAULT, RAW_NODELAY = 'bench/raw-default/', 'bench/raw-nodelay/'
APPS = {'bench-thread': 'thread', 'bench-process': 'process'}  # robot: route head mode
ROUND_TRIPS = {  # name: (client, TCP_NODELAY, target, baseline)
    'raw paho, paho defaults': ('plain', False, RAW_DEFAULT, None),
    'raw paho, TCP_NODELAY': ('plain', True, RAW_NODELAY, None),
    'route (thread) + MqttTransport client': (
        'op', True, 'bench-thread', 'raw paho, TCP_NODELAY'),
    'route (process) + MqttTransport client': (
        'op', True, 'bench-process', 'raw paho, TCP_NODELAY'),
    'route (thread) + plain paho client, TCP_NODELAY': (
        'plain', True, 'bench-thread', 'raw paho, TCP_NODELAY'),
}
INBOUND = {  # name: (client, target); the baseline is the first
    'raw paho -> raw paho': ('plain', RAW_NODELAY),
    'plain paho -> route (thread)': ('plain', 'bench-thread'),
    'plain paho -> route (process)': ('plain', 'bench-process'),
    'MqttTransport -> route (thread)': ('op', 'bench-thread'),
}
OUTBOUND = {  # name: source; the baseline is the first
    'raw paho -> raw paho': RAW_NODELAY,
    'route (thread) -> plain paho': 'bench-thread',
    'route (process) -> plain paho': 'bench-process',
}


def stop(bench: Bench | None, apps: dict[str, mp.Process], raws: list[mp.Process]) -> bool:
    """Close the clients, stop every process started; return whether all ended cleanly."""
    clean = True
    if bench is not None:
        try:
            bench.close()
        except Exception as exc:  # (the processes and the broker are stopped all the same)
            print(f'bench_mqtt: closing the clients failed: {exc!r}', file=sys.stderr)
            clean = False
    for app in apps.values():
        if app.pid is not None and app.is_alive():
            os.kill(app.pid, signal.SIGTERM)  # an orderly stop of the application
    for raw in raws:
        if raw.pid is not None:
            raw.terminate()
    for process in [*apps.values(), *raws]:
        if process.pid is None:
            continue
        process.join(20)
        if process.is_alive():
            print(f'bench_mqtt: {process.name} did not stop: killed', file=sys.stderr)
            process.kill()
            process.join(5)
            clean = False
        elif process in apps.values() and process.exitcode != 0:
            print(f'bench_mqtt: {process.name} ended with {process.exitcode}', file=sys.stderr)
            clean = False
    return clean


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f'signal {signum}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=1500,
                        help='round trips per round and path (a hundredth of it without '
                             'TCP_NODELAY), and envelopes per throughput round and path '
                             '(default 1500)')
    parser.add_argument('--rounds', type=int, default=3, help='default 3')
    args = parser.parse_args()
    count = args.count
    signal.signal(signal.SIGTERM, _interrupted)
    ctx = mp.get_context('spawn')
    tmp = tempfile.mkdtemp(prefix='bench-mqtt-')
    broker = Broker(Path(tmp) / 'broker')
    with open(broker.config, 'a') as config:  # its replies are small writes too
        config.write('set_tcp_nodelay true\n')
    apps: dict[str, mp.Process] = {}
    raws: list[mp.Process] = []
    bench: Bench | None = None
    p50s = {name: [] for name in ROUND_TRIPS}
    p90s = {name: [] for name in ROUND_TRIPS}
    rates = {('in', name): [] for name in INBOUND}
    rates.update({('out', name): [] for name in OUTBOUND})
    started = time.monotonic()
    failed = False
    try:
        broker.start()
        ready = []
        for prefix, no_delay in ((RAW_DEFAULT, False), (RAW_NODELAY, True)):
            ready.append(ctx.Event())
            raws.append(ctx.Process(target=raw_service, daemon=True,
                                    args=(broker.port, prefix, no_delay, count, ready[-1])))
            raws[-1].start()
        for robot, mode in APPS.items():
            apps[robot] = ctx.Process(target=route_app, args=(broker.port, robot, mode, count))
            apps[robot].start()
        if not all(event.wait(TIMEOUT) for event in ready):
            raise RuntimeError('a raw service did not come up')
        bench = Bench(broker.port)
        bench.start({False: RAW_DEFAULT, True: RAW_NODELAY}, list(APPS))
        for robot, app in apps.items():
            bench.wait_ready(robot, app)
        for client, no_delay, target, _ in ROUND_TRIPS.values():
            bench.round_trips(client, no_delay, target, 50 if no_delay else 3)  # warm up
        for _ in range(args.rounds):
            for name, (client, no_delay, target, _) in ROUND_TRIPS.items():
                # the 40 ms paths: fewer round trips, or they would take minutes
                times = sorted(bench.round_trips(client, no_delay, target,
                                                 count if no_delay else max(10, count // 100)))
                p50s[name].append(times[len(times) // 2])
                p90s[name].append(times[int(len(times) * 0.9)])
            for name, (client, target) in INBOUND.items():
                rates['in', name].append(bench.inbound(client, target, count))
            for name, source in OUTBOUND.items():
                rates['out', name].append(bench.outbound(source, count))
    except (Exception, KeyboardInterrupt) as exc:  # something broke: say what, clean up, exit 1
        print(f'bench_mqtt: FAILED: {type(exc).__name__}: {exc}', file=sys.stderr)
        failed = True
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup runs to its end
        try:
            failed = not stop(bench, apps, raws) or failed
        finally:
            broker.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        return 1
    size = len(orjson.dumps(envelope('op', 'echo', 'ping')))
    print(f'\nMQTT route vs raw paho through one mosquitto, QoS 1, MQTT 5, {size}-byte '
          f'envelopes, {os.cpu_count()} CPUs; {args.rounds} rounds x {count} (round trips '
          f'without TCP_NODELAY: x {max(10, count // 100)}); {time.monotonic() - started:.0f} s\n')
    print('| path | median | p90 / rate | ratio to raw | target met |')
    print('|---|---|---|---|---|')
    for name, (*_, baseline) in ROUND_TRIPS.items():
        p50, p90 = statistics.median(p50s[name]), statistics.median(p90s[name])
        ratio = p50 / statistics.median(p50s[baseline or name])
        met = '-' if baseline is None else ('yes' if ratio <= 1.3 else 'no')
        print(f'| round trip: {name} | {p50 * 1e3:.2f} ms | p90 {p90 * 1e3:.2f} ms | '
              f'{ratio:.2f} × | {met} |')
    for way, table in (('in', INBOUND), ('out', OUTBOUND)):
        label = 'client -> app' if way == 'in' else 'app -> client'
        base = statistics.median(rates[way, next(iter(table))])
        for i, name in enumerate(table):
            rate = statistics.median(rates[way, name])
            met = '-' if i == 0 else ('yes' if rate / base >= 0.8 else 'no')
            print(f'| {label}: {name} | - | {rate:,.0f} msg/s | {rate / base:.2f} × | {met} |')
    print('\nTargets: round trip <= 1.3 x raw (median); throughput >= 0.8 x raw.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
