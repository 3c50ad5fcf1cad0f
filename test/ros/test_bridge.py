"""The ROS bridge: heads' inbox topics, plain ROS peers, two applications, bad input, bursts."""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

import pytest

from harness import ask, run_ros_script, until
from ros_app import RosEcho
from ros_peer import HERE, PeerProcess
from polycephaly_ros import NotSerializable, RecipientUnavailable, UnknownRecipient, \
    message_filter
from polycephaly_ros.throttle import Throttle


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_plain_ros_peer_sends_typed_envelopes_and_gets_replies(mode, leftover_processes):
    def script(main):
        with PeerProcess('peer', '/robot') as peer:
            peer.command(cmd='send', to='echo', mode='typed',
                         envelope={'subject': 'ping', 'body': {'n': 1, 'list': [1, 2]},
                                   'threadid': 'thread-a', 'threadindex': 3,
                                   'headers': {'acme': 123}})
            return peer.received(lambda e: e['threadid'] == 'thread-a')

    reply = run_ros_script(script, [(RosEcho, {'name': 'echo', 'mode': mode})],
                       namespace='/robot').outcome
    assert reply['sender'] == 'echo' and reply['recipient'] == 'peer'
    assert reply['threadindex'] == 4 and reply['subject'] == 'reply'
    assert reply['body'] == {'echo': {'n': 1, 'list': [1, 2]}, 'route': 'ros', 'head': 'echo'}
    assert reply['headers'] == {'acme': 123}  # extra headers are echoed, as on every route
    leftover_processes()


def test_plain_ros_peer_sends_json_on_the_string_topic():
    def script(main):
        got = []
        main.add_filter(got.append, route='ros', subject='hello')
        with PeerProcess('jsonpeer', '/robot') as peer:
            peer.command(cmd='send', to='main', mode='json',
                         envelope={'subject': 'hello', 'body': [1, 'two'], 'threadid': 'json-1'})
            arrived = until(main, lambda: got)
            main.reply(arrived[0], {'seen': arrived[0]['route']})
            return arrived[0], peer.received(lambda e: e['threadid'] == 'json-1')

    envelope, reply = run_ros_script(script, namespace='/robot').outcome
    assert envelope['route'] == 'ros' and envelope['sender'] == 'jsonpeer'
    assert envelope['body'] == [1, 'two'] and envelope['threadindex'] == 1
    assert reply['body'] == {'seen': 'ros'} and reply['threadindex'] == 2
    assert reply['sender'] == 'main'


def test_a_json_only_client_gets_its_replies_on_its_json_inbox():
    def script(main):
        got = []
        main.add_filter(got.append, route='ros', subject='hello')
        with PeerProcess('textonly', '/robot', inbox='json') as peer:
            peer.command(cmd='send', to='main', mode='json',
                         envelope={'subject': 'hello', 'body': 'hi', 'threadid': 'text-1',
                                   'colour': 'blue'})
            arrived = until(main, lambda: got)
            main.reply(arrived[0], {'seen': arrived[0]['body']})
            return peer.received(lambda e: e['threadid'] == 'text-1')

    reply = run_ros_script(script, namespace='/robot').outcome
    assert (reply['sender'], reply['recipient'], reply['subject']) == ('main', 'textonly', 'reply')
    assert reply['body'] == {'seen': 'hi'} and reply['threadindex'] == 2
    assert reply['colour'] == 'blue'  # extra headers echoed, at the top level as on the way in


def test_a_head_gets_its_ros_mail_while_the_executor_is_stuck_in_a_callback():
    def script(main):
        entered, release = threading.Event(), threading.Event()

        def stuck() -> None:  # a slow callback elsewhere in the process
            entered.set()
            release.wait(30)

        timer = main.node.create_timer(0.01, stuck)
        try:
            assert entered.wait(10), 'the executor never ran the timer'
            with PeerProcess('peer', '/robot') as peer:
                peer.command(cmd='send', to='echo', mode='typed',
                             envelope={'subject': 'ping', 'body': 7, 'threadid': 'stuck-1'})
                reply = peer.received(lambda e: e['threadid'] == 'stuck-1')
                return reply, release.is_set()
        finally:
            release.set()
            main.node.destroy_timer(timer)

    reply, released = run_ros_script(script, [(RosEcho, {'name': 'echo'})],
                                 namespace='/robot').outcome
    assert reply['body'] == {'echo': 7, 'route': 'ros', 'head': 'echo'}
    assert not released  # answered while the executor thread was still busy


HOLD = threading.Event()


class StoppingEcho(RosEcho):
    """On 'hold_and_stop': answer, start stopping, and stay busy until HOLD is set."""

    @message_filter(subject='hold_and_stop')
    def hold_and_stop(self, message: dict) -> None:
        self.reply(message, 'holding')
        self.die()
        HOLD.wait(30)


def test_every_envelope_waiting_for_a_stopping_head_gets_a_reply_or_an_error():
    count = 6  # three times the queue

    def script(main):
        from rclpy.duration import Duration

        from polycephaly_ros import envelope as env
        from polycephaly_ros.msg import Envelope
        from polycephaly_ros.ros import convert
        from polycephaly_ros.ros.topics import inbox_qos

        answers = []  # to an outside name's inbox: taken by main's node (executor thread)
        main.node.create_subscription(Envelope, 'polycephaly/outsider/inbox',
                                      lambda m: answers.append(convert.from_message(m)),
                                      inbox_qos())
        pub = main.node.create_publisher(Envelope, 'polycephaly/echo/inbox', inbox_qos())
        until(main, lambda: pub.get_subscription_count() > 0, timeout=20)
        HOLD.clear()
        assert ask(main, 'echo', 'hold_and_stop') == 'holding'  # busy, and stopping after
        for i in range(count):
            pub.publish(convert.to_message(env.make('outsider', 'echo', 'ping', i,
                                                    threadid=f'stop-{i}')))
        assert pub.wait_for_all_acked(Duration(seconds=20))  # all in the head's subscription
        HOLD.set()
        return until(main, lambda: answers if len(answers) >= count else None, timeout=20)

    answers = run_ros_script(script, [(StoppingEcho, {'name': 'echo'})], namespace='/robot',
                             queue_size=2).outcome
    assert sorted(a['threadid'] for a in answers) == [f'stop-{i}' for i in range(count)]
    replies = [a for a in answers if a['subject'] == 'reply']
    errors = [a for a in answers if a['subject'] == 'error']
    # Still in the subscription when the head began to stop, so not accepted: every one is
    # answered with an error (a reply only for those its queue held already).
    assert errors and len(replies) + len(errors) == count
    assert all("head 'echo' has stopped" in e['body']['error'] for e in errors)


class _App:
    """A second application (test/ros_app.py) in a subprocess."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'ros_app.py'), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED='1', ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST'))
        self.output = ''
        deadline = time.monotonic() + 30
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while 'ready\n' not in self.output:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f'second application not ready:\n{self.output}'
                if sel.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 65536).decode(errors='replace')
                    assert chunk, f'second application ended:\n{self.output}'
                    self.output += chunk

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate(timeout=5)
        self.output += rest.decode(errors='replace')
        return self.proc.returncode


def test_two_applications_talk_by_head_name_with_wait_for_reply(leftover_processes):
    def script(main):
        other = _App('--namespace', '/xapp', '--main', 'bmain', '--head', 'bravo:process',
                     '--head', 'charlie')
        try:
            here_to_there = ask(main, 'bravo', 'ping', 'hello', timeout=20)
            # charlie (there) sends to alpha (here) and waits for its reply, then answers us.
            there_and_back = ask(main, 'charlie', 'call',
                                 {'to': 'alpha', 'subject': 'ping', 'body': 'back'}, timeout=20)
            sent = main.send('bravo', 'ping', 'thread kept')
            reply = main.wait_for_reply(sent, 20)
        finally:
            code = other.stop()
        return here_to_there, there_and_back, sent, reply, code, other.output

    here_to_there, there_and_back, sent, reply, code, output = run_ros_script(
        script, [(RosEcho, {'name': 'alpha', 'mode': 'process'})], namespace='/xapp',
        send_timeout=10).outcome
    assert here_to_there == {'echo': 'hello', 'route': 'ros', 'head': 'bravo'}
    assert there_and_back == {'answer': {'echo': 'back', 'route': 'ros', 'head': 'alpha'},
                              'from': 'alpha', 'route': 'ros'}
    assert reply['threadid'] == sent['threadid'] and reply['threadindex'] == sent['threadindex'] + 1
    assert reply['messageid'] != sent['messageid'] and reply['route'] == 'ros'
    assert code == 0, output
    leftover_processes()


def test_malformed_input_from_the_graph_is_answered_with_errors_and_refused(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger='polycephaly_ros.ros.bridge')
    monkeypatch.setattr(Throttle, 'burst', 100)  # (every refusal's line, not the first five)
    pill = 'STOP-NOW'

    def script(main):
        with PeerProcess('badpeer', '/robot') as peer:
            sends = [
                ('json', {'text': '{"sender": "badpeer", bad json'}),
                ('json', {'text': '[1, 2]'}),
                ('json', {'envelope': {'recipient': 'echo', 'subject': 'ping',
                                       'threadid': 'c-types', 'threadindex': 'two'}}),
                ('json', {'text': '{"sender": "badpeer", "subject": "ping", "threadid": "c-norec"}'}),
                ('json', {'envelope': {'subject': pill, 'threadid': 'c-pill'}}),
                ('json', {'envelope': {'subject': 'polycephaly.exited', 'threadid': 'c-ctl'}}),
                ('typed', {'envelope': {'subject': pill, 'threadid': 't-pill'}}),
                ('typed', {'envelope': {'subject': 'polycephaly.ebrake', 'threadid': 't-ctl'}}),
                ('typed', {'fields': {'sender': 'badpeer', 'recipient': 'echo', 'subject': 'ping',
                                      'threadid': 't-body', 'body_json': '{oops'}}),
                ('typed', {'fields': {'sender': 'badpeer', 'subject': 'ping',
                                      'threadid': 't-norec'}}),
                ('typed', {'fields': {'sender': 'badpeer', 'recipient': 'someone', 'subject': 'x',
                                      'threadid': 't-other'}}),
                ('typed', {'fields': {'sender': 'badpeer', 'recipient': 'echo', 'subject': 'x',
                                      'threadid': 't-hdr', 'headers_json': '{"threadid": 5}'}}),
            ]
            for mode, what in sends:
                peer.command(cmd='send', to='echo', mode=mode, **what)
            errors = {}
            for thread in ('c-types', 'c-norec', 'c-pill', 'c-ctl', 't-pill', 't-ctl', 't-body',
                           't-norec', 't-other', 't-hdr'):
                errors[thread] = peer.received(lambda e, t=thread: e['threadid'] == t)
            # A bad frame in a head's name is answered to nobody: no error is aimed at main.
            peer.command(cmd='send', to='echo', mode='typed',
                         fields={'sender': 'MAIN', 'recipient': 'echo', 'subject': 'ping',
                                 'threadid': 't-spoof', 'body_json': '{oops'})
            # The application still works: a good envelope is answered, also at the last index.
            peer.command(cmd='send', to='echo', mode='typed',
                         envelope={'subject': 'ping', 'body': 'still here', 'threadid': 'good'})
            peer.command(cmd='send', to='echo', mode='typed',
                         envelope={'subject': 'ping', 'threadid': 'last', 'threadindex': 2**32 - 1})
            good = peer.received(lambda e: e['threadid'] == 'good')
            last = peer.received(lambda e: e['threadid'] == 'last')
            status = main.application.status()
            # An error aimed at main would have come back on its inbox topic by now (published
            # before echo's replies): main takes nothing from the graph, so it would be unmatched.
            main.mailman()
            return errors, good, last, status, main.unmatched

    errors, good, last, status, unmatched = run_ros_script(
        script, [(RosEcho, {'name': 'echo'})], namespace='/robot', ppill=pill).outcome
    assert unmatched == 0
    assert last['subject'] == 'reply' and last['threadindex'] == 2**32 - 1  # (kept: a uint32)
    for thread, error in errors.items():
        assert error['subject'] == 'error' and error['sender'] == 'polycephaly', thread
        assert error['recipient'] == 'badpeer', thread
    why = {t: e['body']['error'] for t, e in errors.items()}
    assert "'threadindex'" in why['c-types'] and "'recipient'" in why['c-norec']
    assert 'control subject' in why['c-pill'] and 'control subject' in why['c-ctl']
    assert 'control subject' in why['t-pill'] and 'control subject' in why['t-ctl']
    assert 'body_json' in why['t-body'] and "'recipient'" in why['t-norec']
    assert "'someone' is not 'echo'" in why['t-other'] and 'threadid' in why['t-hdr']
    assert errors['c-types']['threadindex'] == 1 and errors['t-body']['threadindex'] == 2
    assert good['body'] == {'echo': 'still here', 'route': 'ros', 'head': 'echo'}
    assert [s['state'] for s in status] == ['running']
    warnings = [r.getMessage() for r in caplog.records if r.name == 'polycephaly_ros.ros.bridge']
    assert any('malformed JSON' in w and 'no error reply' in w for w in warnings), warnings
    assert any('must be a JSON object' in w for w in warnings), warnings


def test_sending_to_a_name_nobody_subscribes_fails_within_the_send_timeout():
    def script(main):
        started = time.monotonic()
        with pytest.raises(RecipientUnavailable) as unavailable:
            main.send('nobody', 'hello')
        assert isinstance(unavailable.value, UnknownRecipient)
        elapsed = time.monotonic() - started
        with pytest.raises(NotSerializable, match="'body'"):
            main.send('nobody', 'hello', {1, 2})
        with pytest.raises(UnknownRecipient, match='ROS inbox topic'):
            main.send('no body', 'hello')
        return str(unavailable.value), elapsed

    message, elapsed = run_ros_script(script, namespace='/robot', send_timeout=1.0).outcome
    assert '/robot/polycephaly/nobody/inbox' in message and 'within 1 s' in message
    assert 1.0 <= elapsed < 10  # waits the send timeout for a subscriber, then gives up


def test_a_burst_from_a_peer_arrives_complete_and_in_order(leftover_processes):
    count = 2000

    def script(main):
        with PeerProcess('burster', '/robot') as peer:
            peer.command(cmd='burst', to='sink', count=count, subject='item')
            peer.wait_for(lambda e: e['event'] in ('sent', 'error'), timeout=40)
            report = {}

            def complete():
                report.update(ask(main, 'sink', 'report'))
                return report['count'] >= count
            until(main, complete, timeout=30)
            return report, peer.events[-1]

    report, last = run_ros_script(script, [(RosEcho, {'name': 'sink', 'mode': 'process'})],
                              namespace='/robot', queue_size=100).outcome
    assert last == {'event': 'sent', 'count': count}
    assert report == {'count': count, 'in_order': True, 'unique': count}
    leftover_processes()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_incompatible_qos_from_a_peer_is_logged_as_an_error(caplog):
    caplog.set_level(logging.ERROR, logger='polycephaly_ros.ros.bridge')

    def script(main):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from polycephaly_ros.msg import Envelope

        main.node.create_publisher(Envelope, 'polycephaly/echo/inbox',
                                   QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))

        def reported():
            return [r.getMessage() for r in caplog.records if 'incompatible QoS' in r.getMessage()]
        return until(main, reported, timeout=15)

    messages = run_ros_script(script, [(RosEcho, {'name': 'echo'})], namespace='/robot').outcome
    assert any('/robot/polycephaly/echo/inbox' in m and 'RELIABILITY' in m for m in messages)
