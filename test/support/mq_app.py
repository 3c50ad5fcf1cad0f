#!/usr/bin/env python3
"""Application B over POSIX message queues (routes/mqueue/test_mqueue.py): mq_app.py MINE THEIRS.

Heads: ``mq`` (MqueueRouteHead reading the queue MINE, sending to THEIRS, with A's ``echo``
listed as remote) and ``panel``, which keeps asking A's ``echo`` for a ping across the route
(wait_for_reply) and, after each answer, tells A's ``main`` with an explicit ``via='mq'``.
``panel`` also answers 'ping' from the route. Stops on SIGTERM or SIGINT (exit code 0).
"""

from __future__ import annotations

import logging
import os
import sys

from polycephaly_ros import Application, NoReply, Process, message_filter
from polycephaly_ros.routes.mqueue import MqueueRouteHead


class Panel(Process):
    """Ping A's echo every life(); report each answer to A's main."""

    def birth(self) -> None:
        self.answered = 0

    def life(self) -> None:
        self.mailman()
        sent = self.send('echo', 'ping', {'n': self.answered})  # 'echo' is listed as remote
        try:
            reply = self.wait_for_reply(sent, timeout=1.0)
        except NoReply:
            return
        if reply['subject'] == 'error':
            self.mailman(wait=0.05)  # bounced: A's queue is not there (yet)
            return
        self.answered += 1
        self.send('main', 'pong', {
            'answered': self.answered, 'pid': os.getpid(),
            'sent': {h: sent[h] for h in ('messageid', 'threadid', 'threadindex')},
            'reply': reply}, via='mq')

    @message_filter(route='mqueue', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'body': message['body'], 'route': message['route'],
                             'pid': os.getpid()})


class MqApp(Application):
    def __init__(self, mine: str, theirs: str) -> None:
        super().__init__(name='touch', ros=False, threads_timeout=5)
        self.mine, self.theirs = mine, theirs

    def build(self) -> None:
        self.add_process(MqueueRouteHead, name='mq', queue=self.mine, peer_queue=self.theirs,
                         remote=['echo'])
        self.add_process(Panel, name='panel')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='B %(name)s %(levelname)s: %(message)s')
    sys.exit(MqApp(sys.argv[1], sys.argv[2]).run())
