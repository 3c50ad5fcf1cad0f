"""A head's mail: sending, replying, waiting and queueing between heads, with their errors."""

import threading
import time

import pytest

from harness import ask, run_script, until
from heads import Blocked, Burst, Echo, Sink
from polycephaly_ros import (EnvelopeError, NoReply, NotSerializable, Process, QueueFull,
                             RecipientUnavailable, UnknownRecipient)


def test_a_thread_head_gets_a_copy_the_sender_cannot_change_afterwards():
    def script(main):
        body = {'items': [1]}
        request = main.send('echo', 'ping', body)
        body['items'].append(2)  # after send: the echo head must not see this
        return main.wait_for_reply(request, timeout=10)['body'], request['body']

    got, sent = run_script(script, [(Echo, {'mode': 'thread'})]).outcome
    assert got == {'items': [1]} and sent == {'items': [1, 2]}


@pytest.mark.parametrize('mode', ['thread', 'process', 'Thread', 'PROCESS'])
def test_send_and_reply_across_modes(mode):
    def script(main):
        request = main.send('echo', 'ping', {'n': 1}, acme=7)
        reply = main.wait_for_reply(request, timeout=10)
        return request, reply

    app = run_script(script, [(Echo, {'mode': mode})])
    request, reply = app.outcome
    assert reply['body'] == {'n': 1} and reply['sender'] == 'echo' and reply['acme'] == 7
    assert reply['threadid'] == request['threadid'] and reply['threadindex'] == 2
    assert app.exit_code == 0


def test_recipient_names_are_case_insensitive():
    app = run_script(lambda main: ask(main, 'ECHO', 'ping', 'x'), [(Echo, {'name': 'Echo'})])
    assert app.outcome == 'x'


def test_unknown_recipient_fails_at_send_naming_it():
    def script(main):
        with pytest.raises(UnknownRecipient, match="'nobody'.*heads: echo, main"):
            main.send('nobody', 'ping')
        return True

    assert run_script(script, [(Echo, {})]).outcome


def test_envelope_that_cannot_cross_a_process_fails_at_send():
    def script(main):
        with pytest.raises(NotSerializable, match="'echo'.*'ping'"):
            main.send('echo', 'ping', lambda: None)
        with pytest.raises(NotSerializable):
            main.send('echo', 'ping', None, handle=threading.Lock())
        return ask(main, 'echo', 'ping', 'still fine')

    assert run_script(script, [(Echo, {'mode': 'process'})]).outcome == 'still fine'


def test_reserved_subjects_and_bad_priority_are_refused():
    def script(main):
        with pytest.raises(EnvelopeError, match='reserved'):
            main.send('echo', 'polycephaly.exited')
        with pytest.raises(EnvelopeError, match='priority'):
            main.send('echo', 'ping', priority='high')
        return True

    assert run_script(script, [(Echo, {})]).outcome


def test_full_queue_fails_after_a_bounded_wait_and_loses_nothing():
    gate = threading.Event()

    def script(main):
        for i in range(5):
            main.send('blocked', 'item', i)
        started = time.monotonic()
        with pytest.raises(QueueFull, match="'blocked'.*5 envelopes"):
            main.send('blocked', 'item', 5, timeout=0.3)
        waited = time.monotonic() - started
        gate.set()
        return waited, ask(main, 'blocked', 'report')

    # The send timeout of the application (60 s) is what a send without timeout= would wait.
    app = run_script(script, [(Blocked, {'gate': gate})], queue_size=5, send_timeout=60)
    waited, report = app.outcome
    assert 0.3 <= waited < 30
    assert report['items'] == [0, 1, 2, 3, 4]


def test_mailman_handles_every_waiting_envelope_in_one_call():
    gate = threading.Event()

    def script(main):
        for i in range(50):
            main.send('blocked', 'item', i)
        gate.set()
        until(main, lambda: main.received)
        return main.received[0]['body'], ask(main, 'blocked', 'report')

    batch, report = run_script(script, [(Blocked, {'gate': gate})]).outcome
    assert batch == 50
    assert report['items'] == list(range(50))


def test_priority_queue_serves_lowest_priority_first_then_in_arrival_order():
    gate = threading.Event()

    def script(main):
        for body, priority in [('c', 5), ('a', 1), ('d', 5), ('b', 1), ('z', 9)]:
            main.send('blocked', 'item', body, priority=priority)
        main.send('blocked', 'item', 'no-priority')  # counts as 0
        report = main.send('blocked', 'report', priority=100)
        gate.set()
        return main.wait_for_reply(report)['body']

    report = run_script(script, [(Blocked, {'gate': gate})], queue_type='Priority').outcome
    assert report['items'] == ['no-priority', 'a', 'b', 'c', 'd', 'z']


def test_wait_for_reply_keeps_other_mail_for_the_mailman_and_ignores_forgeries():
    class Chatty(Process):
        def birth(self):
            self.add_filter(self.request, subject='request')

        def request(self, message):
            self.send(message['sender'], 'noise', 1)
            forged = dict(message, sender='chatty')  # right thread, but from the wrong head
            self.send('main', 'noise', 2, forged_thread=forged['threadid'])
            self.reply(message, 'answer')

    def script(main):
        reply = main.wait_for_reply(main.send('chatty', 'request'), timeout=10)
        queued = [e['body'] for e in main.runtime.inbox.queued()]
        main.mailman()
        return reply['body'], queued, [e['body'] for e in main.received]

    body, queued, received = run_script(script, [(Chatty, {})]).outcome
    assert body == 'answer'
    assert queued == [1, 2]
    assert received == [1, 2]


def test_wait_for_reply_times_out_with_a_clear_no_reply():
    def script(main):
        started = time.monotonic()
        with pytest.raises(NoReply, match=r"no reply from 'sink' to 'item' \(thread .*\) within 0.3 s"):
            main.wait_for_reply(main.send('sink', 'item', 1), timeout=0.3)
        return time.monotonic() - started

    assert 0.3 <= run_script(script, [(Sink, {})]).outcome < 5  # the default would be 10 s


def test_mail_wakes_a_slow_head_at_once():
    def script(main):
        started = time.monotonic()
        answer = ask(main, 'echo', 'ping', 'fast')
        return answer, time.monotonic() - started

    # life() runs once a minute, but mail is handled as soon as it arrives
    answer, elapsed = run_script(script, [(Echo, {'mode': 'process', 'frequency': 1 / 60})]).outcome
    assert answer == 'fast' and elapsed < 30


def test_unmatched_envelopes_are_counted_and_logged(caplog):
    def script(main):
        main.remove_filter(next(iter(main._filters)))  # drop the harness catch-all
        main.send('main', 'nobody-listens', 1)
        until(main, lambda: main.unmatched)
        return main.unmatched

    assert run_script(script).outcome == 1
    assert 'no filter matched envelope' in caplog.text and 'nobody-listens' in caplog.text


def test_sending_to_a_stopped_head_fails():
    def script(main):
        main.application.stop('echo')
        with pytest.raises(RecipientUnavailable, match="'echo' is not running"):
            main.send('echo', 'ping')
        main.application.start('echo')
        return ask(main, 'echo', 'ping', 'back')

    assert run_script(script, [(Echo, {'mode': 'process'})]).outcome == 'back'


@pytest.mark.timeout(180)
def test_a_burst_between_two_process_heads_is_complete_in_order_exactly_once():
    count = 20000

    def script(main):
        go = main.send('burst', 'go', {'count': count, 'to': 'sink'})
        assert main.wait_for_reply(go, timeout=120)['body'] == 'sent'
        report = main.send('sink', 'report', 'all')
        return main.wait_for_reply(report, timeout=60)['body']

    report = run_script(script, [(Burst, {'mode': 'process'}), (Sink, {'mode': 'process'})],
                        queue_size=100).outcome
    assert report['count'] == count
    assert report['items'] == list(range(count))


@pytest.mark.parametrize('mode', ['thread', 'process'])
def test_a_filter_that_raises_is_answered_with_an_error_and_the_head_goes_on(mode, caplog):
    def script(main):
        failed = main.wait_for_reply(main.send('echo', 'crash', 'bad input'), timeout=10)
        still = ask(main, 'echo', 'ping', 'still here')
        return failed, still, main.application.status()[0]

    failed, still, status = run_script(script, [(Echo, {'mode': mode})]).outcome
    assert failed['subject'] == 'error' and failed['sender'] == 'echo'
    assert failed['body'] == {'error': "'crash' failed in head 'echo': RuntimeError"}
    assert 'Traceback' not in str(failed)  # the traceback stays inside, in the log
    assert still == 'still here'
    assert status['state'] == 'running' and status['exits'] == 0 and status['errors'] == 1
    if mode == 'thread':  # (a process head logs in its own process)
        assert 'asked to crash: bad input' in caplog.text


@pytest.mark.timeout(120)
def test_two_hundred_megabytes_cross_to_a_process_head_within_the_send_timeout():
    size = 200 << 20

    def script(main):
        body = b'x' * size
        started = time.monotonic()
        request = main.send('echo', 'size', body)  # raised QueueFull from 50 MB on, before
        sent = time.monotonic() - started
        reply = main.wait_for_reply(request, timeout=60)
        return sent, time.monotonic() - started, reply['body']

    sent, answered, length = run_script(script, [(Echo, {'mode': 'process'})],
                                        send_timeout=2.0).outcome
    print(f'\n200 MB to a process head: send() returned after {sent:.2f} s, answered after '
          f'{answered:.2f} s')
    assert length == size and sent < 2.0


def test_an_envelope_over_max_envelope_fails_at_send_naming_the_limit():
    def script(main):
        with pytest.raises(EnvelopeError, match=r"'echo'.*max_envelope=1000"):
            main.send('echo', 'size', b'x' * 2000)
        return ask(main, 'echo', 'size', b'x' * 100)

    assert run_script(script, [(Echo, {'mode': 'process'})], max_envelope=1000).outcome == 100
