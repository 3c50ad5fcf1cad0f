"""Generic topic bridges: any ROS topic to a head as envelopes, and envelopes to any ROS topic.

A head opens bridges on its own node, usually in ``birth()``::

    from polycephaly_ros.ros.topic_bridge import TopicBridge

    class Robot(Process):
        def birth(self):
            self.bridge = TopicBridge(self, 'config/topic_bridges.yaml')  # or a dict

or runs :class:`BridgeHead`, a ready-made head taking its configuration from
``kwargs['config']`` (a dict or a YAML file path)::

    app.add_process(BridgeHead, name='bridge', config='config/topic_bridges.yaml')

The configuration (YAML, loaded with PyYAML, or the same structure as a dict)::

    inbound:                          # ROS topic -> envelopes to a head
      - topic: chatter                # relative names resolve in the application's namespace
        type: std_msgs/msg/String     # "pkg/msg/Type" of any installed message package
        to: main                      # head receiving the envelopes (default: the bridging head)
        subject: heard                # optional; default: the topic as written here
        qos: 10                       # optional: a depth, or {depth, history, reliability,
                                      #   durability}; default: reliable, keep last 10, volatile
    outbound:                         # envelopes received by the bridging head -> ROS topic
      - topic: cmd_vel
        type: geometry_msgs/msg/Twist
        subject: '(?i)drive|cmd_vel'  # regular expression matched against the whole subject
        route: null                   # optional: only envelopes that came on this route
                                      #   ("internal", "ros", ...); default null = any route

Inbound, every message becomes an envelope from the bridging head to ``to``: ``subject`` as
configured, ``body`` the message as a dict (:func:`polycephaly_ros.ros.convert.message_to_dict`:
nested messages as dicts, arrays and sequences as lists, bytes as integers), ``route``
``"ros"``, extra headers ``topic`` (the fully resolved topic name) and ``msgtype``. Filters
receive it with ``route='ros'`` (or ``route=None``). The bridging head's own thread takes the
messages (:class:`~polycephaly_ros.ros.subscriptions.HeadSubscriptions`; no executor).
While the receiving head's queue is full, messages wait in the subscription (its QoS decides
what is kept: the last 10 by default; with ``history: keep_all`` and ``reliability: reliable``
nothing is lost) and the bridging head goes on with its other work; it offers them again
when its own queue has room, or every :data:`FULL_RETRY` seconds for another head's.
Incompatible QoS from a publisher is logged as a warning naming the topic and the policy.

Outbound, the bridging head gets a filter on ``subject``; the body of each matching envelope
(a dict of fields, nested dicts for nested messages; ``null`` for all defaults; for a message
whose only field is ``data``, such as ``std_msgs/msg/String``, the bare value too) is turned
into the message (:func:`polycephaly_ros.ros.convert.dict_to_message`) and published. An unknown
field or a value of the wrong type is not published: a warning is logged and, when the
envelope has a sender other than the bridging head, an ``error`` reply (body ``{"error":
reason}``) is sent on its thread. Nothing is sent back on success.

A message package that is not installed, a malformed entry or a bad regular expression raise
:class:`~polycephaly_ros.errors.ConfigurationError` when the bridge is created.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .. import envelope as env
from ..errors import ConfigurationError, PolycephalyError, QueueFull
from ..head import Process
from . import convert
from .subscriptions import HeadSubscriptions

_log = logging.getLogger('polycephaly_ros.ros.topic_bridge')
#: Seconds between looks at another head's full queue for a message waiting for room.
FULL_RETRY = 0.01
_INBOUND_KEYS = {'topic', 'type', 'to', 'subject', 'qos'}
_OUTBOUND_KEYS = {'topic', 'type', 'subject', 'qos', 'route'}


def load_config(config: Mapping[str, Any] | str | os.PathLike) -> dict[str, list[dict]]:
    """Return the checked bridge configuration from a dict or a YAML file path."""
    if isinstance(config, (str, os.PathLike)):
        import yaml

        try:
            with open(config, encoding='utf-8') as f:
                config = yaml.safe_load(f) or {}
        except OSError as exc:
            raise ConfigurationError(f'cannot read topic bridge configuration: {exc}') from None
        except yaml.YAMLError as exc:
            raise ConfigurationError(f'topic bridge configuration is not valid YAML: {exc}') \
                from None
    if not isinstance(config, Mapping):
        raise ConfigurationError('topic bridge configuration must be a mapping with "inbound" '
                                 f'and/or "outbound" lists, not {type(config).__name__}')
    unknown = sorted(set(config) - {'inbound', 'outbound'})
    if unknown:
        raise ConfigurationError(f'topic bridge configuration: unknown key(s) {unknown}; '
                                 'expected "inbound" and/or "outbound"')
    checked: dict[str, list[dict]] = {}
    for direction, allowed, required in (('inbound', _INBOUND_KEYS, ('topic', 'type')),
                                         ('outbound', _OUTBOUND_KEYS, ('topic', 'type', 'subject'))):
        entries = config.get(direction) or []
        if not isinstance(entries, list):
            raise ConfigurationError(f'topic bridge {direction!r} must be a list of entries')
        checked[direction] = []
        for i, entry in enumerate(entries):
            where = f'topic bridge {direction}[{i}]'
            if not isinstance(entry, Mapping):
                raise ConfigurationError(f'{where} must be a mapping, not {entry!r}')
            extra = sorted(set(entry) - allowed)
            if extra:
                raise ConfigurationError(f'{where}: unknown key(s) {extra}; allowed: '
                                         f'{sorted(allowed)}')
            for key in required:
                if not isinstance(entry.get(key), str) or not entry[key]:
                    raise ConfigurationError(f'{where}: {key!r} is required (text)')
            checked[direction].append(dict(entry))
    return checked


def make_qos(spec: Any, where: str) -> Any:
    """Return a QoSProfile from a depth or a {depth, history, reliability, durability} mapping."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    if spec is None:
        spec = 10
    if isinstance(spec, int) and not isinstance(spec, bool) and spec > 0:
        return QoSProfile(depth=spec)
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f'{where}: qos must be a depth or a mapping, not {spec!r}')
    policies = {'history': HistoryPolicy, 'reliability': ReliabilityPolicy,
                'durability': DurabilityPolicy}
    kwargs: dict[str, Any] = {'depth': spec.get('depth', 10)}
    for key, value in spec.items():
        if key == 'depth':
            continue
        if key not in policies:
            raise ConfigurationError(f'{where}: unknown qos key {key!r}')
        try:
            kwargs[key] = policies[key][str(value).upper()]
        except KeyError:
            raise ConfigurationError(
                f'{where}: qos {key} must be one of '
                f'{[p.name.lower() for p in policies[key]]}, not {value!r}') from None
    return QoSProfile(**kwargs)


@dataclass
class Inbound:
    topic: str
    subject: str
    to: str
    msgtype: str
    subscription: Any


@dataclass
class Outbound:
    topic: str
    pattern: str
    msgtype: type
    publisher: Any
    filter: Any


class TopicBridge:
    """The topic bridges of one head, on its node; create it in the head's thread.

    It is closed by close(), or else by the head's runtime when the head ends (after death()).
    """

    def __init__(self, head: Process, config: Mapping[str, Any] | str | os.PathLike) -> None:
        if head.node is None:
            raise ConfigurationError(f'head {head.name!r} has no ROS node (the application runs '
                                     'without ROS), so it cannot bridge topics')
        self.head = head
        self.runtime = head.runtime
        self._subscriptions: HeadSubscriptions | None = None
        self.inbound: list[Inbound] = []
        self.outbound: list[Outbound] = []
        checked = load_config(config)
        try:
            for i, entry in enumerate(checked['inbound']):
                self._add_inbound(entry, f'topic bridge inbound[{i}] ({entry["topic"]})')
            for i, entry in enumerate(checked['outbound']):
                self._add_outbound(entry, f'topic bridge outbound[{i}] ({entry["topic"]})')
        except BaseException:
            self.close()
            raise
        self.runtime.own(self.close, 'a topic bridge')

    @staticmethod
    def _type(entry: Mapping[str, Any], where: str) -> type:
        try:
            return convert.import_message_type(entry['type'])
        except ConfigurationError as exc:
            raise ConfigurationError(f'{where}: {exc}') from None

    def _add_inbound(self, entry: Mapping[str, Any], where: str) -> None:
        head, runtime = self.head, self.runtime
        cls = self._type(entry, where)
        to = env.normalize_name(entry.get('to') or head.name)
        if not runtime.knows(to):
            raise ConfigurationError(f'{where}: no head named {to!r} in this application')
        subject = entry.get('subject') or entry['topic']
        if not isinstance(subject, str) or env.is_control(subject, runtime.poison_pill):
            raise ConfigurationError(f'{where}: subject {subject!r} is not allowed')
        msgtype = entry['type']
        topic = head.node.resolve_topic_name(entry['topic'])
        to_self = to == head.name

        def on_message(msg: Any) -> bool:  # in the bridging head's thread
            envelope = env.make(head.name, to, subject, convert.message_to_dict(msg),
                                {'topic': topic, 'msgtype': msgtype})
            envelope['route'] = convert.ROUTE
            try:
                runtime.deliver(envelope, timeout=0)
            except QueueFull:
                # Wait in the subscription until the queue has room: this head's own queue
                # says when; another head's is looked at again every FULL_RETRY seconds.
                if not to_self:
                    self._subscriptions.look_again_later(FULL_RETRY)
                return False
            except PolycephalyError as exc:
                _log.warning('dropped a message from %s: head %r cannot take it: %s',
                             topic, to, exc)
            return True

        def incompatible(event: Any) -> None:
            from rclpy.qos import qos_policy_name_from_kind

            _log.warning('a publisher of %s offers incompatible QoS (policy %s): its messages '
                         'are not received', topic,
                         qos_policy_name_from_kind(event.last_policy_kind))

        if self._subscriptions is None:
            self._subscriptions = HeadSubscriptions(runtime.inbox)
        subscription = self._subscriptions.subscribe(
            head.node, cls, entry['topic'], make_qos(entry.get('qos'), where), on_message,
            incompatible)
        self.inbound.append(Inbound(subscription.topic_name, subject, to, msgtype, subscription))

    def _add_outbound(self, entry: Mapping[str, Any], where: str) -> None:
        head = self.head
        cls = self._type(entry, where)
        pattern = entry['subject']
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigurationError(f'{where}: bad subject regular expression: {exc}') from None
        publisher = head.node.create_publisher(cls, entry['topic'], make_qos(entry.get('qos'),
                                                                             where))
        topic = publisher.topic_name
        fields = list(cls.get_fields_and_field_types())
        bare = fields == ['data']

        def on_envelope(message: dict) -> None:
            body = message.get('body')
            if body is None:
                body = {}
            elif bare and not isinstance(body, Mapping):
                body = {'data': body}
            try:
                msg = convert.dict_to_message(body, cls)
            except ValueError as exc:
                reason = f'not published on {topic}: {exc}'
                _log.warning('envelope %r from %r %s', message.get('subject'),
                             message.get('sender'), reason)
                if message.get('sender') not in (None, head.name):
                    try:
                        head.reply(message, {'error': reason}, subject='error')
                    except Exception as bad:  # noqa: BLE001 - the warning above is what counts
                        _log.warning('could not tell %r: %s', message.get('sender'), bad)
                return
            publisher.publish(msg)

        f = head.add_filter(on_envelope, route=entry.get('route'), subject=pattern)
        self.outbound.append(Outbound(topic, pattern, cls, publisher, f))

    def close(self) -> None:
        """Remove the bridge's filters, subscriptions and publishers."""
        node = self.head.node
        if self._subscriptions is not None:
            left: dict[str, int] = {}

            def leftover(topic: str, _msg: Any) -> None:
                left[topic] = left.get(topic, 0) + 1

            self._subscriptions.close(node, leftover)
            self._subscriptions = None
            for topic, count in left.items():
                _log.warning('%d message(s) from %s were not delivered: the bridge closed '
                             'while they waited', count, topic)
        for outbound in self.outbound:
            self.head.remove_filter(outbound.filter)
            node.destroy_publisher(outbound.publisher)
        self.inbound, self.outbound = [], []


class BridgeHead(Process):
    """A head that only bridges topics, configured by ``kwargs['config']`` (dict or YAML path)."""

    def birth(self) -> None:
        self.bridge = TopicBridge(self, self.kwargs['config'])

    def death(self) -> None:
        bridge = getattr(self, 'bridge', None)
        if bridge is not None:
            bridge.close()
