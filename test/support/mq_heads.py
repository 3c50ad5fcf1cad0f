"""Route heads for the POSIX message queue tests; module level so process heads can import them."""

from __future__ import annotations

import threading

from polycephaly_ros import message_filter
from polycephaly_ros.routes.mqueue import MqueueRouteHead


class ProbedMqueue(MqueueRouteHead):
    """The queue route head; 'stats' (from a head) answers its transport's counters."""

    @message_filter(route=None, subject='stats')
    def stats(self, message: dict) -> None:
        self.reply(message, dict(self.transport.stats))


class ServingMqueue(ProbedMqueue):
    """A queue route head that answers 'ping' itself, in the thread that reads the queue."""

    @message_filter(route='mqueue', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'body': message['body'], 'via': message.get('via'),
                             'thread': threading.get_ident() == self._thread_id})
