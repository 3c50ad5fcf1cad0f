#!/usr/bin/env python3
"""ROS bridge round trip and throughput (external rclpy node <-> head), beside raw rclpy.

Three processes, all in one run and on one ROS domain (run it with ``./dev env -- python
bench/bench_ros.py``, which keeps DDS on loopback):

* the *pinger* (this process): a plain rclpy node that publishes typed
  ``polycephaly_ros/msg/Envelope`` messages (a seed-like envelope, about 200 bytes of JSON and
  headers) and waits for the answers on its own topic;
* the *raw ponger*: a plain rclpy node that republishes every ``ping`` it receives on the
  pinger's topic (what the fastest possible ROS echo does);
* the *application*: a polycephaly_ros application whose thread head ``echo`` answers on the
  ROS bridge (inbox subscription, taken by the head's own thread -> filter -> reply ->
  publisher).

Both paths use the same message, the same QoS (reliable, keep-all, volatile) and the same
executor in the pinger. Round trip: sequential pings, p50/p90. Throughput: N envelopes as
fast as the reliable writer takes them, then a ``report`` request answered once all arrived;
envelopes/s from first send to that answer. Medians over --runs runs; a markdown table with
ratios (bridge / raw) is printed. Target: round trip <= 1.3 x raw rclpy.

Placements: unpinned, where the scheduler happens to put the pinger's threads moves both
paths between ~300 and ~500 µs for long stretches, so the pings alternate between the two
paths in chunks of :data:`CHUNK` (both then see the same placements). The whole comparison
is also made with every process on one CPU (the pinger on CPU 0, the raw ponger and the
application on CPU 1), which measures the code rather than the placement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

from placement import pin

HEADERS = json.dumps({'args': ['Arg1', 'Arg2'], 'kwargs': {'abc': 123, 'xyz': 789}})
NS = '/bench'
#: Pings per path before switching to the other one.
CHUNK = 100


def _qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def _executor(kind: str = 'single', context=None):
    # SingleThreadedExecutor everywhere, as in polycephaly_ros's RclpyHost. (EventsExecutor was
    # tried: adding a node from another thread while it spins blocks, and the ping-pong below
    # got no answers with it, so it is not compared here.)
    from rclpy.executors import SingleThreadedExecutor
    return SingleThreadedExecutor(context=context)


def _publish(pub, msg, error_type) -> None:
    while True:
        try:
            pub.publish(msg)
            return
        except error_type:  # keep-all history full: the reader lags
            continue


# -- raw ponger (a plain rclpy node) ----------------------------------------------------------
def run_ponger(executor_kind: str) -> int:
    import rclpy
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    from polycephaly_ros.msg import Envelope

    rclpy.init()
    node = rclpy.create_node('raw_ponger', namespace=NS)
    pub = node.create_publisher(Envelope, 'polycephaly/pinger_raw/inbox', _qos())
    count = [0]

    def on_ping(msg):
        if msg.subject == 'item':
            count[0] += 1
            return
        if msg.subject == 'report':
            msg.body_json = str(count[0])
            count[0] = 0
        msg.threadindex += 1
        msg.sender, msg.recipient = msg.recipient, msg.sender
        _publish(pub, msg, _rclpy.RCLError)

    node.create_subscription(Envelope, 'raw/inbox', on_ping, _qos())
    executor = _executor(executor_kind)
    executor.add_node(node)
    print('ready', flush=True)
    # End when the bench closes our stdin. os._exit: shutting an EventsExecutor down from
    # another thread does not stop its spin() reliably.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    executor.spin()
    return 0


# -- the application (polycephaly_ros) -------------------------------------------------------
def run_app() -> int:
    from polycephaly_ros import Application, Process, message_filter

    class Echo(Process):
        def birth(self):
            self.count = 0

        @message_filter(route='ros', subject='ping')
        def ping(self, message):
            self.reply(message, message['body'])

        @message_filter(route='ros', subject='item')
        def item(self, message):
            self.count += 1

        @message_filter(route='ros', subject='report')
        def report(self, message):
            self.reply(message, self.count)
            self.count = 0

    class Ready(Process):
        def life(self):
            if not getattr(self, 'said', False):
                self.said = True
                print('ready', flush=True)
            self.mailman(wait=1.0)

    class App(Application):
        def build(self):
            self.add_process(Echo, name='echo', frequency=1)

    return App(Ready, name='bench_main', namespace=NS, send_timeout=10).run()


# -- the pinger --------------------------------------------------------------------------------
class Pinger:
    def __init__(self, executor_kind: str) -> None:
        import rclpy
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        from polycephaly_ros.msg import Envelope

        self.Envelope = Envelope
        self.error_type = _rclpy.RCLError
        rclpy.init()
        self.node = rclpy.create_node('pinger', namespace=NS)
        self.arrived = threading.Event()
        self.last = None
        self.pubs = {}
        for name in ('pinger_raw', 'pinger_bridge'):
            self.node.create_subscription(Envelope, f'polycephaly/{name}/inbox', self._on_reply,
                                          _qos())
        self.pubs['raw'] = self.node.create_publisher(Envelope, 'raw/inbox', _qos())
        self.pubs['bridge'] = self.node.create_publisher(Envelope, 'polycephaly/echo/inbox',
                                                         _qos())
        self.executor = _executor(executor_kind)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_reply(self, msg) -> None:
        self.last = msg
        self.arrived.set()

    def message(self, path: str, subject: str, body) -> object:
        m = self.Envelope()
        m.messageid = str(uuid.uuid4())
        m.threadid = str(uuid.uuid4())
        m.threadindex = 1
        m.sender = 'pinger_raw' if path == 'raw' else 'pinger_bridge'
        m.recipient = 'echo'
        m.subject = subject
        m.time = time.time()
        m.body_json = json.dumps(body)
        m.headers_json = HEADERS
        return m

    def wait_matched(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        pub = self.pubs[path]
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f'no subscriber on {pub.topic_name}')
            time.sleep(0.01)
        while True:  # until an answer comes back: the answering side has matched us too
            try:
                self.request(path, 'ping', 'warm-up', 1.0)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise

    def request(self, path: str, subject: str, body, timeout: float = 10.0):
        msg = self.message(path, subject, body)
        self.arrived.clear()
        _publish(self.pubs[path], msg, self.error_type)
        if not self.arrived.wait(timeout):
            raise RuntimeError(f'{path}: no answer to {subject!r}')
        assert self.last.threadid == msg.threadid, 'answer to another request'
        return self.last

    def round_trips(self, path: str, count: int) -> list[float]:
        times = []
        body = 'Hello, World!'
        for _ in range(count):
            t = time.perf_counter()
            self.request(path, 'ping', body)
            times.append(time.perf_counter() - t)
        return times

    def throughput(self, path: str, count: int) -> float:
        messages = [self.message(path, 'item', i) for i in range(count)]
        pub = self.pubs[path]
        start = time.perf_counter()
        for m in messages:
            _publish(pub, m, self.error_type)
        answer = self.request(path, 'report', None, timeout=120)
        elapsed = time.perf_counter() - start
        got = int(json.loads(answer.body_json))
        if got != count:
            raise RuntimeError(f'{path}: {got} of {count} envelopes arrived')
        return count / elapsed


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1')
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    line = proc.stdout.readline()
    if b'ready' not in line:
        proc.kill()
        raise RuntimeError(f'{args}: did not start ({line!r})')
    return proc


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--role', choices=('bench', 'ponger', 'app'), default='bench')
    parser.add_argument('--pings', type=int, default=1000)
    parser.add_argument('--burst', type=int, default=2000)
    parser.add_argument('--runs', type=int, default=5)
    options = parser.parse_args()
    if os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE') != 'LOCALHOST':
        sys.exit('bench_ros: run it with ./dev env -- python bench/bench_ros.py '
                 '(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST keeps DDS on loopback)')
    if options.role == 'ponger':
        return run_ponger('single')
    if options.role == 'app':
        return run_app()

    ponger = _start(['--role', 'ponger'])
    app = _start(['--role', 'app'])
    every = set(range(os.cpu_count() or 1))
    placements = {'unpinned': (every, every)}  # (the pinger's CPUs, the others')
    if len(every) > 1:
        placements['each process on one CPU'] = ({0}, {1})
    results = {(where, p): {'p50': [], 'p90': [], 'rate': []}
               for where in placements for p in ('raw', 'bridge')}
    try:
        pinger = Pinger('single')
        for path in ('raw', 'bridge'):
            pinger.wait_matched(path)
        for _ in range(options.runs):
            for where, (mine, theirs) in placements.items():
                pin(os.getpid(), mine)
                for proc in (ponger, app):
                    pin(proc.pid, theirs)
                times = {'raw': [], 'bridge': []}
                for _ in range(max(1, options.pings // CHUNK)):  # interleaved in chunks
                    for path in times:
                        times[path] += pinger.round_trips(path, CHUNK)
                for path in times:
                    results[where, path]['p50'].append(_pct(times[path], 0.5))
                    results[where, path]['p90'].append(_pct(times[path], 0.9))
                    results[where, path]['rate'].append(pinger.throughput(path, options.burst))
    finally:
        for proc in (ponger, app):
            proc.stdin.close()  # the ponger stops when its stdin closes
        app.terminate()         # the application stops in order on SIGTERM
        for proc in (ponger, app):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    print(f'\nROS bridge vs raw rclpy ({options.runs} runs per placement, medians; '
          f'{options.pings} pings, bursts of {options.burst}; SingleThreadedExecutor everywhere; '
          f'{len(every)} CPUs)\n')
    print('| placement | path | round trip p50 | round trip p90 | '
          'throughput (envelopes/s, lossless) |')
    print('|---|---|---|---|---|')
    for where in placements:
        med = {p: {k: statistics.median(v) for k, v in results[where, p].items()}
               for p in ('raw', 'bridge')}
        raw, bridge = med['raw'], med['bridge']
        print(f'| {where} | raw rclpy ping-pong | {raw["p50"] * 1e6:.0f} µs | '
              f'{raw["p90"] * 1e6:.0f} µs | {raw["rate"]:.0f} |')
        print(f'| {where} | ROS bridge (peer ↔ head) | {bridge["p50"] * 1e6:.0f} µs | '
              f'{bridge["p90"] * 1e6:.0f} µs | {bridge["rate"]:.0f} |')
        ratio = bridge['p50'] / raw['p50']
        print(f'| {where} | ratio bridge / raw | {ratio:.2f} × | '
              f'{bridge["p90"] / raw["p90"]:.2f} × | {bridge["rate"] / raw["rate"]:.2f} × |')
    for where in placements:
        runs = ', '.join(f'{b / r:.2f}' for r, b in zip(results[where, 'raw']['p50'],
                                                        results[where, 'bridge']['p50']))
        print(f'\n{where}: round-trip ratio per run: {runs} (target ≤ 1.3 ×)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
