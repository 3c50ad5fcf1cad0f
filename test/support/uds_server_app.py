"""An application serving a Unix socket: python uds_server_app.py PATH [KEY=VALUE ...].

Its heads: ``uds_server`` (UnixSocketServerHead on PATH; KEY=VALUE pairs are its kwargs, as
Python literals, e.g. ``max_buffered=16777216`` or ``socket_mode=0o666``) and ``echo``, a
RouteEcho process head. Runs without ROS; prints ``ready`` once both run.
"""

import ast
import logging
import sys

from heads import RouteEcho, SaysReady
from polycephaly_ros import Application
from polycephaly_ros.routes.unix_socket import UnixSocketServerHead


class ServerApp(Application):
    """The socket route head and an echo process head."""

    def __init__(self, path: str, options: dict) -> None:
        super().__init__(SaysReady, ros=False)
        self.path, self.options = path, options

    def build(self) -> None:
        self.add_process(UnixSocketServerHead, name='uds_server', path=self.path, **self.options)
        self.add_process(RouteEcho, name='echo', mode='process')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    options = {k: ast.literal_eval(v) for k, v in (a.split('=', 1) for a in sys.argv[2:])}
    sys.exit(ServerApp(sys.argv[1], options).run())
