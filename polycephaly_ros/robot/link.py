"""How the two applications reach each other: the one place that knows the transports.

The service serves local clients on a Unix socket (a route head) and the ROS graph through the
ROS bridge (every head's inbox topic); the touchscreen reaches the service by one of the
two, chosen by ``touchscreen.transport`` (``uds`` or ``ros``).

The route heads are :class:`polycephaly_ros.routes.unix_socket.UnixSocketServerHead` and
``UnixSocketClientHead``, and, with ``service.mqtt.enabled``, the service's
:class:`polycephaly_ros.routes.mqtt.MqttRouteHead` for remote operators. Everything else in :mod:`polycephaly_ros.robot` only calls
:func:`service_heads`, :func:`client_heads` and :func:`via_headers`.
"""

from __future__ import annotations

import os

from .. import envelope as env
from ..head import Process
from ..routes.mqtt import MqttRouteHead
from ..routes.unix_socket import UnixSocketClientHead, UnixSocketServerHead
from . import config as cfg


def ros_bridge_ready(head: Process) -> bool:
    """Tell whether head's application publishes to outside names over ROS."""
    return head.node is not None and head.runtime.bus.ros_bridge is not None


def service_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the route heads of the service: (class, add_process keyword arguments)."""
    heads = mqtt_heads(config)
    uds = config[cfg.SERVICE]['uds']
    if not uds['enabled']:
        return heads
    path = cfg.socket_path(config)
    _prepare_directory(path)
    kwargs = {'name': uds['head'], 'mode': 'thread', 'restart': 'on_failure',
              'path': path, 'socket_mode': cfg.socket_mode(config),
              'max_frame': uds['max_frame']}
    group = config['robot']['socket_group']
    if group:
        kwargs['group'] = group
    return [(UnixSocketServerHead, kwargs), *heads]


def mqtt_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the service's MQTT route head, if service.mqtt.enabled."""
    mqtt = config[cfg.SERVICE]['mqtt']
    if not mqtt['enabled']:
        return []
    kwargs = {'name': mqtt['head'], 'mode': 'thread', 'restart': 'on_failure',
              'robot': cfg.mqtt_id(config), 'outbox_file': mqtt['outbox_file'] or None,
              'username': mqtt['username'] or None, 'password_file': mqtt['password_file'] or None,
              **{k: mqtt[k] for k in ('host', 'port', 'prefix', 'protocol', 'qos', 'keepalive',
                                      'session_expiry', 'outbox')}}
    if mqtt['ca_file']:
        kwargs['tls'] = {k: mqtt[k] or None for k in ('ca_file', 'cert_file', 'key_file')}
    return [(MqttRouteHead, kwargs)]


def client_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the route heads the touchscreen needs for its transport."""
    section = config[cfg.TOUCHSCREEN]
    if section['transport'] != 'uds':
        return []  # ros: the ROS bridge publishes to names that are no head of ours
    return [(UnixSocketClientHead, {'name': section['uds_head'], 'mode': 'thread',
                                    'restart': 'on_failure', 'path': cfg.socket_path(config),
                                    'backoff': (0.05, 0.25)})]


def via_headers(config: dict) -> dict[str, str]:
    """Return the headers that make an envelope to the service take the configured transport."""
    section = config[cfg.TOUCHSCREEN]
    if section['transport'] == 'uds':
        return {env.VIA: section['uds_head']}
    return {}


def _prepare_directory(path: str) -> None:
    """Make the socket's directory and the ones above it that do not exist, private (0700)."""
    directory = os.path.dirname(os.path.abspath(path))
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # (made meanwhile: the server checks whose it is)
            pass

