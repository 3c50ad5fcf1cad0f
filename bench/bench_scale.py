#!/usr/bin/env python3
"""Many process heads: start, stop, memory per head and aggregate throughput, beside raw rclpy.

For each N (``--sizes``, default 1 10 20 40) and each way of starting (ROS off; ROS with simple
discovery, heads born in order or in parallel; ROS with a discovery server the application
starts, in order or in parallel), one application of N idle process heads runs in a fresh
process (its own fork server and DDS state) and reports:

* start: from run() until every head's birth() returned (the main head's first life());
* stop: from the main head's die() until run() returned, every head process ended;
* PSS and USS per head process (median; /proc/<pid>/smaps_rollup): RSS counts the shared
  libraries in every process, PSS shares them out, USS is what the head alone holds;
* fan-in: every other head sends --count envelopes to one head, envelopes/s until it got all;
* pairs: heads in pairs, one sends --count to the other, all pairs at once, envelopes/s.

The raw baseline, measured in the same run: N bare multiprocessing processes (forkserver)
that each import rclpy, call rclpy.init and create one node, all started at once; the time
until every one has its node. The table prints start / raw for the ROS rows. Run it with
``./dev bench`` (or ``./dev env -- python bench/bench_scale.py``: DDS stays on loopback).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

MODES = {  # name -> (ros, parallel_start, discovery_server)
    'ros off': (False, False, None),
    'simple, in order': (True, False, None),
    'simple, parallel': (True, True, None),
    'server, in order': (True, False, 'start'),
    'server, parallel': (True, True, 'start'),
}


# -- one application (runs in a child process of the bench) ----------------------------------
from polycephaly_ros import Application, Process, message_filter  # noqa: E402


class Worker(Process):
    """An idle head that sends on request ('blast') and counts what it gets ('item')."""

    expected = 0
    got = 0

    @message_filter(subject='expect')
    def on_expect(self, envelope: dict) -> None:
        self.expected, self.got = envelope['body'], 0
        self.reply(envelope, 'ok')

    @message_filter(subject='item')
    def on_item(self, envelope: dict) -> None:
        self.got += 1
        if self.got == self.expected:
            self.send('main', 'got', self.got)

    @message_filter(subject='blast')
    def on_blast(self, envelope: dict) -> None:
        for i in range(envelope['body']['count']):
            self.send(envelope['body']['to'], 'item', i)


class Main(Process):
    """Measure once every head was born, then stop."""

    def life(self) -> None:
        app = self.application
        app.result['start'] = time.perf_counter() - app.started
        heads = [h['name'] for h in app.status()]
        app.result.update(memory([h.process.pid for h in app._supervisor.handles.values()]))
        if len(heads) > 1:
            app.result['fan_in'] = self.flow([(h, heads[0]) for h in heads[1:]], app.each)
            app.result['pairs'] = self.flow(list(zip(heads[0::2], heads[1::2])), app.each)
        app.stop_from = time.perf_counter()
        self.die()

    def flow(self, routes: list[tuple[str, str]], each: int) -> float:
        """Send each envelopes along every route at once; return envelopes/s."""
        targets: dict[str, int] = {}
        for _, to in routes:
            targets[to] = targets.get(to, 0) + each
        for to, total in targets.items():
            self.wait_for_reply(self.send(to, 'expect', total), 30)
        got: list[dict] = []
        done = self.add_filter(got.append, subject='got')
        begin = time.perf_counter()
        for sender, to in routes:
            self.send(sender, 'blast', {'to': to, 'count': each})
        while len(got) < len(targets):
            self.mailman(wait=1.0)
        elapsed = time.perf_counter() - begin
        self.remove_filter(done)
        return each * len(routes) / elapsed


class Scale(Application):
    """N idle process heads."""

    def __init__(self, count: int, mode: str, each: int) -> None:
        ros, parallel, discovery = MODES[mode]
        super().__init__(Main, ros=ros, parallel_start=parallel, discovery_server=discovery,
                         threads_timeout=60)
        self.count, self.each, self.result = count, each, {}
        self.started = self.stop_from = 0.0

    def build(self) -> None:
        for i in range(self.count):
            self.add_process(Worker, name=f'h{i}', mode='process')


def run_one(count: int, mode: str, each: int) -> dict:
    """Run N idle process heads in the given mode; return the measurements."""
    app = Scale(count, mode, each)
    app.started = time.perf_counter()
    assert app.run() == 0, app.reason
    app.result['stop'] = time.perf_counter() - app.stop_from
    return app.result


def memory(pids: list[int]) -> dict:
    """Return the median RSS, PSS and USS of the processes, in MiB."""
    rows = []
    for pid in pids:
        fields = {}
        with open(f'/proc/{pid}/smaps_rollup') as rollup:
            for line in rollup:
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    fields[parts[0].rstrip(':')] = int(parts[1]) / 1024
        rows.append((fields['Rss'], fields['Pss'],
                     fields['Private_Clean'] + fields['Private_Dirty']))
    return {name: statistics.median(r[i] for r in rows)
            for i, name in enumerate(('rss', 'pss', 'uss'))}


# -- the raw baseline ------------------------------------------------------------------------
def _raw_node(index: int, ready: mp.connection.Connection, stop: mp.synchronize.Event) -> None:
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f'raw{index}', context=context)
    ready.send(os.getpid())
    stop.wait(120)
    node.destroy_node()
    context.try_shutdown()


def raw_start(count: int) -> float:
    """Return seconds until N bare processes each have an initialised rclpy node."""
    context = mp.get_context('forkserver')
    stop = context.Event()
    pipes = [context.Pipe(duplex=False) for _ in range(count)]
    started = time.perf_counter()
    processes = [context.Process(target=_raw_node, args=(i, pipes[i][1], stop))
                 for i in range(count)]
    for process in processes:
        process.start()
    for reader, _ in pipes:
        reader.recv()
    elapsed = time.perf_counter() - started
    stop.set()
    for process in processes:
        process.join(10)
        if process.exitcode is None:  # its DDS teardown hung (eProsima/Fast-DDS#6502)
            process.kill()
            process.join()
    return elapsed


# -- the bench -------------------------------------------------------------------------------
def measure(args: list[str]) -> dict:
    """Run this file with args in a fresh process; return the JSON it prints last."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith('{')]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f'{args} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}')
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[1, 10, 20, 40])
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=list(MODES))
    parser.add_argument('--count', type=int, default=500, help='envelopes per sender')
    parser.add_argument('--one', nargs=2, metavar=('N', 'MODE'), help=argparse.SUPPRESS)
    parser.add_argument('--raw', type=int, metavar='N', help=argparse.SUPPRESS)
    options = parser.parse_args()
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if options.one:
        print(json.dumps(run_one(int(options.one[0]), options.one[1], options.count)))
        return 0
    if options.raw:
        print(json.dumps({'start': raw_start(options.raw)}))
        return 0
    print('| N | start-up | start s | raw rclpy s | start / raw | stop s | PSS MiB/head '
          '| USS MiB/head | fan-in env/s | pairs env/s |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for count in options.sizes:
        raw = measure(['--raw', str(count)])['start']
        for mode in options.modes:
            r = measure(['--one', str(count), mode, '--count', str(options.count)])
            ros = MODES[mode][0]
            print(f"| {count} | {mode} | {r['start']:.2f} | {raw:.2f} | "
                  f"{r['start'] / raw if ros else float('nan'):.2f} | {r['stop']:.2f} | "
                  f"{r['pss']:.1f} | {r['uss']:.1f} | {r.get('fan_in', float('nan')):,.0f} | "
                  f"{r.get('pairs', float('nan')):,.0f} |", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
