#!/usr/bin/env python3
"""Application B: a "touchscreen" reaching application A's heads (routes/unix_socket/test_heads.py).

Usage: uds_client_app.py SOCKET_PATH

Heads: ``uds`` (UnixSocketClientHead on SOCKET_PATH, with A's ``echo`` listed as remote) and
``panel``, which keeps asking A's ``echo`` head for a ping over the socket (wait_for_reply
across the route) and, after each answer, tells A's ``main`` head with an explicit
``via='uds'``. ``panel`` also answers 'ping' from the socket, so A can wait for its replies.
The application stops on SIGTERM or SIGINT (exit code 0).
"""

from __future__ import annotations

import logging
import os
import sys

from polycephaly_ros import Application, NoReply, Process, message_filter
from polycephaly_ros.routes.unix_socket import UnixSocketClientHead


class Panel(Process):
    """Ping A's echo over the socket every life(); report each answer to A's main."""

    def birth(self) -> None:
        self.answered = 0
        self.errors: list = []

    def life(self) -> None:
        self.mailman()
        sent = self.send('echo', 'ping', {'n': self.answered})  # 'echo' is listed as remote
        try:
            reply = self.wait_for_reply(sent, timeout=1.0)
        except NoReply:
            return  # A answered with an error frame (e.g. while it stops); try again next life
        if reply['subject'] == 'error':
            return  # bounced by our route head: not connected (yet); it reconnects by itself
        self.answered += 1
        self.send('main', 'pong', {
            'answered': self.answered, 'pid': os.getpid(),
            'sent': {h: sent[h] for h in ('messageid', 'threadid', 'threadindex')},
            'reply': reply}, via='uds')

    @message_filter(route='uds', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'body': message['body'], 'route': message['route'],
                             'pid': os.getpid()})

    @message_filter(route='uds', subject='error')
    def error(self, message: dict) -> None:
        self.errors.append(message['body'])


class ClientApp(Application):
    def __init__(self, path: str) -> None:
        super().__init__(name='touch', ros=False, threads_timeout=5)
        self.path = path

    def build(self) -> None:
        self.add_process(UnixSocketClientHead, name='uds', path=self.path, remote=['echo'],
                         backoff=(0.02, 0.2))
        self.add_process(Panel, name='panel')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='B %(name)s %(levelname)s: %(message)s')
    sys.exit(ClientApp(sys.argv[1]).run())
