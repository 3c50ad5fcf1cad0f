"""The MQTT route against a real mosquitto: TLS, passwords, and what it refuses from outside.

Every application here runs with ros=False and two thread heads: the route head ``mqtt``
(robot id ``bot``) and a RouteEcho ``echo``, on the anonymous ``broker`` but for TLS and
passwords (``secure_broker``). Requests come from a plain paho MQTT 5 client (the
probe) that sees every message on the broker but its own; a message under test is followed
by a good ping, and its answers are counted once the ping's reply is in: the transport
answers a refused message in paho's network thread before it reads the next one, and
everything the application publishes leaves through one connection, in order.
"""

from __future__ import annotations

import collections
import logging
import queue
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, NamedTuple

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker import Broker, make_ca, make_client_cert
from harness import ask, run_script
from heads import RouteEcho
from polycephaly_ros import Process
from polycephaly_ros.envelope import BEGIN, BORN, EBRAKE, EXITED, LIFECYCLE
from polycephaly_ros.routes.mqtt import MqttRouteHead, MqttTransport

TIMEOUT = 10.0
ROBOT = 'bot'
PILL = 'STOP-THE-APPLICATION'
REPLIES = 'tester/replies'  # the probe's reply topic
BASE = f'polycephaly/{ROBOT}/'


def inbox(head: str) -> str:
    return f'{BASE}{head}/inbox'


class HandsOver(MqttRouteHead):
    """An MqttRouteHead that hands its transport to the test (a queue in kwargs['handed'])."""

    def open_transport(self) -> None:
        super().open_transport()
        self.kwargs['handed'].put(self.transport)


class Message(NamedTuple):
    topic: str
    payload: bytes
    correlation: bytes | None
    retain: bool

    def json(self) -> Any:
        return orjson.loads(self.payload)


def no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Send each packet at once (no Nagle: the broker delays its TCP acks by up to 40 ms)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Probe:
    """A plain paho MQTT 5 client subscribed to '#' (no local, retain as published)."""

    def __init__(self, port: int, **connect: Any) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.seen: list[Message] = []
        subscribed = threading.Event()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5,
                             client_id=f'probe-{uuid.uuid4().hex[:8]}')
        client.on_connect = lambda c, *_: c.subscribe(
            '#', options=SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True))
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda c, u, m: self.messages.put(Message(
            m.topic, m.payload, getattr(m.properties, 'CorrelationData', None), m.retain))
        client.on_socket_open = no_delay
        if connect.get('username'):
            client.username_pw_set(connect['username'], connect.get('password'))
        client.connect('127.0.0.1', port)
        client.loop_start()
        self.client = client
        assert subscribed.wait(TIMEOUT), 'the probe could not subscribe'

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, response: str | None = REPLIES,
                correlation: bytes | None = None) -> bytes:
        """Publish at QoS 1 with a response topic and correlation data; return the latter."""
        correlation = correlation or uuid.uuid4().bytes
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = correlation
        if response is not None:
            properties.ResponseTopic = response
        self.client.publish(topic, payload, qos=1, properties=properties)
        return correlation

    def wait_for(self, correlation: bytes, timeout: float = TIMEOUT) -> Message:
        """Return the first message carrying correlation; keep every other message seen."""
        for message in self.seen:
            if message.correlation == correlation:
                return message
        while True:
            message = self.messages.get(timeout=timeout)  # queue.Empty: nothing in time
            self.seen.append(message)
            if message.correlation == correlation:
                return message

    def ping(self, body: Any = 'still there?', timeout: float = TIMEOUT) -> dict:
        """Ping echo over MQTT; return its reply envelope."""
        sent = self.publish(inbox('echo'), orjson.dumps(
            {'recipient': 'echo', 'subject': 'ping', 'sender': 'touch', 'body': body}))
        return self.wait_for(sent, timeout).json()

    def answers(self, topic: str, payload: bytes, response: str | None = REPLIES) -> list[Message]:
        """Publish payload, then a good ping; once that is answered, return the first's answers."""
        sent = self.publish(topic, payload, response)
        assert self.ping('barrier')['body']['body'] == 'barrier'
        return [m for m in self.seen if m.correlation == sent]


def serve(broker: Broker, check: Callable[..., Any], *, connected: bool = True,
          **route: Any) -> Any:
    """Run check(main, transport, probe) in the application; return what it returned.

    With connected=False, check(main, transport) runs at once, without waiting for the
    broker and without a probe.
    """
    handed: queue.Queue[MqttTransport] = queue.Queue()

    def script(main: Process) -> Any:
        transport = handed.get(timeout=TIMEOUT)
        if not connected:
            return check(main, transport)
        assert transport.connected_event.wait(TIMEOUT), 'the route did not connect'
        probe = Probe(broker.port, username='robot', password='secret')
        try:
            return check(main, transport, probe)
        finally:
            probe.close()

    heads = [(HandsOver, {'name': 'mqtt', 'robot': ROBOT, 'port': broker.port,
                          'backoff': (0.05, 0.2), 'handed': handed, **route}),
             (RouteEcho, {'name': 'echo'})]
    return run_script(script, heads, ros=False, ppill=PILL).outcome


def heads_running(main: Process) -> list[tuple[str, str, int]]:
    return [(h['name'], h['state'], h['exits']) for h in main.application.status()]


RUNNING = [('mqtt', 'running', 0), ('echo', 'running', 0)]


def envelope(**headers: Any) -> bytes:
    return orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'touch',
                         'body': 'hello', **headers})


def the_error(answers: list[Message], topic: str = REPLIES) -> dict:
    """Return the one error among answers, checking it went to topic."""
    assert len(answers) == 1, answers
    assert answers[0].topic == topic, answers
    error = answers[0].json()
    assert (error['subject'], error['sender']) == ('error', 'polycephaly'), error
    return error


# -- TLS ---------------------------------------------------------------------------------------
def password_file(folder: Path, password: str) -> str:
    path = folder / 'password'
    path.touch(0o600)
    path.write_text(password + '\n')
    assert path.stat().st_mode & 0o777 == 0o600
    return str(path)


@pytest.mark.timeout(60)
def test_a_route_over_tls_with_a_password_file_answers_a_remote_over_tls(secure_broker,
                                                                         tmp_path) -> None:
    tls = {'ca_file': str(secure_broker.ca_file)}
    replies: queue.Queue[dict] = queue.Queue()

    def check(main: Process, route: MqttTransport, probe: Probe) -> Any:
        remote = MqttTransport(replies.put, robot='remote', port=secure_broker.tls_port, tls=tls,
                               username='robot', password='secret', presence=False)
        with remote:
            assert remote.connected_event.wait(TIMEOUT)
            sent = remote.send({'sender': 'touch', 'recipient': 'echo', 'subject': 'ping',
                                'body': 'over tls'}, topic=remote.topics.inbox('echo', ROBOT))
            reply = replies.get(timeout=TIMEOUT)
        return sent, reply, route.port, heads_running(main)

    sent, reply, port, running = serve(
        secure_broker, check, port=secure_broker.tls_port, tls=tls, username='robot',
        password_file=password_file(tmp_path, 'secret'))
    assert port == secure_broker.tls_port != secure_broker.port
    assert (reply['sender'], reply['recipient'], reply['subject']) == ('echo', 'touch', 'reply')
    assert reply['threadid'] == sent['threadid'] and reply['threadindex'] == 2
    assert reply['body']['body'] == 'over tls' and reply['body']['route'] == 'mqtt'
    assert running == RUNNING


@pytest.mark.timeout(60)
def test_a_client_trusting_another_ca_never_connects(secure_broker, tmp_path) -> None:
    other = tmp_path / 'other-ca'
    other.mkdir()
    other_ca = make_ca(other)[0]
    common = dict(port=secure_broker.tls_port, username='robot', password='secret',
                  presence=False, backoff=(0.05, 0.2))
    fooled = MqttTransport(lambda e: None, robot='fooled', tls={'ca_file': str(other_ca)},
                           **common)
    trusting = MqttTransport(lambda e: None, robot='trusting',
                             tls={'ca_file': str(secure_broker.ca_file)}, **common)
    with fooled, trusting:
        assert trusting.connected_event.wait(TIMEOUT)  # the same broker takes the right CA
        assert not fooled.connected_event.wait(3.0)  # many attempts, none accepted
        assert fooled.stats['connects'] == 0


@pytest.mark.timeout(60)
def test_a_broker_asking_for_client_certificates_takes_only_a_client_with_one(tmp_path) -> None:
    with Broker(tmp_path / 'broker', tls=True, client_certs=True) as broker:
        cert, key = make_client_cert(broker.folder, 'r1')
        common = dict(port=broker.tls_port, presence=False, backoff=(0.05, 0.2))
        anonymous = MqttTransport(lambda e: None, robot='anonymous',
                                  tls={'ca_file': str(broker.ca_file)}, **common)
        known = MqttTransport(lambda e: None, robot='known', **common, tls={
            'ca_file': str(broker.ca_file), 'cert_file': str(cert), 'key_file': str(key)})
        with anonymous, known:
            assert known.connected_event.wait(TIMEOUT)
            assert not anonymous.connected_event.wait(3.0)
            assert anonymous.stats['connects'] == 0


# -- passwords ---------------------------------------------------------------------------------
@pytest.fixture
def refusals(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An Event set once the broker refused the route's connection 5 times (it retries)."""
    enough = threading.Event()
    counted: collections.Counter[str] = collections.Counter()
    original = MqttTransport._connected

    def counting(self: MqttTransport, client: Any, userdata: Any, flags: Any, reason: Any,
                 properties: Any) -> None:
        if reason.is_failure:
            counted[self.topics.robot] += 1
            if counted[self.topics.robot] >= 5:
                enough.set()
        original(self, client, userdata, flags, reason, properties)

    monkeypatch.setattr(MqttTransport, '_connected', counting)
    return enough


@pytest.mark.timeout(60)
@pytest.mark.parametrize('credentials', ['none', 'wrong password'])
def test_a_route_the_broker_refuses_never_connects_says_so_once_and_the_app_goes_on(
        secure_broker, tmp_path, refusals, caplog, credentials) -> None:
    route = {} if credentials == 'none' else {
        'username': 'robot', 'password_file': password_file(tmp_path, 'not-the-secret')}

    def check(main: Process, transport: MqttTransport) -> Any:
        assert refusals.wait(TIMEOUT), 'the route stopped trying'
        connected = transport.connected_event.wait(2.0)  # a generous bound on loopback
        return connected, ask(main, 'echo', 'ping', 'inside'), heads_running(main)

    with caplog.at_level(logging.INFO):
        connected, inside, running = serve(secure_broker, check, connected=False, **route)
    assert not connected
    assert inside['body'] == 'inside' and running == RUNNING
    said = [r for r in caplog.records if 'refused the connection' in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]  # at least 5 refusals, said once
    assert said[0].levelno == logging.ERROR and 'Not authorized' in said[0].getMessage()


def test_mosquitto_pub_needs_the_password(secure_broker) -> None:
    def pub(*credentials: str) -> subprocess.CompletedProcess:
        return subprocess.run(['mosquitto_pub', '-h', '127.0.0.1', '-p', str(secure_broker.port),
                               '-q', '1', '-t', inbox('echo'), '-m', '{}', *credentials],
                              capture_output=True, text=True, timeout=30)

    anonymous, wrong, right = pub(), pub('-u', 'robot', '-P', 'guess'), pub('-u', 'robot',
                                                                           '-P', 'secret')
    assert anonymous.returncode != 0 and 'not authori' in anonymous.stderr.lower()
    assert wrong.returncode != 0
    assert right.returncode == 0, right.stderr  # (so the refusals above are the password's)


# -- what is refused from outside ----------------------------------------------------------------
@pytest.mark.timeout(60)
def test_the_poison_pill_and_control_subjects_are_refused_and_the_app_goes_on(broker) -> None:
    subjects = [PILL, EBRAKE, EXITED, BORN, BEGIN, LIFECYCLE, 'polycephaly.anything']

    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        errors = []
        for head in ('main', 'echo', 'mqtt'):
            for subject in subjects:
                answers = probe.answers(inbox(head), orjson.dumps(
                    {'recipient': head, 'subject': subject, 'sender': 'touch', 'body': 'die',
                     'threadid': 't-1', 'threadindex': 7}))
                errors.append((head, subject, the_error(answers)))
        taken = [m for m in main.received if m.get('route') == 'mqtt']
        return errors, taken, probe.ping(), heads_running(main), transport

    app_errors, taken, pong, running, transport = serve(broker, check)
    for head, subject, error in app_errors:
        assert error['body'] == {'error': 'refused: control subject'}, (head, subject, error)
        assert error['recipient'] == 'touch', (head, subject, error)
        assert (error['threadid'], error['threadindex']) == ('t-1', 8)
    assert taken == []  # main never saw one
    assert pong['body']['body'] == 'still there?' and running == RUNNING
    assert transport.stats['refused'] == 3 * len(subjects)  # (read once it closed)
    assert transport.stats['delivered'] == 3 * len(subjects) + 1  # the pings


BAD_PAYLOADS = {  # name: (payload, what its error says)
    'not JSON': (b'\xff\xfe not json', 'malformed JSON'),
    'a JSON array': (b'[1, 2]', 'an envelope must be a JSON object, not array'),
    'a JSON string': (b'"ping"', 'an envelope must be a JSON object, not string'),
    'over the size limit': (envelope(body='x' * 5000), 'the MQTT route takes at most 4096'),
    'no sender': (orjson.dumps({'recipient': 'echo', 'subject': 'ping'}),
                  "missing header 'sender'"),
    'a sender that is no name': (envelope(sender='a b'), "header 'sender' must be a name"),
    'threadindex 0': (envelope(threadindex=0),
                      "'threadindex' must be an integer in 1..4294967295"),
    'threadindex 2**32': (envelope(threadindex=2**32), 'not 4294967296'),
    'threadindex as text': (envelope(threadindex='1'), "'threadindex' must be an integer"),
    'a head of the application as sender': (envelope(sender='Main'),
                                            'is a head of this application'),
}


@pytest.mark.timeout(60)
def test_malformed_and_over_size_payloads_get_exactly_one_error_each(broker) -> None:
    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        got = {name: the_error(probe.answers(inbox('echo'), payload))
               for name, (payload, _) in BAD_PAYLOADS.items()}
        return got, heads_running(main), transport.stats

    got, running, stats = serve(broker, check, max_payload=4096)
    for name, (_, reason) in BAD_PAYLOADS.items():
        assert reason in got[name]['body']['error'], (name, got[name])
    assert got['a sender that is no name']['recipient'] == ''  # (no name to answer to)
    assert running == RUNNING
    assert stats['refused'] == len(BAD_PAYLOADS)
    assert stats['delivered'] == len(BAD_PAYLOADS)  # the pings after each


@pytest.mark.timeout(60)
def test_a_topic_that_is_no_head_inbox_or_names_another_head_is_refused(broker) -> None:
    cases = {  # (topic, payload): what the error says
        (inbox('echo'), envelope(recipient='main')):
            "header 'recipient' ('main') is not the head the topic names ('echo')",
        (inbox('echo'), envelope(recipient='MQTT')): "is not the head the topic names",
        (inbox('Echo'), envelope()): "is no head inbox of 'bot'",
        (inbox('nobody'), envelope(recipient='nobody')): "no head named 'nobody'",
    }

    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        return ({key: the_error(probe.answers(*key)) for key in cases},
                probe.answers(inbox('echo'), envelope(recipient='ECHO', body='any case')),
                heads_running(main))

    got, any_case, running = serve(broker, check)
    for key, reason in cases.items():
        assert reason in got[key]['body']['error'], (key, got[key])
    assert len(any_case) == 1 and any_case[0].json()['body']['body'] == 'any case'
    assert running == RUNNING


@pytest.mark.timeout(60)
def test_a_reply_to_header_with_a_wildcard_or_inside_the_robot_is_refused(broker) -> None:
    # MQTT 3.1.1 style: no response topic, the envelope names its reply topic; a refused one
    # is never used: the error goes to out/<sender>.
    bad = {'tester/+': 'wildcard', 'tester/#': 'wildcard', '$SYS/x': 'leading $',
           'tester/\0x': 'NUL', inbox('echo'): 'inside', f'{BASE}status': 'inside', '': 'non-empty'}

    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        got = {topic: the_error(probe.answers(inbox('echo'), envelope(reply_to=topic), None),
                                f'{BASE}out/touch')
               for topic in bad}
        fine = probe.answers(inbox('echo'), envelope(reply_to='tester/elsewhere', body=1), None)
        return got, fine, transport.stats, heads_running(main)

    got, fine, stats, running = serve(broker, check)
    for topic, why in bad.items():
        assert why in got[topic]['body']['error'], (topic, got[topic])
        assert got[topic]['recipient'] == 'touch'
    assert [(m.topic, m.json()['body']['body']) for m in fine] == [('tester/elsewhere', 1)]
    # (counters read once the transport closed) nothing the application sent came back to it
    assert stats['received'] == 2 * (len(bad) + 1) and stats['refused'] == len(bad)
    assert running == RUNNING


@pytest.mark.timeout(60)
def test_a_response_topic_under_out_is_allowed(broker) -> None:
    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        return probe.answers(inbox('echo'), envelope(body='out'), f'{BASE}out/touch')

    answers = serve(broker, check)
    assert [(m.topic, m.json()['body']['body']) for m in answers] == [(f'{BASE}out/touch', 'out')]


@pytest.mark.timeout(60)
@pytest.mark.parametrize('topic', ['tester/+', 'tester/#', inbox('echo'), f'{BASE}status'])
def test_a_refused_response_topic_gets_one_error_on_out_and_nothing_there(broker, topic) -> None:
    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        return probe.answers(inbox('echo'), envelope(), topic), transport.stats

    answers, stats = serve(broker, check)
    error = the_error(answers, f'{BASE}out/touch')  # (not on the refused topic)
    assert 'wildcard' in error['body']['error'] or 'inside' in error['body']['error']
    assert stats['received'] == 2  # the request and the ping: nothing the application sent


@pytest.mark.timeout(60)
def test_requests_with_a_wildcard_response_topic_do_not_fill_the_outbox(broker) -> None:
    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        for _ in range(3):  # each answered on out/touch (and so acknowledged) before the next
            assert len(probe.answers(inbox('echo'), envelope(), 'tester/+')) == 1
        try:
            return probe.ping('after', timeout=5.0)['body']['body']
        except queue.Empty:
            return f'no answer ({len(transport.outbox)} places of 3 taken in the outbox)'

    assert serve(broker, check, outbox=3) == 'after'


@pytest.mark.timeout(60)
def test_a_replayed_message_is_handled_once(broker) -> None:
    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        payload = envelope(messageid='replay-1', body='once')
        first = probe.answers(inbox('echo'), payload)
        again = probe.answers(inbox('echo'), payload)
        return first, again, transport.stats

    first, again, stats = serve(broker, check)
    assert [m.json()['body']['body'] for m in first] == ['once'] and again == []
    assert stats['duplicates'] == 1 and stats['refused'] == 0


@pytest.mark.timeout(60)
def test_an_outside_sender_cannot_make_the_application_publish_retained(broker) -> None:
    def check(main: Process, transport: MqttTransport, probe: Probe) -> Any:
        return probe.answers(inbox('echo'), envelope(retain=True, body='spoof'),
                             f'{BASE}out/status')

    answers = serve(broker, check)
    assert [m.json()['body']['body'] for m in answers] == ['spoof']
    assert not answers[0].retain  # (the probe subscribes with retain-as-published)
