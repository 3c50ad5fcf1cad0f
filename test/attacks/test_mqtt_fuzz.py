"""Fuzzing the MQTT route: generated payloads on a head's inbox, each answered once, no head falls.

One mosquitto and one application (route head ``mqtt``, robot ``fuzzbot``, and a head ``echo``
that answers whatever reaches it) serve the whole run. A plain paho MQTT 5 client publishes
each Hypothesis payload (arbitrary bytes, arbitrary JSON values, payloads over the size limit,
numbers too big for their header, JSON objects with random, mistyped or out-of-range core
headers, control subjects, bad or borrowed senders) with a response topic and correlation
data, then a good ping; once the ping is answered, the payload must have had exactly one
answer carrying its correlation data: an error from the route when it was refused, echo's
reply when it was a valid envelope. The one exception is the route's rule against error
storms: a refused envelope whose subject is ``error`` is not answered. The route's counters
must add up, and every head must still run at the end. ``POLYCEPHALY_MQTT_FUZZ_EXAMPLES``
(default 150) sets the number of payloads.
"""

from __future__ import annotations

import collections
import os
import queue
import socket
import threading
import uuid
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker import Broker
from harness import Running
from polycephaly_ros import Process
from polycephaly_ros.routes.mqtt import MqttRouteHead, MqttTransport

EXAMPLES = int(os.environ.get('POLYCEPHALY_MQTT_FUZZ_EXAMPLES', '150'))
TIMEOUT = 10.0
ROBOT = 'fuzzbot'
PILL = 'STOP-THE-APPLICATION'
REPLIES = 'fuzzer/replies'
MAX_PAYLOAD = 4096
HEADS = ('main', 'mqtt', 'echo')
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def inbox(head: str) -> str:
    return f'polycephaly/{ROBOT}/{head}/inbox'


# -- the payloads ------------------------------------------------------------------------------
names = st.from_regex(r'[A-Za-z][A-Za-z0-9_]{0,20}', fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
odd = st.sampled_from(['', 'echo', 'Main', 'mqtt', 'polycephaly', PILL, 'polycephaly.ebrake',
                       'polycephaly.exited', 'error', 'a b', '9x', 'x' * 200])
any_value = json_values | odd
not_text = json_values.filter(lambda v: not isinstance(v, str))
texts = st.text(st.characters(exclude_categories=('Cs',)), max_size=30)
headers = {
    'recipient': st.sampled_from(['echo', 'ECHO', 'main', 'nobody']) | any_value,
    'subject': st.sampled_from(['ping', 'other', PILL, 'polycephaly.ebrake',
                                'polycephaly.lifecycle']) | any_value,
    'sender': names | any_value,
    'threadindex': (st.integers(-5, 2**64 - 1) | st.sampled_from([0, 1, 2**32 - 1, 2**32])
                    | any_value),
    'threadid': st.uuids().map(str) | any_value,
    'messageid': st.uuids().map(str) | st.sampled_from(['', 'x' * 129]) | not_text,
    'time': st.floats() | any_value,
    'priority': st.integers(-2**32, 2**32) | st.floats() | any_value,
    'body': json_values,
    'via': any_value,
    'route': any_value,
    'reply_to': any_value,
}


@st.composite
def payloads(draw: Any) -> tuple[str, str, bytes]:
    """Return (kind, topic head, payload)."""
    head = draw(st.sampled_from(['echo'] * 8 + ['nobody', 'Echo', '9x']))
    kind = draw(st.sampled_from(['bytes', 'json', 'too big', 'big number'] + ['good'] * 3
                                + ['headers'] * 4))
    if kind == 'bytes':
        return kind, head, draw(st.binary(max_size=300))
    if kind == 'json':
        return kind, head, orjson.dumps(draw(json_values))
    if kind == 'too big':
        size = draw(st.integers(MAX_PAYLOAD, 3 * MAX_PAYLOAD))
        return kind, head, b'{"recipient":"echo","subject":"ping","sender":"f","body":"%s"}' % (
            b'x' * size)
    if kind == 'big number':
        header = draw(st.sampled_from(['threadindex', 'priority', 'time']))
        number = draw(st.integers(2**32, 10**40).map(str)
                      | st.sampled_from(['1e400', '-1e400', '1.5', '-0', '4294967295']))
        return kind, head, ('{"recipient":"echo","subject":"ping","sender":"fuzzer","%s":%s}' % (
            header, number)).encode()
    if kind == 'good':  # a valid request, with valid optional headers and any extra ones
        optional = {'threadid': st.uuids().map(str), 'threadindex': st.integers(1, 2**32 - 1),
                    'messageid': st.uuids().map(str), 'priority': st.integers(-2**31, 2**31 - 1),
                    'time': st.floats(allow_nan=False, allow_infinity=False)}
        chosen = draw(st.lists(st.sampled_from(sorted(optional)), unique=True))
        envelope = {h: draw(optional[h]) for h in chosen}
        envelope.update(recipient=draw(st.sampled_from(['echo', 'ECHO', 'Echo'])),
                        subject=draw(st.sampled_from(['ping', 'other', 'error']) | texts),
                        sender=draw(names), body=draw(json_values))
    else:  # any core headers, mistyped, out of range or missing
        chosen = draw(st.lists(st.sampled_from(sorted(headers)), unique=True))
        envelope = {h: draw(headers[h]) for h in chosen}
    extras = draw(st.dictionaries(st.text(max_size=10).filter(lambda h: h not in envelope),
                                  json_values, max_size=3))
    return kind, head, unique_ids({**envelope, **extras})


def unique_ids(envelope: dict) -> bytes:
    """Return envelope as JSON, a fresh message id in place of a valid one.

    (Hypothesis repeats values; a repeated valid message id is a duplicate, dropped unanswered.)
    """
    messageid = envelope.get('messageid')
    if isinstance(messageid, str) and 0 < len(messageid) <= 128:
        envelope['messageid'] = str(uuid.uuid4())
    return orjson.dumps(envelope)


# -- the application and the fuzzer's client -------------------------------------------------
class HandsOver(MqttRouteHead):
    """An MqttRouteHead that hands its transport to the test (a queue in kwargs['handed'])."""

    def open_transport(self) -> None:
        super().open_transport()
        self.kwargs['handed'].put(self.transport)


class AnswersAll(Process):
    """Answer every envelope, from any route, with its subject and body."""

    def birth(self) -> None:
        self.add_filter(self.answer, route=None)

    def answer(self, message: dict) -> None:
        self.reply(message, {'subject': message['subject'], 'body': message['body']})


def running(broker: Broker) -> tuple[Running, MqttTransport]:
    """The application, run in a thread until close(), and its route's transport."""
    handed: queue.Queue[MqttTransport] = queue.Queue()
    heads = [(HandsOver, {'name': 'mqtt', 'robot': ROBOT, 'port': broker.port,
                          'max_payload': MAX_PAYLOAD, 'handed': handed}),
             (AnswersAll, {'name': 'echo'})]
    app = Running(heads, ppill=PILL, ros=False)
    return app, handed.get(timeout=30)


def no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Send each packet at once (no Nagle: the broker delays its TCP acks by up to 40 ms)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Fuzzer:
    """A plain paho MQTT 5 client that reads what comes back on REPLIES."""

    def __init__(self, port: int) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.by_correlation: dict[bytes | None, list[paho.MQTTMessage]] = \
            collections.defaultdict(list)
        subscribed = threading.Event()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id='fuzzer',
                             protocol=paho.MQTTv5)
        client.on_connect = lambda c, *_: c.subscribe(REPLIES, options=SubscribeOptions(qos=1))
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda c, u, m: self.messages.put(m)
        client.on_socket_open = no_delay
        client.connect('127.0.0.1', port)
        client.loop_start()
        self.client = client
        assert subscribed.wait(TIMEOUT), 'the fuzzer could not subscribe'

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> bytes:
        correlation = uuid.uuid4().bytes
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic, properties.CorrelationData = REPLIES, correlation
        self.client.publish(topic, payload, qos=1, properties=properties)
        return correlation

    def take(self, correlation: bytes, wait: bool = False) -> list[paho.MQTTMessage]:
        """Return (and forget) what came with correlation; with wait, wait for one first."""
        while True:
            try:
                message = self.messages.get(timeout=TIMEOUT) if wait else \
                    self.messages.get_nowait()
            except queue.Empty:
                if wait:
                    raise
                break
            key = getattr(message.properties, 'CorrelationData', None)
            self.by_correlation[key].append(message)
            if wait and key == correlation:
                break
        return self.by_correlation.pop(correlation, [])


BARRIER = orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'fuzzer',
                        'body': 'barrier'})


def _subject(payload: bytes) -> Any:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj.get('subject') if isinstance(obj, dict) else None


@pytest.mark.timeout(300)
def test_every_mqtt_payload_is_answered_once_and_the_heads_go_on(tmp_path) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    with Broker(tmp_path / 'broker') as broker:
        app, transport = running(broker)
        assert transport.connected_event.wait(TIMEOUT)
        fuzzer = Fuzzer(broker.port)
        try:
            @FUZZ
            @given(example=payloads())
            def one(example: tuple[str, str, bytes]) -> None:
                kind, head, payload = example
                stats = transport.stats
                received, refused = stats['received'], stats['refused']
                sent = fuzzer.publish(inbox(head), payload)
                barrier = fuzzer.publish(inbox('echo'), BARRIER)
                pong = fuzzer.take(barrier, wait=True)
                assert [orjson.loads(m.payload)['body']['body'] for m in pong] == ['barrier']
                answers = [orjson.loads(m.payload) for m in fuzzer.take(sent)]
                was_refused = stats['refused'] - refused
                assert stats['received'] - received == 2, example
                assert was_refused in (0, 1), example
                if was_refused and not answers:  # no error answers an error
                    assert _subject(payload) == 'error', example
                    outcomes['unanswered error'] += 1
                    return
                assert len(answers) == 1, (example, answers)
                answer = answers[0]
                if was_refused:
                    assert (answer['sender'], answer['subject']) == ('polycephaly', 'error')
                    assert isinstance(answer['body']['error'], str) and answer['body']['error']
                    outcomes['error'] += 1
                else:
                    request = orjson.loads(payload)
                    assert (answer['sender'], answer['subject']) == ('echo', 'reply'), example
                    assert answer['body']['body'] == request.get('body'), example
                    assert answer['threadindex'] == min(request.get('threadindex', 1) + 1,
                                                        2**32 - 1)
                    if 'threadid' in request:
                        assert answer['threadid'] == request['threadid']
                    outcomes[f'reply to {kind}'] += 1

            one()
            assert fuzzer.take(uuid.uuid4().bytes) == [] and not fuzzer.by_correlation
        finally:
            fuzzer.close()
            final = app.close()
    print(f'\nMQTT fuzz outcomes: {dict(outcomes)}')
    assert [(h['name'], h['state'], h['exits'], h['errors']) for h in final] == [
        ('mqtt', 'running', 0, 0), ('echo', 'running', 0, 0)]
    stats = transport.stats  # (final: the transport has closed)
    assert stats['received'] == stats['delivered'] + stats['refused'] + stats['duplicates']
    assert stats['duplicates'] == 0
    assert stats['published'] == stats['acked'] and stats['rejected_by_broker'] == 0
    assert stats['lost_at_close'] == 0 and len(transport.outbox) == 0
    assert stats['connects'] == 1
    # the strategies did produce both kinds of answer (a guard on the guard)
    assert outcomes['error'] >= EXAMPLES // 4, outcomes
    assert sum(n for k, n in outcomes.items() if k.startswith('reply')) >= EXAMPLES // 20, outcomes
