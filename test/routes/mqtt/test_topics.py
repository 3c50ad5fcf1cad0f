"""The MQTT topic scheme and the reply topics accepted from outside; polycephaly-remote's body."""

from __future__ import annotations

import pytest

from polycephaly_ros.errors import ConfigurationError, EnvelopeError
from polycephaly_ros.robot.remote import parse_body
from polycephaly_ros.routes.mqtt import Topics

pytestmark = pytest.mark.fast


def test_the_scheme() -> None:
    topics = Topics('fleet/eu', 'r1')
    assert topics.inboxes == 'fleet/eu/r1/+/inbox'
    assert topics.inbox('echo') == 'fleet/eu/r1/echo/inbox'
    assert topics.inbox('service', 'r2') == 'fleet/eu/r2/service/inbox'
    assert topics.status == 'fleet/eu/r1/status'
    assert topics.out('op') == 'fleet/eu/r1/out/op'
    assert topics.head_of('fleet/eu/r1/echo/inbox') == 'echo'


@pytest.mark.parametrize('topic', ['fleet/eu/r2/echo/inbox', 'fleet/eu/r1/Echo/inbox',
                                   'fleet/eu/r1/a/b/inbox', 'fleet/eu/r1//inbox',
                                   'fleet/eu/r1/echo/outbox', 'fleet/eu/r1/status'])
def test_only_a_head_inbox_of_this_robot_names_a_head(topic: str) -> None:
    with pytest.raises(EnvelopeError, match='no head inbox'):
        Topics('fleet/eu', 'r1').head_of(topic)


@pytest.mark.parametrize('topic, said', [
    ('ops/+', 'wildcard'), ('ops/#', 'wildcard'), ('$SYS/x', 'leading \\$'), ('a\0b', 'NUL'),
    ('', 'non-empty'), (42, 'non-empty string'), ('x' * 513, 'at most 512'),
    ('polycephaly/r1/echo/inbox', 'inside'), ('polycephaly/r1/status', 'inside'),
])
def test_reply_topics_that_are_refused(topic: object, said: str) -> None:
    with pytest.raises(EnvelopeError, match=said):
        Topics('polycephaly', 'r1').check_reply_topic(topic)


def test_reply_topics_that_are_taken() -> None:
    topics = Topics('polycephaly', 'r1')
    for topic in ('ops/replies', 'polycephaly/r2/op/inbox', 'polycephaly/r1/out/op'):
        assert topics.check_reply_topic(topic) == topic


@pytest.mark.parametrize('prefix, robot', [('', 'r1'), ('a/+', 'r1'), ('a', 'r/1'),
                                           ('a', ''), ('a', 'r#')])
def test_ids_that_could_not_be_topic_levels_are_refused(prefix: str, robot: str) -> None:
    with pytest.raises(ConfigurationError):
        Topics(prefix, robot)


@pytest.mark.parametrize('words, body', [
    ([], None), (['{"head": "updates"}'], {'head': 'updates'}), (['42'], 42),
    (['plain text'], 'plain text'), (['head=updates'], {'head': 'updates'}),
    (['idle=true', 'n=3', 'who=op'], {'idle': True, 'n': 3, 'who': 'op'}),
])
def test_the_remote_body_is_json_or_key_value_pairs(words: list, body: object) -> None:
    assert parse_body(words) == body


def test_a_remote_body_that_is_neither_is_refused() -> None:
    with pytest.raises(ConfigurationError, match='key=value'):
        parse_body(['a=1', 'b'])
