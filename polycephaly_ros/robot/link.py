"""How the two applications reach each other: the one place that knows the transports.

The service serves local clients on a Unix socket (a route head) and the ROS graph through the
ROS bridge (every head's inbox topic), and, each when enabled under ``service.routes``, on
D-Bus, a serial line, POSIX message queues and named pipes. The touchscreen reaches the
service by one of them, chosen by ``touchscreen.transport``: ``uds``, ``ros``, ``dbus``,
``mqueue`` or ``serial`` (the route enabled on the service's side). Named pipes are not a
touchscreen transport: a FIFO pair has one peer, meant for shell scripts.

The route heads are :class:`polycephaly_ros.routes.unix_socket.UnixSocketServerHead` and
``UnixSocketClientHead``; :class:`polycephaly_ros.routes.dbus.DbusServerHead` and
``DbusClientHead``; :class:`polycephaly_ros.routes.serial.SerialRouteHead` and
:class:`polycephaly_ros.routes.mqueue.MqueueRouteHead` on both sides (the two queues name each
other: :func:`polycephaly_ros.robot.config.mqueue_names`);
:class:`polycephaly_ros.routes.fifo.FifoRouteHead` on the service's; and, with
``service.mqtt.enabled``, the service's :class:`polycephaly_ros.routes.mqtt.MqttRouteHead` for
remote operators. The service's main head answers on any of them (its filters take any
route). Everything else in :mod:`polycephaly_ros.robot` only calls :func:`service_heads`,
:func:`client_heads` and :func:`via_headers`.
"""

from __future__ import annotations

import os

from .. import envelope as env
from ..head import Process
from ..errors import ConfigurationError
from ..routes.dbus import DbusClientHead, DbusServerHead
from ..routes.fifo import FifoRouteHead
from ..routes.mqtt import MqttRouteHead
from ..routes.mqueue import MqueueRouteHead
from ..routes.serial import SerialRouteHead
from ..routes.unix_socket import UnixSocketClientHead, UnixSocketServerHead
from . import config as cfg


def ros_bridge_ready(head: Process) -> bool:
    """Tell whether head's application publishes to outside names over ROS."""
    return head.node is not None and head.runtime.bus.ros_bridge is not None


def service_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the route heads of the service: (class, add_process keyword arguments)."""
    heads = [*mqtt_heads(config), *route_heads(config)]
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


def route_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the service's route heads enabled under service.routes (dbus, serial, ...)."""
    routes = config[cfg.SERVICE]['routes']
    heads: list[tuple[type, dict]] = []

    def add(klass: type, route: str, **kwargs: object) -> None:
        heads.append((klass, {'name': routes[route]['head'], 'mode': 'thread',
                              'restart': 'on_failure', **kwargs}))

    if routes['dbus']['enabled']:
        add(DbusServerHead, 'dbus', **_dbus(config))
    if routes['serial']['enabled']:
        add(SerialRouteHead, 'serial', **_serial(config, routes['serial']['path'],
                                                 'service.routes.serial.path'))
    if routes['mqueue']['enabled']:
        ours, touchscreen = cfg.mqueue_names(config)
        add(MqueueRouteHead, 'mqueue', queue=ours,
            peer_queue=routes['mqueue']['peer_queue'] or touchscreen)
    if routes['fifo']['enabled']:
        directory = cfg.fifo_directory(config)
        _prepare_directory(os.path.join(directory, 'in'))
        add(FifoRouteHead, 'fifo', directory=directory)
    return heads


def _dbus(config: dict) -> dict:
    dbus = config[cfg.SERVICE]['routes']['dbus']
    return {'bus': dbus['bus'], 'bus_name': dbus['bus_name']}


def _serial(config: dict, path: str, where: str) -> dict:
    if not path:
        raise ConfigurationError(f'{where} is empty: give the serial device (its path)')
    serial = config[cfg.SERVICE]['routes']['serial']
    return {'path': os.path.expanduser(path), 'baudrate': serial['baudrate'],
            'framing': serial['framing']}


def client_heads(config: dict) -> list[tuple[type, dict]]:
    """Return the route heads the touchscreen needs for its transport.

    ``ros`` needs none (the ROS bridge publishes to names that are no head of ours); each
    other transport is one route head, named by ``touchscreen.<transport>_head``, reached by
    :func:`via_headers`. Its peer is the service's route head of the same kind.
    """
    section = config[cfg.TOUCHSCREEN]
    transport = section['transport']
    common = {'mode': 'thread', 'restart': 'on_failure', 'backoff': (0.05, 0.25)}
    if transport == 'uds':
        return [(UnixSocketClientHead, {'name': section['uds_head'], **common,
                                        'path': cfg.socket_path(config)})]
    if transport == 'dbus':
        return [(DbusClientHead, {'name': section['dbus_head'], **common, **_dbus(config)})]
    if transport == 'serial':
        return [(SerialRouteHead, {'name': section['serial_head'], **common,
                                   **_serial(config, section['serial_path'],
                                             'touchscreen.serial_path')})]
    if transport == 'mqueue':
        service, ours = cfg.mqueue_names(config)
        common.pop('backoff')  # (a queue is opened, not connected to)
        return [(MqueueRouteHead, {'name': section['mqueue_head'], **common,
                                   'queue': ours, 'peer_queue': service})]
    return []


def via_headers(config: dict) -> dict[str, str]:
    """Return the headers that make an envelope to the service take the configured transport."""
    section = config[cfg.TOUCHSCREEN]
    transport = section['transport']
    if transport == 'ros':
        return {}
    return {env.VIA: section[f'{transport}_head']}


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

