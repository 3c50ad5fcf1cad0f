"""The inbox topics: their names and their QoS, the same for every head and every ROS peer.

``<ns>/polycephaly/<name>/inbox`` carries ``polycephaly_ros/msg/Envelope``,
``<ns>/polycephaly/<name>/inbox_json`` one JSON envelope object as ``std_msgs/msg/String``.

QoS of the inbox topics: RELIABLE, KEEP_ALL, VOLATILE
-----------------------------------------------------
* RELIABLE: envelopes are mail; a lost one is a lost request or a lost reply.
* KEEP_ALL: with KEEP_LAST a reliable writer overwrites samples the reader has not
  acknowledged yet, so a burst faster than the reader silently drops envelopes (38-92 % lost in
  floods, measured). With KEEP_ALL the writer keeps every unacknowledged sample; when its
  history is full ``publish()`` blocks and then raises ``RCLError``. The sender retries until
  its send timeout and then raises :class:`QueueFull`: back-pressure, never silent loss. On the
  receiving side the head takes a message only when its bounded queue has room; the others
  wait in the subscription, which slows the reader and so the writer.
* VOLATILE: a late joiner must not receive old requests or replies meant for a previous run.
  (A peer publishing with TRANSIENT_LOCAL still matches; one subscribing with TRANSIENT_LOCAL
  or BEST_EFFORT publishers do not, and that is reported.)

Incompatible QoS from a peer is logged at ERROR level, naming the topic and the policy, by
event callbacks on both the subscriptions and the publishers.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

_log = logging.getLogger('polycephaly_ros.ros.topics')


def inbox_topic(name: str) -> str:
    """Return the (relative) typed inbox topic of a head or ROS peer name."""
    return f'polycephaly/{name}/inbox'


def inbox_json_topic(name: str) -> str:
    """Return the (relative) JSON inbox topic of a head name."""
    return f'polycephaly/{name}/inbox_json'


def inbox_qos() -> Any:
    """Return the QoS of inbox topics: RELIABLE, KEEP_ALL, VOLATILE (see the module docstring)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def report_incompatible(kind: str, topic: str) -> Callable[[Any], None]:
    """Return an event callback logging incompatible QoS on an inbox topic at ERROR."""
    def report(event: Any) -> None:
        from rclpy.qos import qos_policy_name_from_kind

        _log.error('incompatible QoS on %s %s: policy %s (seen %d time(s)); the inbox topics '
                   'need RELIABLE and VOLATILE', kind, topic,
                   qos_policy_name_from_kind(event.last_policy_kind), event.total_count)
    return report
