"""An application on MQTT: python mqtt_app.py ROBOT PORT [KEY=VALUE ...].

Its heads: ``mqtt`` (MqttRouteHead, robot ROBOT, broker on 127.0.0.1:PORT; KEY=VALUE pairs
are its kwargs, as Python literals) and ``echo``, a RouteEcho thread head. Runs without ROS;
prints ``ready`` once both run.
"""

import ast
import logging
import sys

from heads import RouteEcho, SaysReady
from polycephaly_ros import Application
from polycephaly_ros.routes.mqtt import MqttRouteHead


class MqttApp(Application):
    """The MQTT route head and an echo head."""

    def __init__(self, robot: str, port: int, options: dict) -> None:
        super().__init__(SaysReady, ros=False)
        self.robot, self.port, self.options = robot, port, options

    def build(self) -> None:
        self.add_process(MqttRouteHead, name='mqtt', robot=self.robot, port=self.port,
                         **self.options)
        self.add_process(RouteEcho, name='echo')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    options = {k: ast.literal_eval(v) for k, v in (a.split('=', 1) for a in sys.argv[3:])}
    sys.exit(MqttApp(sys.argv[1], int(sys.argv[2]), options).run())
