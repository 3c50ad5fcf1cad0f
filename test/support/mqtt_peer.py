"""A plain paho-mqtt client, as a remote operator without our library would write it.

:class:`PlainClient` connects (MQTT 5 or 3.1.1), subscribes to topics and waits for the
SUBACK, and collects every message it gets in a queue; :meth:`PlainClient.request` publishes
an envelope with a response topic and correlation data and returns what comes back.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class PlainClient:
    """A paho client on 127.0.0.1:port whose received messages wait in self.messages."""

    def __init__(self, port: int, *topics: str, protocol: int = 5, client_id: str = '',
                 **tls_and_auth: Any) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        v5 = protocol == 5
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        if 'ca_file' in tls_and_auth:
            self.client.tls_set(ca_certs=str(tls_and_auth['ca_file']))
        if 'username' in tls_and_auth:
            self.client.username_pw_set(tls_and_auth['username'], tls_and_auth.get('password'))
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect('127.0.0.1', port)
        self.client.loop_start()
        for topic in topics:
            subscribed.clear()
            self.client.subscribe(topic, qos=1)
            assert subscribed.wait(10), f'no SUBACK for {topic}'

    def publish(self, topic: str, payload: bytes | str | dict, *, response_topic: str = '',
                correlation: bytes = b'', qos: int = 1) -> None:
        """Publish payload (a dict as JSON), with MQTT 5 reply properties if given; wait for it."""
        if isinstance(payload, dict):
            payload = orjson.dumps(payload)
        properties = None
        if response_topic or correlation:
            properties = Properties(PacketTypes.PUBLISH)
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation:
                properties.CorrelationData = correlation
        self.client.publish(topic, payload, qos=qos, properties=properties).wait_for_publish(10)

    def next(self, timeout: float = 10.0) -> paho.MQTTMessage:
        """Return the next message received; fail after timeout seconds."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'no MQTT message within {timeout} s') from None

    def request(self, topic: str, envelope: dict, reply_topic: str,
                correlation: bytes = b'c-1') -> tuple[dict, bytes | None]:
        """Publish envelope with a response topic; return the reply's envelope and correlation."""
        self.publish(topic, envelope, response_topic=reply_topic, correlation=correlation)
        message = self.next()
        return orjson.loads(message.payload), getattr(message.properties, 'CorrelationData', None)

    def close(self) -> None:
        """Disconnect and stop the client's thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> PlainClient:
        """Return the client."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client."""
        self.close()
