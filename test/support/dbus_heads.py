"""Heads for the D-Bus route's tests; module level so process heads can import them."""

from __future__ import annotations

from typing import Any

from polycephaly_ros import Process, message_filter
from polycephaly_ros.routes.dbus import DbusClientHead, DbusServerHead


class ProbedDbusServer(DbusServerHead):
    """The server head; 'connected' (body: seconds) answers once it owns its name, or not."""

    @message_filter(subject='connected')
    def wait_connected(self, message: dict) -> None:
        connected = self.server.link.connected_event.wait(message['body'])
        self.reply(message, {'connected': connected, 'stats': dict(self.server.stats)})


class ProbedDbusClient(DbusClientHead):
    """The client head; 'connected' (body: seconds) answers once it is connected, or not."""

    @message_filter(subject='connected')
    def wait_connected(self, message: dict) -> None:
        connected = self.client.link.connected_event.wait(message['body'])
        self.reply(message, {'connected': connected, 'stats': dict(self.client.stats)})


class Caller(Process):
    """On 'call_me' (any route): reply 'ok', then send 'hello' back to the asker by its route."""

    @message_filter(route=None, subject='call_me')
    def call_me(self, message: dict) -> None:
        self.reply(message, 'ok')
        self.send(message['sender'], 'hello', message['body'], via=message.get('via'))


class AnswersAll(Process):
    """Answer every envelope, from any route, with its subject and body."""

    def birth(self) -> None:
        self.add_filter(self.answer, route=None)

    def answer(self, message: dict) -> None:
        self.reply(message, {'subject': message['subject'], 'body': message['body']})


class ServingDbus(DbusServerHead):
    """A server head answering every envelope to it itself (the fuzz's shape).

    With kwargs['handed'] (a dict), it puts its transport there as 'server'.
    """

    def open_transport(self) -> None:
        super().open_transport()
        if 'handed' in self.kwargs:
            self.kwargs['handed']['server'] = self.server

    def birth(self) -> None:
        self.add_filter(self.answer, route='dbus')

    def answer(self, message: dict[str, Any]) -> None:
        self.reply(message, {'subject': message['subject'], 'body': message['body']})
