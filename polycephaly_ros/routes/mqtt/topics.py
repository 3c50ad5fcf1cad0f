"""The MQTT route's topic scheme: where envelopes to, from and about one application go.

Every application on the broker has an id (``robot``) under a shared ``prefix``
(``polycephaly`` by default):

=====================================  ==========================================================
``<prefix>/<robot>/<head>/inbox``      envelopes to head ``<head>`` of that application (it
                                       subscribes ``<prefix>/<robot>/+/inbox``, QoS 1)
``<prefix>/<robot>/status``            presence, retained: ``online``, or ``offline`` (also its
                                       last will, so a crash or a lost link shows ``offline``)
``<prefix>/<robot>/out/<name>``        what the application sends to ``<name>`` when no reply
                                       topic is known (a reply to a request that named none;
                                       telemetry such as ``out/status``, retained)
a request's response topic             its replies: MQTT 5's response topic, with the request's
                                       correlation data echoed; in MQTT 3.1.1 the envelope's own
                                       ``reply_to`` header
=====================================  ==========================================================

Head names are lower-case ``[a-z][a-z0-9_]*``, so they never hold MQTT's wildcards or
separators. Pure functions and one small class; no threads.
"""

from __future__ import annotations

import re

from ...errors import ConfigurationError, EnvelopeError

#: The longest reply topic accepted from outside, in bytes.
MAX_REPLY_TOPIC = 512
_NAME = re.compile(r'[a-z][a-z0-9_]*')
_ID = re.compile(r'[A-Za-z0-9_.-]+')


class Topics:
    """The topics of one application (``robot``) under ``prefix``."""

    def __init__(self, prefix: str, robot: str) -> None:
        if not prefix or not all(_ID.fullmatch(part) for part in prefix.split('/')):
            raise ConfigurationError(f'MQTT prefix must be words (letters, digits, _ . -) '
                                     f'joined by /, not {prefix!r}')
        if not _ID.fullmatch(robot or ''):
            raise ConfigurationError(f'MQTT robot id must be letters, digits, _ . or -, '
                                     f'not {robot!r}')
        self.prefix, self.robot = prefix, robot
        self.base = f'{prefix}/{robot}/'
        #: What the application subscribes to: every head's inbox.
        self.inboxes = f'{self.base}+/inbox'
        #: Presence, retained.
        self.status = f'{self.base}status'

    def inbox(self, head: str, robot: str | None = None) -> str:
        """Return the inbox topic of head on robot (this application by default)."""
        return f'{self.prefix}/{robot or self.robot}/{head}/inbox'

    def out(self, name: str) -> str:
        """Return the topic for envelopes to name when no reply topic is known."""
        return f'{self.base}out/{name}'

    def head_of(self, topic: str) -> str:
        """Return the head an inbox topic of this application names, or raise EnvelopeError."""
        head = topic[len(self.base):-len('/inbox')] if (
            topic.startswith(self.base) and topic.endswith('/inbox')) else ''
        if not _NAME.fullmatch(head):
            raise EnvelopeError(f'topic {topic!r} is no head inbox of {self.robot!r}')
        return head

    def check_reply_topic(self, topic: object) -> str:
        """Return topic if replies may be published there, or raise EnvelopeError saying why."""
        if not isinstance(topic, str) or not topic:
            raise EnvelopeError(f'a reply topic must be a non-empty string, not {topic!r}')
        if len(topic.encode()) > MAX_REPLY_TOPIC:
            raise EnvelopeError(f'a reply topic must be at most {MAX_REPLY_TOPIC} bytes')
        if any(c in topic for c in '+#\0') or topic.startswith('$'):
            raise EnvelopeError(f'reply topic {topic[:80]!r} holds a wildcard, a NUL or a '
                                'leading $')
        if topic.startswith(self.base) and not topic.startswith(self.base + 'out/'):
            raise EnvelopeError(f'reply topic {topic[:80]!r} is inside {self.base!r}: replies '
                                'never go to this application itself')
        return topic
