#!/usr/bin/env python3
"""The seed's "Hello, World!" on polycephaly_ros: run it with --mode thread or --mode process."""

import argparse
import logging
import os
import sys

import polycephaly_ros

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # processes/, under python -P too
from processes import hello_world, main  # noqa: E402

PPILL = 'STOP!'


class Application(polycephaly_ros.Application):
    """A main head that answers and a hello head that greets it."""

    def __init__(self, mode: str, count: int, rate: float, **options) -> None:
        super().__init__(main, **options)
        self.mode, self.count, self.rate = mode, count, rate

    def build(self) -> None:
        """Add the hello head."""
        self.global_frequency(15)
        self.add_process(hello_world, 'Arg1', 'Arg2', abc=123, xyz=789, count=self.count,
                         ppill=PPILL, name='Hello', mode=self.mode, frequency=self.rate)


def cli(argv=None) -> int:
    """Parse arguments and run the application until it stops."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--mode', default='thread', help='thread or process')
    parser.add_argument('--count', type=int, default=0, help='stop after N greetings (0: never)')
    parser.add_argument('--frequency', type=float, default=1 / 5, help='greetings per second')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(asctime)s] %(levelname)s: %(name)s: %(message)s')
    app = Application(args.mode, args.count, args.frequency, name='Main', ppill=PPILL,
                      queue_size=25, queue_type='FIFO', frequency=5, threads_timeout=30)
    return app.run()


if __name__ == '__main__':
    sys.exit(cli())
