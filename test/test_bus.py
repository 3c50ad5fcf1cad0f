"""The bus inside one process: copies between thread heads, and handing off to an idle head."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

from harness import run_script
from heads import Echo
from polycephaly_ros.bus import Inbox, listen


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


def test_a_push_to_an_idle_head_is_handled_before_the_pusher_goes_on(tmp_path: Path):
    inbox = _inbox(tmp_path)
    handled = threading.Event()
    order: list[str] = []

    def head() -> None:
        while not inbox.poll(5.0):  # idle, waiting for mail
            pass
        order.append(inbox.get()['subject'])
        inbox.settle()

    owner = threading.Thread(target=head)
    owner.start()
    try:
        # The owner reaching its wait has no event to wait on: look until it is there.
        deadline = time.monotonic() + 5.0
        while not inbox.idle:
            assert time.monotonic() < deadline, 'the owner never waited for mail'
            time.sleep(0.001)
        inbox.push({'subject': 'ping'}, 0, handled)
        assert handled.wait(5.0)
        order.append('pusher')
    finally:
        owner.join(5)
        inbox.close()
    assert order == ['ping', 'pusher']


def test_a_push_to_a_busy_head_does_not_hold_the_pusher(tmp_path: Path):
    inbox = _inbox(tmp_path)
    handled = threading.Event()
    try:
        inbox.push({'subject': 'ping'}, 0, handled)  # nobody polls: the owner is busy
        assert handled.is_set()
        assert inbox.poll(0.0) and inbox.get()['subject'] == 'ping'
    finally:
        inbox.close()
