"""How the two applications reach each other: the one place that knows the transports.

The service serves local clients on a Unix socket (a route head) and the ROS graph through the
ROS bridge (every head's inbox topic, issue 3); the touchscreen reaches the service by one of the
two, chosen by ``touchscreen.transport`` (``uds`` or ``ros``).

Route heads: :class:`polycephaly_ros.routes.unix_socket.UnixSocketServerHead` /
``UnixSocketClientHead`` when the installed polycephaly_ros has them; otherwise the small
stand-ins below, built on the same transports (``UnixSocketServer`` / ``UnixSocketClient``) and
following the same rules (``via`` names the route head; an envelope the client cannot send bounces
back at once as an ``error`` reply from the recipient's name). Everything else in
:mod:`polycephaly_ros.robot` only calls :func:`service_heads`, :func:`client_heads` and
:func:`via_headers`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .. import envelope as env
from ..errors import PolycephalyError, RecipientUnavailable, UnknownRecipient
from ..head import Process
from ..routes.unix_socket import MAX_FRAME, UnixSocketClient, UnixSocketServer
from . import config as cfg

_log = logging.getLogger('polycephaly_ros.robot.link')
ERROR_SUBJECT = 'error'


def _route_heads() -> tuple[type, type, bool]:
    """Return (server head class, client head class, whether they are the library's own)."""
    try:
        from ..routes.unix_socket import UnixSocketClientHead, UnixSocketServerHead
    except ImportError:
        return _InterimServerHead, _InterimClientHead, False
    return UnixSocketServerHead, UnixSocketClientHead, True


def library_route_heads() -> bool:
    """Tell whether the library's own Unix-socket route heads are installed (issue 3)."""
    return _route_heads()[2]


def ros_bridge_ready(head: Process) -> bool:
    """Tell whether head's application publishes to outside names over ROS (issue 3)."""
    return head.node is not None and getattr(head._bus, 'external', None) is not None


def service_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the route heads of the service: (class, add_process keyword arguments)."""
    uds = config[cfg.SERVICE]['uds']
    if not uds['enabled']:
        return []
    path = cfg.socket_path(config)
    _prepare_directory(path)
    server, _client, _own = _route_heads()
    kwargs = {'name': uds['head'], 'mode': 'thread', 'restart': 'on_failure',
              'path': path, 'socket_mode': cfg.socket_mode(config),
              'max_frame': uds['max_frame']}
    group = config['robot']['socket_group']
    if group:
        kwargs['group'] = group
    return [(server, kwargs)]


def client_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the route heads the touchscreen needs for its transport."""
    section = config[cfg.TOUCHSCREEN]
    if section['transport'] != 'uds':
        return []  # ros: the ROS bridge publishes to names that are no head of ours
    _server, client, _own = _route_heads()
    return [(client, {'name': section['uds_head'], 'mode': 'thread', 'restart': 'on_failure',
                      'path': cfg.socket_path(config), 'backoff': (0.05, 0.25)})]


def via_headers(config: dict) -> dict[str, str]:
    """Return the headers that make an envelope to the service take the configured transport."""
    section = config[cfg.TOUCHSCREEN]
    if section['transport'] == 'uds':
        return {env.VIA: section['uds_head']}
    return {}


def _prepare_directory(path: str) -> None:
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)


# -- stand-ins until the library's route heads are installed ----------------------------------
class _InterimRouteHead(Process):
    """Forward what arrives in this head's inbox out; deliver what comes in to the heads."""

    def birth(self) -> None:
        self.add_filter(self._outbound, route=None)  # catch-all: everything here goes out

    def deliver(self, envelope: dict) -> None:
        if envelope['recipient'] not in self._bus.directory:
            raise UnknownRecipient(f'no head named {envelope["recipient"]!r} here')
        envelope[env.VIA] = self._name
        self._bus.post(envelope)

    def _outbound(self, envelope: dict) -> None:
        out = {k: v for k, v in envelope.items() if k not in (env.VIA, 'route')}
        try:
            self.transmit(out)
        except PolycephalyError as exc:
            sender = envelope.get('sender')
            self._logger.error('could not send %r from %r to %r: %s', envelope.get('subject'),
                               sender, envelope.get('recipient'), exc)
            if sender in self._bus.directory and envelope.get('subject') != ERROR_SUBJECT:
                self._bus.post(env.answer(envelope, envelope['recipient'], {'error': str(exc)},
                                          ERROR_SUBJECT, {'bounced_by': self._name}))

    def transmit(self, envelope: dict) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _InterimServerHead(_InterimRouteHead):
    def birth(self) -> None:
        super().birth()
        kw = self.kwargs
        self.server = UnixSocketServer(kw['path'], lambda e, _c: self.deliver(e), route='uds',
                                       mode=kw.get('socket_mode', 0o600), group=kw.get('group'),
                                       max_frame=kw.get('max_frame', MAX_FRAME),
                                       poison_pill=self._poison_pill)
        self.server.start()

    def transmit(self, envelope: dict) -> None:
        self.server.send_to_name(envelope['recipient'], envelope)

    def death(self) -> None:
        self.server.stop()


class _InterimClientHead(_InterimRouteHead):
    def birth(self) -> None:
        super().birth()
        kw = self.kwargs
        self.client = UnixSocketClient(kw['path'], self._inbound, name=self.name,
                                       backoff=tuple(kw.get('backoff', (0.05, 2.0))),
                                       route='uds', poison_pill=self._poison_pill)
        self.client.start()

    def _inbound(self, envelope: dict) -> None:
        try:
            self.deliver(envelope)
        except PolycephalyError as exc:
            _log.warning('dropped %r from the server: %s', envelope.get('subject'), exc)

    def transmit(self, envelope: dict) -> None:
        if not self.client.connected:
            raise RecipientUnavailable(f'not connected to {self.client.path}')
        self.client.send(envelope)

    def death(self) -> None:
        self.client.close()
