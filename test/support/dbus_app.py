"""An application on D-Bus: python dbus_app.py ADDRESS BUS_NAME [KEY=VALUE ...].

Its heads: ``dbus`` (ProbedDbusServer owning BUS_NAME on the bus at ADDRESS; KEY=VALUE pairs
are its kwargs, as Python literals), ``echo`` (RouteEcho) and ``caller`` (Caller). Runs
without ROS; prints ``ready`` once every head runs.
"""

import ast
import logging
import sys

from dbus_heads import Caller, ProbedDbusServer
from heads import RouteEcho, SaysReady
from polycephaly_ros import Application


class DbusApp(Application):
    """The D-Bus server head, an echo head and a caller head."""

    def __init__(self, address: str, bus_name: str, options: dict) -> None:
        super().__init__(SaysReady, ros=False, threads_timeout=5)
        self.address, self.bus_name, self.options = address, bus_name, options

    def build(self) -> None:
        self.add_process(ProbedDbusServer, name='dbus', bus=self.address, bus_name=self.bus_name,
                         **self.options)
        self.add_process(RouteEcho, name='echo')
        self.add_process(Caller, name='caller')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    options = {k: ast.literal_eval(v) for k, v in (a.split('=', 1) for a in sys.argv[3:])}
    sys.exit(DbusApp(sys.argv[1], sys.argv[2], options).run())
