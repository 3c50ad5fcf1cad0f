"""Serial route heads for the tests and the bench; module level so process heads can import them."""

from __future__ import annotations

import threading

from polycephaly_ros import message_filter
from polycephaly_ros.routes.serial import SerialRouteHead


class ProbedSerial(SerialRouteHead):
    """The serial route head; 'probe' (from inside) answers its transport's state and counters."""

    @message_filter(route='internal', subject='probe')
    def probe(self, message: dict) -> None:
        transport = self.transport
        self.reply(message, {'connected': transport.connected, 'stats': dict(transport.stats),
                             'peer': transport.peer})


class ServingSerial(SerialRouteHead):
    """Own the serial line and answer 'ping' from it itself, in the thread that reads the device."""

    @message_filter(route='serial', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'body': message['body'], 'via': message.get('via'),
                             'thread': threading.get_ident() == self._thread_id})
