"""The reply properties the transport packs itself: the bytes paho would write."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from polycephaly_ros.routes.mqtt.properties import ReplyProperties

pytestmark = pytest.mark.fast


@pytest.mark.parametrize('topic, correlation', [
    ('ops/replies', b'c-1'), (None, b'\x00' * 300), ('t' * 200, None), ('π/ü', b''),
])
def test_reply_properties_are_packed_as_paho_packs_them(topic, correlation) -> None:
    theirs = Properties(PacketTypes.PUBLISH)
    if topic:
        theirs.ResponseTopic = topic
    if correlation:
        theirs.CorrelationData = correlation
    assert ReplyProperties(topic, correlation).pack() == theirs.pack()
