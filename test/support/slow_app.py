"""An application whose process head takes a minute to die: python slow_app.py FORCE_STOP TIMEOUT."""

import logging
import sys

from heads import SlowDeath
from polycephaly_ros import Application, Process


class Main(Process):
    """Say 'ready' once the heads are up."""

    def birth(self) -> None:
        self.said = False

    def life(self) -> None:
        if not self.said:
            print('ready', flush=True)
            self.said = True
        self.mailman()


class SlowApp(Application):
    """One slow-dying process head."""

    def build(self) -> None:
        self.add_process(SlowDeath, name='slow', mode='process', seconds=60, say=True)


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    sys.exit(SlowApp(Main, force_stop=sys.argv[1] == 'True',
                     threads_timeout=float(sys.argv[2])).run())
