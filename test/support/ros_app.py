"""Heads for the ROS bridge tests, and a small second application to run as a subprocess.

``python ros_app.py --namespace NS --main NAME --head NAME[:thread|:process] ...`` runs an
application whose main head prints ``ready`` once every head is born, whose sub-heads are
:class:`RosEcho`, and which stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import sys

from polycephaly_ros import Application, NoReply, PolycephalyError, Process, message_filter


class RosEcho(Process):
    """Answer on any route: ping (echo + the route it came on), item/report, call."""

    def birth(self) -> None:
        self.items: list = []

    @message_filter(route=None, subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'echo': message['body'], 'route': message.get('route'),
                             'head': self.name})

    @message_filter(route=None, subject='item')
    def item(self, message: dict) -> None:
        self.items.append(message['body'])

    @message_filter(route=None, subject='report')
    def report(self, message: dict) -> None:
        items = self.items
        self.reply(message, {'count': len(items), 'in_order': items == sorted(items),
                             'unique': len(set(items))})

    @message_filter(route=None, subject='call')
    def call(self, message: dict) -> None:
        """Send body['subject'] with body['body'] to body['to'], wait for its reply, pass it on."""
        order = message['body']
        try:
            sent = self.send(order['to'], order['subject'], order.get('body'))
            answer = self.wait_for_reply(sent, order.get('timeout', 10.0))
            self.reply(message, {'answer': answer['body'], 'from': answer['sender'],
                                 'route': answer.get('route')})
        except (NoReply, PolycephalyError) as exc:
            self.reply(message, {'error': f'{type(exc).__name__}: {exc}'})


class ReadyMain(Process):
    """Print 'ready' once every autostart head is born, then serve the mail."""

    def birth(self) -> None:
        self.announced = False

    def life(self) -> None:
        if not self.announced:
            self.announced = True
            print('ready', flush=True)
        self.mailman()


def main(argv: list[str]) -> int:
    import argparse
    import logging

    parser = argparse.ArgumentParser()
    parser.add_argument('--namespace', default='')
    parser.add_argument('--main', default='main')
    parser.add_argument('--head', action='append', default=[])
    parser.add_argument('--send-timeout', type=float, default=10.0)
    options = parser.parse_args(argv)
    from ros_app import RosEcho as Echo  # importable by name in head processes, unlike __main__
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')

    class App(Application):
        def build(self) -> None:
            for spec in options.head:
                name, _, mode = spec.partition(':')
                self.add_process(Echo, name=name, mode=mode or 'thread')

    app = App(ReadyMain, name=options.main, namespace=options.namespace,
              send_timeout=options.send_timeout, threads_timeout=10)
    return app.run()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
