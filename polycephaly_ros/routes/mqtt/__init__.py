"""The MQTT route: envelopes as JSON messages through an MQTT broker (paho-mqtt 2.x).

The package, one concept a module:

* :mod:`.topics` -- the topic scheme: each head's inbox, presence, ``out/<name>``, and which
  reply topics are accepted.
* :mod:`.outbox` -- what was published and not yet acknowledged, bounded, in memory or in a
  file that outlives a restart.
* :mod:`.properties` -- MQTT 5 reply properties packed directly (paho's generic ones are slow).
* :mod:`.transport` -- :class:`MqttTransport`: one connection (persistent session,
  reconnects, presence and last will, TLS, username and password), inbound checks,
  duplicates dropped, replies to the request's reply topic.
* :mod:`.head` -- :class:`MqttRouteHead`, the route head (:mod:`polycephaly_ros.routes.base`)
  that owns a transport; the only module here that imports the head machinery.

Delivery is at least once on the wire (QoS 1) and exactly once into the application: the
receiver drops duplicates by message id. ``polycephaly-remote`` (:mod:`polycephaly_ros.robot.remote`)
is a command-line client built on the transport alone.
"""

from __future__ import annotations

from .head import RETAIN, MqttRouteHead
from .outbox import Outbox
from .topics import Topics
from .transport import MqttTransport

__all__ = ['RETAIN', 'MqttRouteHead', 'MqttTransport', 'Outbox', 'Topics']
