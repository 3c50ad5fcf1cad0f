"""An application of N process heads: python many_heads_app.py N ROS (ROS: on or off).

Prints ``pid <pid>`` first, ``born <head>`` as each head's birth() ends, ``ready`` once every
head runs, and ``exit <code>`` when run() returned.
"""

import logging
import os
import sys

from heads import SaysReady
from polycephaly_ros import Application, Process


class Noted(Process):
    """Say when born."""

    def birth(self) -> None:
        print(f'born {self.name}', flush=True)


class ManyHeads(Application):
    """N process heads."""

    def __init__(self, count: int, ros: bool) -> None:
        super().__init__(SaysReady, ros=ros, threads_timeout=10)
        self.count = count

    def build(self) -> None:
        for i in range(self.count):
            self.add_process(Noted, name=f'h{i:02d}', mode='process')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    print(f'pid {os.getpid()}', flush=True)
    code = ManyHeads(int(sys.argv[1]), sys.argv[2] == 'on').run()
    print(f'exit {code}', flush=True)
    sys.exit(code)
