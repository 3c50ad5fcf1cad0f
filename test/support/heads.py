"""Heads used by the tests; module level so process heads can import them."""

from __future__ import annotations

import os
import signal
import threading
import time

from polycephaly_ros import Process, message_filter
from polycephaly_ros.ros import host as rclpy_host
from polycephaly_ros.routes.mqtt import MqttRouteHead
from polycephaly_ros.routes.unix_socket import UnixSocketServerHead


def note(head: Process, event: str) -> None:
    """Append "<name> <event> <pid>" to the journal file given in the head's kwargs."""
    path = head.kwargs.get('journal')
    if path:
        with open(path, 'a') as f:
            f.write(f'{head.name} {event} {os.getpid()}\n')


class SaysReady(Process):
    """A main head that prints 'ready' once every head runs (for programs a test reads)."""

    def birth(self) -> None:
        self.said = False

    def life(self) -> None:
        if not self.said and all(h['state'] == 'running' for h in self.application.status()):
            print('ready', flush=True)
            self.said = True
        self.mailman()


class Echo(Process):
    """Answer requests: ping, whoami, crash, brake, quit, publish."""

    def birth(self) -> None:
        note(self, 'birth')
        self.publisher = None

    def death(self) -> None:
        note(self, 'death')

    @message_filter(subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, message['body'])

    @message_filter(subject='whoami')
    def whoami(self, message: dict) -> None:
        self.reply(message, {
            'pid': os.getpid(), 'thread': threading.current_thread().name,
            'node': self.node.get_fully_qualified_name() if self.node else None,
            'forks_after_init': rclpy_host.forks_after_init(),
            'args': self.args, 'kwargs': self.kwargs, 'frequency': self.frequency()})

    @message_filter(subject='size')
    def size(self, message: dict) -> None:
        self.reply(message, len(message['body']))

    @message_filter(subject='crash')
    def crash(self, message: dict) -> None:
        raise RuntimeError(f'asked to crash: {message["body"]}')

    @message_filter(subject='brake')
    def brake(self, message: dict) -> None:
        self.ebrake(message['body'])

    @message_filter(subject='quit')
    def quit(self, message: dict) -> None:
        self.die()

    @message_filter(subject='publish')
    def publish(self, message: dict) -> None:
        from std_msgs.msg import String

        if self.publisher is None:
            self.publisher = self.node.create_publisher(String, 'chatter', 10)
        self.publisher.publish(String(data=message['body']))
        self.reply(message)


class ServicedEcho(Echo):
    """An Echo whose node offers the per-node services (parameters, type description)."""

    node_services = True


class Sink(Process):
    """Collect the bodies of 'item' envelopes; answer 'report' with a summary."""

    def birth(self) -> None:
        self.items: list = []
        self.add_filter(self.items_in, subject='item')
        self.add_filter(self.report, subject='report')

    def items_in(self, message: dict) -> None:
        self.items.append(message['body'])

    def report(self, message: dict) -> None:
        detail = message['body'] == 'all'
        self.reply(message, {
            'count': len(self.items), 'unique': len(set(map(repr, self.items))),
            'in_order': self.items == sorted(self.items) if not detail else None,
            'items': self.items if detail else None})


class Burst(Process):
    """On 'go', send body['count'] numbered items to body['to'], then reply."""

    @message_filter(subject='go')
    def go(self, message: dict) -> None:
        for i in range(message['body']['count']):
            self.send(message['body']['to'], 'item', i)
        self.reply(message, 'sent')


class Blocked(Process):
    """A thread head whose life() waits on the Event kwargs['gate'], then handles its mail.

    It tells main how many envelopes each mailman() call handled ('batch').
    """

    def birth(self) -> None:
        self.items: list = []
        self.add_filter(lambda m: self.items.append(m['body']), subject='item')
        self.add_filter(lambda m: self.reply(m, {'items': self.items}),
                        subject='report')

    def life(self) -> None:
        self.kwargs['gate'].wait(30)
        handled = self.mailman()
        if handled:
            self.send('main', 'batch', handled)


class CrashInLife(Process):
    """Raise from every life()."""

    def birth(self) -> None:
        note(self, 'birth')

    def life(self) -> None:
        raise RuntimeError('life failed on purpose')

    def death(self) -> None:
        note(self, 'death')


class SlowDeath(Process):
    """Take kwargs['seconds'] to die; with kwargs['ignore_term'], ignore SIGTERM too."""

    def birth(self) -> None:
        if self.kwargs.get('ignore_term'):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note(self, 'birth')

    def death(self) -> None:
        note(self, 'dying')
        if self.kwargs.get('say'):
            print(f'{self.name} dying', flush=True)
        time.sleep(self.kwargs['seconds'])  # the slowness under test, not synchronisation
        note(self, 'death')


class SaysBorn(Process):
    """Log 'born in process <pid>' at WARNING in birth()."""

    def birth(self) -> None:
        self.logger.warning('born in process %d', os.getpid())


class BrakesAtBirth(Process):
    """Pull the emergency brake in birth(), giving kwargs['reason']."""

    def birth(self) -> None:
        self.ebrake(self.kwargs['reason'])


class LingersAfterDeath(Process):
    """Leave a non-daemon thread behind in death(): its process cannot end after its report."""

    def death(self) -> None:
        threading.Thread(target=threading.Event().wait, name='lingering').start()


class Worker(Process):
    """Do kwargs['steps'] lives of work, tell main 'finished', then end on its own."""

    def birth(self) -> None:
        self.done = 0

    def life(self) -> None:
        self.done += 1
        if self.done >= self.kwargs['steps']:
            self.send('main', 'finished', self.done)
            self.die()


class Stopper(Process):
    """Send the poison pill kwargs['pill'] to main."""

    def life(self) -> None:
        self.send('main', self.kwargs['pill'])
        self.die()


class RouteEcho(Process):
    """Answer 'ping' on any route (internal, 'uds', ...) with the body and what it arrived by."""

    @message_filter(route=None, subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'body': message['body'], 'route': message.get('route', 'internal'),
                             'via': message.get('via'), 'pid': os.getpid()})


class ServingEcho(UnixSocketServerHead):
    """Serve the Unix socket and answer 'ping' itself, in the thread that reads the socket."""

    @message_filter(route='uds', subject='ping')
    def ping(self, message: dict) -> None:
        self.reply(message, {'body': message['body'], 'via': message.get('via'),
                             'thread': threading.get_ident() == self._thread_id})


class BusyServer(UnixSocketServerHead):
    """A server head whose own thread waits in life() on the Event kwargs['gate']."""

    def life(self) -> None:
        self.kwargs['gate'].wait(30)
        self.mailman()


class ProbedMqtt(MqttRouteHead):
    """The MQTT route head; 'connected' (body: seconds) answers once it is connected, or not."""

    @message_filter(subject='connected')
    def wait_connected(self, message: dict) -> None:
        connected = self.transport.connected_event.wait(message['body'])
        self.reply(message, {'connected': connected, 'stats': dict(self.transport.stats)})


class GatedEcho(Process):
    """Answer 'ping' on any route once the Event kwargs['gate'] is set (mail queues meanwhile)."""

    @message_filter(route=None, subject='ping')
    def ping(self, message: dict) -> None:
        self.kwargs['gate'].wait(30)
        self.reply(message, message['body'])


class TimedEcho(Echo):
    """An Echo that notes "birth <time.time()>" in kwargs['births'] at each birth."""

    def birth(self) -> None:
        super().birth()
        with open(self.kwargs['births'], 'a') as f:
            f.write(f'birth {time.time()}\n')


class Freezer(Process):
    """On 'freeze', block in the filter until the Event kwargs['thaw'] is set: a stuck head."""

    @message_filter(subject='freeze')
    def freeze(self, message: dict) -> None:
        self.kwargs['thaw'].wait(30)


class SeesTheNextHead(Process):
    """A head whose birth() fails unless kwargs['next']'s node comes up while it runs."""

    def birth(self) -> None:
        name = f"{self.node.get_namespace().rstrip('/')}/{self.kwargs['next']}"
        if not self.node.wait_for_node(name, 20.0):
            raise RuntimeError(f'{name} did not come up during the birth() of {self.name}')
        note(self, 'birth')


class Managed(Process):
    """A managed node: tells the main head of its birth() and death(); 'ping' answers how
    many life() rounds it ran; 'crash' makes its next life() raise."""

    lifecycle = True

    def birth(self) -> None:
        self.lives = 0
        self.crash = False
        self.send(self.runtime.main, 'managed', 'birth')

    def life(self) -> None:
        self.lives += 1
        if self.crash:
            raise RuntimeError('crashed on purpose')
        self.mailman()

    def death(self) -> None:
        self.send(self.runtime.main, 'managed', 'death')

    @message_filter(subject='ping')
    def on_ping(self, message: dict) -> None:
        self.reply(message, self.lives)

    @message_filter(subject='crash')
    def on_crash(self, message: dict) -> None:
        self.crash = True


class ManagedActive(Managed):
    """A managed node the supervisor drives to active once ready (and after restarts)."""

    lifecycle = 'active'
