"""The bus inside one process: copies between thread heads; waking a head from another thread."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

from harness import run_script
from heads import Echo
from polycephaly_ros.inbox import Inbox
from polycephaly_ros.wire import listen


def test_a_thread_head_gets_a_copy_the_sender_cannot_change_afterwards():
    def script(main):
        body = {'items': [1]}
        request = main.send('echo', 'ping', body)
        body['items'].append(2)  # after send: the echo head must not see this
        return main.wait_for_reply(request, timeout=10)['body'], request['body']

    got, sent = run_script(script, [(Echo, {'mode': 'thread'})]).outcome
    assert got == {'items': [1]} and sent == {'items': [1, 2]}


def _inbox(tmp_path: Path) -> Inbox:
    return Inbox(listen(os.fspath(tmp_path / 'inbox')), multiprocessing.Semaphore(8))


def test_a_push_from_another_thread_wakes_the_head_waiting_for_mail(tmp_path: Path):
    inbox = _inbox(tmp_path)
    got: list[str] = []

    def head() -> None:
        if inbox.poll(30.0):  # much longer than the test's timeout: only the push ends it
            got.append(inbox.get()['subject'])

    owner = threading.Thread(target=head)
    owner.start()
    try:
        inbox.push({'subject': 'ping'}, 0)
        owner.join(10)
        assert not owner.is_alive() and got == ['ping']
    finally:
        inbox.wake()
        owner.join(5)
        inbox.close()


def test_call_later_runs_when_due_and_ends_a_poll_that_would_wait_for_ever(tmp_path: Path):
    inbox = _inbox(tmp_path)
    calls: list[str] = []
    try:
        inbox.call_later(0.5, lambda: calls.append('second'))
        inbox.call_later(0.0, lambda: calls.append('first'))
        inbox.poll(0.0)
        assert calls == ['first']  # the later one is not due yet
        inbox.poll(None)  # would wait for ever without a callback due
        assert calls == ['first', 'second']
    finally:
        inbox.close()
