#!/usr/bin/env python3
"""Measure envelopes/s and round trip between two process heads, beside a raw multiprocessing.Pipe.

Both sides carry the same dicts (a seed-like envelope of about 200 bytes) between two
processes in the same run; the table reports medians of several runs and the ratios.

A wake-up that crosses CPUs costs ~50 µs on a small VM, one on the same CPU a few µs, and
unpinned the scheduler picks either for long stretches, so every measurement is made in
three placements, each beside the raw baseline in the same placement: both processes on one
CPU, sender and receiver on two CPUs, and unpinned.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

import polycephaly_ros
from placement import pin

PAYLOAD = {'sender': 'hello', 'recipient': 'main', 'subject': 'salutation', 'body': 'Hello, World!',
           'messageid': '9da03bcf-af3d-49ad-a9d4-17617c974de6',
           'threadid': '05cc7e85-f291-4c63-af34-6d47b8fc2594', 'threadindex': 1,
           'time': 123456789.0, 'args': ('Arg1', 'Arg2'), 'kwargs': {'abc': 123, 'xyz': 789}}


# -- raw baseline -------------------------------------------------------------------------
def _raw_sink(conn, count: int, cpus: set[int]) -> None:
    pin(os.getpid(), cpus)
    for _ in range(count):
        conn.recv()
    conn.send('done')


def _raw_echo(conn, count: int, cpus: set[int]) -> None:
    pin(os.getpid(), cpus)
    for _ in range(count):
        conn.send(conn.recv())


def raw_throughput(count: int, cpus: tuple) -> float:
    """Return dicts/s from one process to another over multiprocessing.Pipe."""
    ctx = mp.get_context('forkserver')
    a, b = ctx.Pipe()
    p = ctx.Process(target=_raw_sink, args=(b, count, cpus[1]))
    p.start()
    start = time.perf_counter()
    for _ in range(count):
        a.send(PAYLOAD)
    a.recv()
    elapsed = time.perf_counter() - start
    p.join()
    return count / elapsed


def raw_round_trips(count: int, cpus: tuple) -> list[float]:
    """Return ping-pong round-trip times (s) over multiprocessing.Pipe."""
    ctx = mp.get_context('forkserver')
    a, b = ctx.Pipe()
    p = ctx.Process(target=_raw_echo, args=(b, count, cpus[1]))
    p.start()
    times = []
    for _ in range(count):
        t = time.perf_counter()
        a.send(PAYLOAD)
        a.recv()
        times.append(time.perf_counter() - t)
    p.join()
    return times


# -- polycephaly_ros ------------------------------------------------------------------------
class Sink(polycephaly_ros.Process):
    """Count envelopes; answer the last one."""

    def birth(self) -> None:
        pin(os.getpid(), self.kwargs['cpus'])
        self.seen = 0
        self.add_filter(self.count, subject='load')
        self.add_filter(self.echo, subject='ping')

    def count(self, message: dict) -> None:
        self.seen += 1
        if message['body'] == 'last':
            self.reply(message, self.seen)

    def echo(self, message: dict) -> None:
        self.reply(message)


class Source(polycephaly_ros.Process):
    """Run the measurements against the sink, report to main, then stop."""

    def birth(self) -> None:
        pin(os.getpid(), self.kwargs['cpus'])

    def life(self) -> None:
        count, pings = self.kwargs['count'], self.kwargs['pings']
        headers = {k: v for k, v in PAYLOAD.items() if k in ('args', 'kwargs')}
        start = time.perf_counter()
        for _ in range(count - 1):
            self.send('sink', 'load', 'Hello, World!', **headers)
        last = self.send('sink', 'load', 'last', **headers)
        seen = self.wait_for_reply(last, timeout=60)['body']
        rate = count / (time.perf_counter() - start)
        assert seen == count, (seen, count)
        times = []
        for _ in range(pings):
            t = time.perf_counter()
            self.wait_for_reply(self.send('sink', 'ping', 'Hello, World!', **headers), timeout=10)
            times.append(time.perf_counter() - t)
        self.send('main', 'result', {'rate': rate, 'times': times})
        self.die()


class Main(polycephaly_ros.Process):
    """Keep the result and stop the application."""

    def birth(self) -> None:
        self.add_filter(self.result, subject='result')

    def result(self, message: dict) -> None:
        self.measured = message['body']
        self.die()


class Bench(polycephaly_ros.Application):
    """Two process heads: a source and a sink."""

    def __init__(self, count: int, pings: int, cpus: tuple) -> None:
        super().__init__(Main, queue_size=1000, ros=os.environ.get('BENCH_ROS', '1') == '1')
        self.count, self.pings, self.cpus = count, pings, cpus

    def build(self) -> None:
        self.add_process(Sink, mode='process', frequency=1000, cpus=self.cpus[1])
        self.add_process(Source, mode='process', count=self.count, pings=self.pings,
                         frequency=1000, bound_shutdown=True, cpus=self.cpus[0])


def ours(count: int, pings: int, cpus: tuple) -> tuple[float, list[float]]:
    """Return (envelopes/s, round-trip times) between two process heads."""
    app = Bench(count, pings, cpus)
    if app.run() != 0:
        raise RuntimeError(app.reason)
    return app.main.measured['rate'], app.main.measured['times']


def main(argv: list[str] | None = None) -> int:
    """Run every measurement `runs` times in each placement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=20000, help='envelopes per throughput run')
    parser.add_argument('--pings', type=int, default=2000, help='round trips per run')
    parser.add_argument('--runs', type=int, default=5)
    args = parser.parse_args(argv)
    every = set(range(os.cpu_count() or 1))
    placements = {'one CPU': ({0}, {0})}  # (sender's CPUs, receiver's CPUs)
    if len(every) > 1:
        placements['two CPUs'] = ({0}, {1})
    placements['unpinned'] = (every, every)  # explicit: children of a pinned parent inherit
    print(f'two process heads, {args.count} envelopes and {args.pings} round trips x '
          f'{args.runs} runs per placement, medians, {len(every)} CPUs\n')
    print('| placement | measure | raw multiprocessing.Pipe | polycephaly_ros | ratio | target |')
    print('|---|---|---|---|---|---|')
    for where, cpus in placements.items():
        os.sched_setaffinity(0, cpus[0])  # this process: the main head and the raw sender
        raw_rates, our_rates, raw_rtt, our_rtt = [], [], [], []
        for _ in range(args.runs):
            raw_rates.append(raw_throughput(args.count, cpus))
            raw_rtt.append(statistics.median(raw_round_trips(args.pings, cpus)))
            rate, times = ours(args.count, args.pings, cpus)
            our_rates.append(rate)
            our_rtt.append(statistics.median(times))
        rr, orr = statistics.median(raw_rates), statistics.median(our_rates)
        rt, ort = statistics.median(raw_rtt) * 1e6, statistics.median(our_rtt) * 1e6
        print(f'| {where} | throughput (envelopes/s) | {rr:,.0f} | {orr:,.0f} | '
              f'{orr / rr:.2f} × | ≥ 0.8 × |', flush=True)
        print(f'| {where} | round trip p50 | {rt:.0f} µs | {ort:.0f} µs | {ort / rt:.2f} × | '
              f'≤ 1.5 × |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
