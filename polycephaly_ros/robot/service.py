"""The system service: an application whose heads look after the robot's computer.

Heads (each configured under ``service.heads`` in config/robot.yaml):

* ``service`` - the main head: answers requests from the touchscreen and anyone else;
* ``network`` - interfaces, default route, reachability, link up/down (:mod:`.network`);
* ``updates`` - maintenance actions in the downtime window (:mod:`.updates`);
* ``diagnostics`` - CPU, memory, disks, temperatures on /diagnostics (:mod:`.diagnostics`);
* ``uds_server`` - the Unix-socket route for local clients (:mod:`.link`); with ROS, every head
  also has its ROS inbox, so ROS nodes and the touchscreen reach it by name over the graph;
* ``dbus``, ``serial``, ``mqueue``, ``fifo`` - each with ``service.routes.<it>.enabled``, one
  more route to the same requests (:mod:`.link`): D-Bus (``busctl``, ``gdbus``), a serial
  line, POSIX message queues, and a pair of named pipes for shell scripts; the touchscreen
  can use the first three as its transport;
* ``mqtt`` - with ``service.mqtt.enabled``, the MQTT route for remote operators
  (``polycephaly-remote``): the same requests, and the status and diagnostics summary
  published retained every ``status_period`` seconds (``out/status``, ``out/health``).
* ``console`` - with ``service.console.enabled``, the mobile web console paired by a
  one-time code from the touchscreen's QR code (:mod:`.console`).

Requests the main head answers, from any route (the reply's subject is ``reply``, or
``error`` with body ``{"error": reason}``):

==================  ==============================  =============================================
subject             body                            answer
==================  ==============================  =============================================
``status``          -                               service, pid, uptime, heads, link, network,
                                                    updates and diagnostics summaries
``diagnostics``     -                               the latest diagnostics sample
``network``         -                               the latest network snapshot
``updates``         -                               maintenance state and decisions
``schedule``        ``{"action": name}``            the decision taken at once
``unschedule``      ``{"action": name}``            whether it was pending
``robot_idle``      ``{"idle": bool}``              the updates head's idle state
``heads``           -                               every head's state
``start_head``,     ``{"head": name}``              the head's state afterwards
``stop_head``,
``restart_head``
``subscribe``       -                               ok; ``link_changed`` envelopes follow
``unsubscribe``     -                               ok
``pair``            -                               ``{"url", "code", "expires", "ttl"}``: a new
                                                    one-time pairing code for the QR code (not
                                                    over MQTT: only the robot's screen gets one)
``devices``         -                               ``{"devices": [{"id", "name", "paired",
                                                    "last_seen"}]}``
``revoke_device``   ``{"id": device id}``           ``{"revoked": id}``
==================  ==============================  =============================================

Any other subject from outside is answered with an ``error`` listing these. Nothing makes the
main head wait: a request for another head's answer (``network``, ``updates``, ...) is passed
on and answered when that head answers (or after 3 s with an error), ``start_head`` once the
head was born, ``stop_head`` once it ended and ``restart_head`` once it was born again, while
every other request is answered.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import time
from typing import Any, Sequence

from .. import envelope as env
from ..application import Application
from ..errors import PolycephalyError
from ..filters import message_filter
from ..routes.mqtt import RETAIN
from . import cli, link
from . import config as cfg
from .common import RobotHead
from .console import ConsoleHead
from .diagnostics import DiagnosticsHead
from .network import NetworkHead
from .updates import UpdatesHead

HEAD_CLASSES = {'network': NetworkHead, 'updates': UpdatesHead, 'diagnostics': DiagnosticsHead}
RELAY_TIMEOUT = 3.0
#: The requests the service answers (see the module doc).
SUBJECTS = ('status', 'diagnostics', 'network', 'updates', 'schedule', 'unschedule',
            'robot_idle', 'heads', 'start_head', 'stop_head', 'restart_head', 'subscribe',
            'unsubscribe', 'pair', 'devices', 'revoke_device')
#: The routes a pairing code may be given on: the robot's own, those the touchscreen may use
#: (not MQTT, not remote; not the named pipes, whose peer is a shell script).
PAIRING_ROUTES = (env.INTERNAL, 'uds', 'ros', 'dbus', 'mqueue', 'serial')
REPORT_PERIOD = 10.0  # s between the service's logs of what it answered


class ServiceMain(RobotHead):
    """The service's main head: answers requests, keeps the heads' latest news."""

    def birth(self) -> None:
        app = self.application
        self.config = app.config
        if app.config_path:
            self.logger.info('configuration: %s', app.config_path)
        self.started = time.time()
        self.link: dict | None = None
        self.network: dict | None = None
        self.updates: dict | None = None
        self.diagnostics: dict | None = None
        self.subscribers: dict[str, dict] = {}
        self.relays: dict[str, tuple[dict, str]] = {}  # thread asked -> (request, head)
        self.add_filter(self._relayed, threadid=lambda thread: thread in self.relays)
        self.requests = 0
        self.recent: dict[str, int] = {}   # 'subject from sender' -> count, logged periodically
        self.reported = time.monotonic()
        self.mqtt = self.config[cfg.SERVICE]['mqtt']
        self.telemetry_due = time.monotonic()
        if self.node is not None:
            cfg.declare_parameters(self.node, self.config, cfg.SERVICE)
        self.logger.info('system service up (pid %d): heads %s; socket %s; ROS %s',
                         os.getpid(), ', '.join(app.head_names()),
                         cfg.socket_path(self.config)
                         if self.config[cfg.SERVICE]['uds']['enabled'] else 'off',
                         f'on (namespace {app.namespace or "/"})' if self.node else 'off')

    def life(self) -> None:
        self.mailman()
        now = time.monotonic()
        if self.mqtt['enabled'] and self.mqtt['status_period'] > 0 and now >= self.telemetry_due:
            self.telemetry_due = now + self.mqtt['status_period']
            self.publish_telemetry()
        if self.recent and now - self.reported >= REPORT_PERIOD:
            self.logger.info('answered in the last %.0f s: %s', now - self.reported,
                             ', '.join(f'{n} {k}' for k, n in sorted(self.recent.items())))
            self.recent.clear()
            self.reported = now

    def publish_telemetry(self) -> None:
        """Publish the status and the diagnostics summary, retained, on the MQTT route.

        They go to ``<prefix>/<robot>/out/status`` and ``.../out/health`` (not ``diagnostics``:
        an envelope to a name of one of our heads goes to that head, whatever its ``via``).
        """
        summary = self.summary()
        via = {env.VIA: self.mqtt['head'], RETAIN: True}
        self.tell('status', 'status', summary, **via)
        if summary['diagnostics'] is not None:
            self.tell('health', 'diagnostics', summary['diagnostics'], **via)

    def _count(self, message: dict) -> None:
        key = f'{message["subject"]} from {message.get("sender")} ({message.get("route")})'
        self.recent[key] = self.recent.get(key, 0) + 1
        self.requests += 1

    # -- news from our heads (internal route only) ---------------------------------------
    @message_filter(subject='link_changed')
    def on_link(self, message: dict) -> None:
        self.link = message['body']
        for name, headers in list(self.subscribers.items()):
            if not self.tell(name, 'link_changed', self.link, **headers):
                self.logger.info('subscriber %r is gone; dropped', name)
                del self.subscribers[name]

    @message_filter(subject='network_state')
    def on_network(self, message: dict) -> None:
        self.network = message['body']

    @message_filter(subject='diagnostics_sample')
    def on_diagnostics(self, message: dict) -> None:
        self.diagnostics = message['body']

    @message_filter(subject='updates_state')
    def on_updates(self, message: dict) -> None:
        self.updates = message['body']

    # -- requests (any route) ------------------------------------------------------------
    @message_filter(route=None, subject='status')
    def status(self, message: dict) -> None:
        self._count(message)
        self.respond(message, self.summary())

    def summary(self) -> dict:
        """Return the service's status."""
        net = self.network or {}
        diag = self.diagnostics
        uds = self.config[cfg.SERVICE]['uds']
        return {
            'service': self.name, 'pid': os.getpid(), 'host': socket.gethostname(),
            'uptime': round(time.time() - self.started, 3), 'time': time.time(),
            'namespace': self.application.namespace, 'ros': self.node is not None,
            'socket': cfg.socket_path(self.config) if uds['enabled'] else None,
            'heads': self.application.status(), 'requests': self.requests,
            'link': self.link,
            'network': {'default_route': net.get('default_route'),
                        'interfaces_up': sorted(n for n, i in net.get('interfaces', {}).items()
                                                if i['up']),
                        'hosts': net.get('hosts')} if net else None,
            'updates': {k: self.updates[k] for k in ('dry_run', 'window', 'in_window', 'idle',
                                                     'pending', 'actions')}
            if self.updates else None,
            'diagnostics': {'level': diag['level'], 'cpu': diag['cpu']['percent'],
                            'memory': diag['memory']['percent'],
                            'disks': {p: d['percent'] for p, d in diag['disks'].items()}}
            if diag else None,
        }

    @message_filter(route=None, subject='diagnostics')
    def diagnostics_request(self, message: dict) -> None:
        if self.diagnostics is not None:
            self._count(message)
            self.respond(message, self.diagnostics)
        else:
            self.relay(message, 'diagnostics', 'diagnostics')

    @message_filter(route=None, subject='network')
    def network_request(self, message: dict) -> None:
        self.relay(message, 'network', 'network')

    @message_filter(route=None, subject='(updates|schedule|unschedule|robot_idle)')
    def updates_request(self, message: dict) -> None:
        self.relay(message, 'updates', message['subject'])

    def relay(self, message: dict, head: str, subject: str) -> None:
        """Ask one of our heads and pass its answer on, without waiting for it here."""
        self._count(message)
        try:
            asked = self.send(head, subject, message.get('body'))
        except PolycephalyError as exc:
            self.refuse(message, f'{head}: {exc}')
            return
        thread = asked['threadid']
        self.relays[thread] = (message, head)
        self.runtime.inbox.call_later(RELAY_TIMEOUT, lambda: self._relay_late(thread))

    def _relayed(self, answer: dict) -> None:
        """Pass a head's answer on to whoever asked (internal route, the relayed thread)."""
        message, head = self.relays[answer['threadid']]
        if answer.get('sender') != head:
            return  # (someone else on that thread: not the answer)
        del self.relays[answer['threadid']]
        self.respond(message, answer.get('body'), subject=answer.get('subject', 'reply'))

    def _relay_late(self, thread: str) -> None:
        pending = self.relays.pop(thread, None)
        if pending is not None:
            message, head = pending
            self.refuse(message, f'{head}: no reply from {head!r} within {RELAY_TIMEOUT:g} s')

    @message_filter(route=None, subject='(pair|devices|revoke_device)')
    def console_request(self, message: dict) -> None:
        """Pass pair, devices and revoke_device on to the console head, or say why not."""
        console = self.config[cfg.SERVICE]['console']
        head = next((h for h in self.application.status() if h['name'] == console['head']),
                    None)
        if head is None:
            self._count(message)
            self.refuse(message, 'the mobile console is off (service.console.enabled) or '
                                 'cannot run here (aiohttp missing)')
        elif head['state'] != 'running':
            self._count(message)
            last = (head['last_error'] or '').strip().splitlines()[-1:]
            self.refuse(message, ': '.join([f'the mobile console is {head["state"]}', *last]))
        elif (message['subject'] == 'pair'
              and message.get('route', env.INTERNAL) not in PAIRING_ROUTES):
            self._count(message)
            self.refuse(message, f'pairing codes are given only to the robot\'s own screen, '
                                 f'not over {message.get("route")!r}')
        else:
            self.relay(message, console['head'], message['subject'])

    @message_filter(route=None, subject='heads')
    def heads(self, message: dict) -> None:
        self.respond(message, {'heads': self.application.status()})

    @message_filter(route=None, subject='(start|stop|restart)_head')
    def control(self, message: dict) -> None:
        self._count(message)
        body = message.get('body')
        name = body.get('head') if isinstance(body, dict) else body
        verb = message['subject'].split('_')[0]
        if not isinstance(name, str) or not name:
            self.refuse(message, f'{message["subject"]} needs {{"head": name}}')
            return
        name = name.lower()
        if verb != 'start' and name == message.get(env.VIA):
            self.refuse(message, f'cannot {verb} {name!r}: this request came through it, '
                                 'so the answer could not go back')
            return
        self.logger.warning('%s head %r, as %r asked', verb, name, message.get('sender'))

        def done(error: PolycephalyError | None = None) -> None:
            if error is not None:
                self.refuse(message, f'cannot {verb} {name!r}: '
                                     f'{error.args[0] if error.args else error}')
                return
            state = next((h for h in self.application.status() if h['name'] == name), None)
            self.respond(message, {'head': name, 'done': verb, 'state': state})

        try:
            # Answered once the head was born or ended: other requests are answered meanwhile.
            getattr(self.application, verb)(name, done)
        except PolycephalyError as exc:
            done(exc)

    @message_filter(route=None, subject='subscribe')
    def subscribe(self, message: dict) -> None:
        sender = message['sender']
        headers = {env.VIA: message[env.VIA]} if message.get(env.VIA) else {}
        self.subscribers[sender] = headers
        self.respond(message, {'subscribed': sender, 'link': self.link})

    @message_filter(route=None, subject='unsubscribe')
    def unsubscribe(self, message: dict) -> None:
        self.subscribers.pop(message['sender'], None)
        self.respond(message, {'unsubscribed': message['sender']})

    @message_filter(route=None)
    def unknown(self, message: dict) -> None:
        """Answer a request nobody takes with the subjects there are (catch-all)."""
        if message.get('route', env.INTERNAL) == env.INTERNAL or message['subject'] == 'error':
            self.logger.warning('no filter takes %r from %r', message['subject'],
                                message.get('sender'))
            return
        self._count(message)
        self.refuse(message, f'unknown subject {message["subject"]!r}; the service answers: '
                             f'{", ".join(SUBJECTS)}')


class ServiceApplication(Application):
    """The system service, built from a configuration (see polycephaly_ros.robot.config)."""

    def __init__(self, config: dict, config_path: str | None = None, **options: Any) -> None:
        section = config[cfg.SERVICE]
        opts = cfg.application_options(section, config['robot']['namespace'])
        opts.update(options)
        super().__init__(ServiceMain, name=cfg.SERVICE, **opts)
        self.config = config
        self.config_path = config_path  # (logged by the main head: through rclpy, with ROS)

    def build(self) -> None:
        heads = self.config[cfg.SERVICE]['heads']
        for name, klass in HEAD_CLASSES.items():
            s = heads[name]
            if not s['enabled']:
                continue
            frequency = s['rate'] if name == 'diagnostics' else s['frequency']
            self.add_process(klass, name=name, mode=s['mode'], frequency=frequency,
                             restart=s['restart'], settings=s, notify=self.main_name)
        console = self.config[cfg.SERVICE]['console']
        if console['enabled']:  # (before the routes: born before the socket takes requests)
            if importlib.util.find_spec('aiohttp') is None:
                logging.getLogger('polycephaly_ros.service').warning(
                    'service.console is on but aiohttp is not installed (python3-aiohttp): '
                    'no mobile console')
            else:
                self.add_process(ConsoleHead, name=console['head'], mode='thread',
                                 frequency=2.0, restart='on_failure', settings=console,
                                 namespace=self.namespace, service=self.main_name)
        for klass, kwargs in link.service_heads(self.config):
            self.add_process(klass, **kwargs)

    def head_names(self) -> list[str]:
        return list(self._specs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the system service until SIGINT/SIGTERM."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, ros = cli.split_ros_args(argv)
    args = cli.parser('The robot\'s system service (polycephaly_ros).').parse_args(ours)
    config, path = cli.load(args, ros, cfg.SERVICE)
    ros_args = cli.setup_logging(args.log_level, config, cfg.SERVICE, ros)
    sys.argv[1:] = ours  # rclpy must not see the ROS arguments: they are applied above
    return cli.run_application(ServiceApplication(config, config_path=path, ros_args=ros_args))


def cli_main() -> None:
    sys.exit(cli.run(main, None))


if __name__ == '__main__':
    cli_main()
