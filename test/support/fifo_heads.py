"""Route heads for the named pipe tests; module level so process heads can import them."""

from __future__ import annotations

import threading

from polycephaly_ros import message_filter
from polycephaly_ros.routes.fifo import FifoRouteHead


class ProbedFifo(FifoRouteHead):
    """The pipe route head; 'stats' (from a head) answers its transport's counters."""

    @message_filter(route=None, subject='stats')
    def stats(self, message: dict) -> None:
        self.reply(message, dict(self.transport.stats))


class ServingFifo(ProbedFifo):
    """A pipe route head that answers 'ping' itself, in the thread that reads ``in``."""

    @message_filter(route='fifo', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'body': message['body'], 'via': message.get('via'),
                             'thread': threading.get_ident() == self._thread_id})
