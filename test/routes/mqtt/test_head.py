"""The MQTT route head in applications, against a real mosquitto started by each test.

Peers: Debian's mosquitto_pub/mosquitto_sub, a plain paho client (test/support/mqtt_peer.py),
our own MqttTransport as a remote operator, and a second application. Every application here
runs with ros=False.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from broker import Broker
from harness import ask, run_script, until
from heads import ProbedMqtt, RouteEcho
from mqtt_peer import PlainClient
from polycephaly_ros import Process
from polycephaly_ros.errors import ConfigurationError
from polycephaly_ros.routes.base import BOUNCED_BY
from polycephaly_ros.routes.mqtt import MqttRouteHead, MqttTransport

TIMEOUT = 10.0
APP = Path(__file__).resolve().parents[2] / 'support' / 'mqtt_app.py'
PING = {'sender': 'op', 'subject': 'ping', 'body': 'hi'}


def route(port: int, **kwargs: Any) -> tuple[type, dict]:
    """The MQTT route head 'mqtt' of robot 'r1' on the broker at port (a thread head)."""
    return ProbedMqtt, {'name': 'mqtt', 'mode': 'thread', 'robot': 'r1', 'port': port, **kwargs}


def connected(main: Process, within: float = TIMEOUT) -> dict:
    """Return the route head's answer once it is connected (within seconds, or fail)."""
    answer = ask(main, 'mqtt', 'connected', within, timeout=within + TIMEOUT)
    assert answer['connected'], f'the route did not connect within {within} s'
    return answer


class Operator(MqttTransport):
    """A remote operator 'op' built on our transport alone; what it receives is in .got."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        self.got: list[dict] = []
        self.arrived = threading.Condition()
        super().__init__(self._arrive, robot='op', port=port, presence=False, **kwargs)
        self.start()
        assert self.connected_event.wait(TIMEOUT)

    def _arrive(self, envelope: dict) -> None:
        with self.arrived:
            self.got.append(envelope)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[dict]:
        """Return what arrived once count envelopes did; fail after timeout seconds."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.got) >= count, timeout), (
                f'{len(self.got)} of {count} envelopes arrived in {timeout} s')
            return list(self.got)


def ready(proc: Any) -> None:
    """Wait until a program of test/support prints 'ready'."""
    while (line := proc.lines.get(timeout=30)[1]) != 'ready':
        assert line is not None, f'the program ended before it was ready:\n{proc.log()}'


def mosquitto(*args: str, port: int) -> subprocess.CompletedProcess:
    """Run mosquitto_pub or mosquitto_sub against the broker; fail the test if it fails."""
    out = subprocess.run([args[0], '-h', '127.0.0.1', '-p', str(port), *args[1:]],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize('version', ['mqttv5', 'mqttv311'])
def test_mosquitto_pub_and_sub_do_request_and_reply(broker: Broker, version: str) -> None:
    """A plain mosquitto client asks a head and gets its reply, in MQTT 5 and 3.1.1."""
    def script(main: Process) -> Any:
        connected(main)
        session = ['-V', version, '-c', '-i', 'opsub', '-q', '1', '-t', 'ops/replies']
        if version == 'mqttv5':
            session += ['-x', '60']
        mosquitto('mosquitto_sub', *session, '-E', port=broker.port)  # the session subscribes
        request = dict(PING, recipient='echo')
        extra = ['-D', 'publish', 'response-topic', 'ops/replies', '-D', 'publish',
                 'correlation-data', 'c-42'] if version == 'mqttv5' else []
        if version == 'mqttv311':
            request['reply_to'] = 'ops/replies'
        mosquitto('mosquitto_pub', '-V', version, '-q', '1', '-t', 'polycephaly/r1/echo/inbox',
                  '-m', orjson.dumps(request).decode(), *extra, port=broker.port)
        form = '%D|%p' if version == 'mqttv5' else '|%p'
        out = mosquitto('mosquitto_sub', *session, '-C', '1', '-W', '10', '-F', form,
                        port=broker.port)
        return out.stdout.strip().split('|', 1)

    correlation, payload = run_script(script, [route(broker.port), (RouteEcho,
                                                                      {'name': 'echo'})]).outcome
    reply = orjson.loads(payload)
    assert reply['subject'] == 'reply' and reply['sender'] == 'echo' and reply['recipient'] == 'op'
    assert reply['body']['body'] == 'hi' and reply['body']['route'] == 'mqtt'
    assert correlation == ('c-42' if version == 'mqttv5' else '')


def test_a_plain_paho_client_gets_replies_with_its_correlation_data(broker: Broker) -> None:
    def script(main: Process) -> Any:
        connected(main)
        with PlainClient(broker.port, 'ops/me') as client:
            first = client.request('polycephaly/r1/echo/inbox', PING, 'ops/me', b'one')
            # Recipient may be left out (the topic names the head) and ids are filled in.
            second = client.request('polycephaly/r1/echo/inbox', dict(PING, body=2), 'ops/me',
                                    b'two')
        return first, second

    (first, one), (second, two) = run_script(script, [route(broker.port, mode='process'),
                                                      (RouteEcho, {'name': 'echo'})]).outcome
    assert (one, two) == (b'one', b'two')
    assert first['body']['body'] == 'hi' and second['body']['body'] == 2
    assert first['threadid'] != second['threadid']


def test_wait_for_reply_works_across_mqtt_between_two_applications(broker: Broker,
                                                                   procs: Any) -> None:
    """Robot 'a' asks the echo head of robot 'r2' (another program) by name, over the broker.

    Its main head is not called 'main': r2 has a head of that name, and a sender that names
    one of the receiver's own heads is refused (nobody outside speaks for them).
    """
    other = procs.start('r2', [sys.executable, str(APP), 'r2', str(broker.port)])
    ready(other)

    def script(main: Process) -> Any:
        connected(main)
        return [ask(main, 'echo', 'ping', n, timeout=TIMEOUT) for n in range(3)]

    answers = run_script(script, [route(broker.port, robot='a', peer='r2', remote=['echo'])],
                         name='asker').outcome
    assert [a['body'] for a in answers] == [0, 1, 2]
    assert {a['route'] for a in answers} == {'mqtt'} and answers[0]['pid'] == other.popen.pid


def test_the_application_starts_with_the_broker_down_and_connects_when_it_comes(
        tmp_path: Path) -> None:
    broker = Broker(tmp_path / 'broker')

    def script(main: Process) -> Any:
        assert not ask(main, 'mqtt', 'connected', 0.2)['connected']  # waiting for the broker
        broker.start()
        connected(main)
        op = Operator(broker.port)
        try:
            op.send(dict(PING, recipient='echo'), topic=op.topics.inbox('echo', 'r1'))
            return op.wait_for(1)[0]
        finally:
            op.close()

    try:
        reply = run_script(script, [route(broker.port, backoff=(0.05, 0.2)),
                                    (RouteEcho, {'name': 'echo'})]).outcome
    finally:
        broker.stop()
    assert reply['body']['body'] == 'hi'


def test_what_arrives_while_the_application_is_away_is_handled_when_it_is_back(
        broker: Broker) -> None:
    """The persistent session: the broker keeps the robot's mail while it is not running."""
    heads = [route(broker.port), (RouteEcho, {'name': 'echo'})]
    run_script(lambda main: connected(main), heads)  # the broker now knows the session
    op = Operator(broker.port)
    try:
        op.send(dict(PING, recipient='echo'), topic=op.topics.inbox('echo', 'r1'))
        assert op.flush(TIMEOUT)  # the broker has it, while the application is away
        run_script(lambda main: op.wait_for(1), heads)
    finally:
        op.close()
    assert [m['body']['body'] for m in op.got] == ['hi']


def test_presence_is_online_then_offline_when_the_application_is_sigkilled(
        broker: Broker, procs: Any) -> None:
    with PlainClient(broker.port, 'polycephaly/r2/status') as watcher:
        app = procs.start('r2', [sys.executable, str(APP), 'r2', str(broker.port)],
                          start_new_session=True)
        ready(app)
        assert watcher.next().payload == b'online'
        os.killpg(app.popen.pid, signal.SIGKILL)
        app.wait()
        last = watcher.next()
        assert (last.payload, last.retain) == (b'offline', False)  # (the will, live)
    with PlainClient(broker.port, 'polycephaly/r2/status') as late:
        retained = late.next()
    assert (retained.payload, retained.retain) == (b'offline', True)


def test_a_clean_stop_says_offline(broker: Broker) -> None:
    run_script(lambda main: connected(main), [route(broker.port)])
    with PlainClient(broker.port, 'polycephaly/r1/status') as late:
        assert late.next().payload == b'offline'


def test_broker_restarted_amid_1000_envelopes_each_way_every_one_arrives_once(
        broker: Broker) -> None:
    count = 1000

    def script(main: Process) -> Any:
        connected(main)
        main.add_filter(main.received.append, route='mqtt', subject='n')
        op = Operator(broker.port, client_id='op-session', backoff=(0.05, 0.2))
        restarted = threading.Event()

        def restart_midway() -> None:
            op.wait_for(count // 4, timeout=60)
            broker.restart()
            restarted.set()

        threading.Thread(target=restart_midway, daemon=True).start()
        try:
            for n in range(count):
                op.send({'sender': 'op', 'recipient': 'main', 'subject': 'n', 'body': n},
                        topic=op.topics.inbox('main', 'r1'))
                main.send('sink', 'n', n)
                main.mailman()
            until(main, lambda: restarted.is_set() and len(main.received) >= count
                  and len(op.got) >= count, timeout=60)
            return [m['body'] for m in main.received], [m['body'] for m in op.got], op.stats
        finally:
            op.close()

    heads = [route(broker.port, backoff=(0.05, 0.2), peer='op', remote=['sink'])]
    app = run_script(script, heads, threads_timeout=20)
    inbound, outbound, op_stats = app.outcome
    assert sorted(inbound) == list(range(count)), 'each envelope to the robot exactly once'
    assert sorted(outbound) == list(range(count)), 'each envelope from the robot exactly once'
    assert op_stats['connects'] >= 2  # it did see the broker go


def test_a_full_outbox_bounces_queue_full_and_keeps_the_rest_in_order(tmp_path: Path) -> None:
    broker = Broker(tmp_path / 'broker')

    def script(main: Process) -> Any:
        broker.start()  # the operator's session exists; then the broker goes
        op = Operator(broker.port, client_id='op-session', backoff=(0.05, 0.2))
        broker.stop()
        for n in range(4):
            main.send('sink', 'n', n)
        lost = main.wait_for_reply(main.send('sink', 'n', 4), TIMEOUT)
        broker.start()
        try:
            return lost, [m['body'] for m in op.wait_for(3)]
        finally:
            op.close()

    try:
        lost, arrived = run_script(script, [route(broker.port, outbox=3, peer='op',
                                                  remote=['sink'], backoff=(0.05, 0.2))]).outcome
    finally:
        broker.stop()
    assert lost['subject'] == 'error' and lost[BOUNCED_BY] == 'mqtt'
    assert 'outbox is full' in lost['body']['error']
    # The 4th and 5th found the outbox full (3 waiting for the broker) and were bounced.
    assert arrived == [0, 1, 2]


def test_an_outbox_file_keeps_what_the_broker_never_took_for_the_next_run(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker(tmp_path / 'broker')
    outbox = str(tmp_path / 'outbox.sqlite')
    broker.start()
    op = Operator(broker.port, client_id='op-session', backoff=(0.05, 0.2))
    broker.stop()
    heads = [route(broker.port, outbox_file=outbox, peer='op', remote=['sink'],
                   backoff=(0.05, 0.2))]
    try:
        run_script(lambda main: [main.send('sink', 'n', n) for n in range(3)], heads)
        assert 'closed with 3 envelopes not acknowledged' in caplog.text
        assert not op.got
        broker.start()

        def script(main: Process) -> Any:
            connected(main)
            op.wait_for(3)
        run_script(script, heads)
    finally:
        op.close()
        broker.stop()
    assert [m['body'] for m in op.got] == [0, 1, 2]


def test_a_duplicate_is_handled_once(broker: Broker) -> None:
    def script(main: Process) -> Any:
        connected(main)
        with PlainClient(broker.port, 'ops/me') as client:
            request = dict(PING, recipient='echo', messageid='m-1', threadid='t-1')
            client.publish('polycephaly/r1/echo/inbox', request, response_topic='ops/me')
            client.publish('polycephaly/r1/echo/inbox', request, response_topic='ops/me')
            first = orjson.loads(client.next().payload)
            client.publish('polycephaly/r1/echo/inbox', dict(request, messageid='m-2'),
                           response_topic='ops/me')
            second = orjson.loads(client.next().payload)
        return first, second, connected(main)['stats']['duplicates']

    first, second, duplicates = run_script(script, [route(broker.port),
                                                    (RouteEcho, {'name': 'echo'})]).outcome
    assert first['body']['body'] == second['body']['body'] == 'hi'
    assert duplicates == 1  # the second reply answers m-2, not the duplicate of m-1


@pytest.mark.parametrize('kwargs, said', [
    ({'robot': 'r 1'}, 'robot id'),
    ({'prefix': 'a/#'}, 'prefix'),
    ({'remote': ['x']}, 'peer='),
    ({'protocol': 4}, 'protocol is 3 or 5'),
    ({'outbox': 70000}, 'outbox holds'),
    ({'tls': {'ca_file': '/nonexistent'}}, 'no file'),
])
def test_bad_settings_are_one_clear_error_before_anything_starts(kwargs: dict,
                                                                 said: str) -> None:
    with pytest.raises(ConfigurationError, match=said):
        run_script(lambda main: None, [route(1883, **kwargs)])
