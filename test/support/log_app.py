"""An application that configures no logging, so its heads log through rclpy (ros/log.py).

Run as ``python log_app.py [--ros-args ...]`` (rclpy reads them from sys.argv, in every
process of the application). The sub-heads 'talker' (a process) and 'chatter' (a thread) each
log one INFO and one DEBUG line in birth(), then tell the main head; once both have, the main
head logs 'all born' and serves until SIGINT.
"""

import sys

from polycephaly_ros import Application, Process, message_filter


class Talker(Process):
    """Log one line at INFO and one at DEBUG, then tell the main head."""

    def birth(self) -> None:
        self.logger.info('info from %s', self.name)
        self.logger.debug('debug from %s', self.name)
        self.send('main', 'born', self.name)


class Main(Process):
    """Log 'all born' once both sub-heads have said so."""

    def birth(self) -> None:
        self.born: set[str] = set()

    @message_filter(subject='born')
    def on_born(self, message: dict) -> None:
        self.born.add(message['body'])
        if self.born == {'talker', 'chatter'}:
            self.logger.info('all born')


class LogApp(Application):
    """Two talking sub-heads, one per mode."""

    def build(self) -> None:
        self.add_process(Talker, name='talker', mode='process')
        self.add_process(Talker, name='chatter', mode='thread')


if __name__ == '__main__':
    sys.exit(LogApp(Main, namespace='/robot').run())
