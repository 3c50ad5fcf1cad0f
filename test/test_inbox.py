"""A head's inbox: its queue, its slots, its waker, control envelopes and reading frames."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import pytest

from polycephaly_ros import wire
from polycephaly_ros.envelope import CONTROL_PREFIX
from polycephaly_ros.inbox import Inbox

pytestmark = pytest.mark.fast


class Slots(threading.Semaphore):
    """Queue slots as the bus counts them, with the count readable."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def free(self) -> int:
        return self._value


@pytest.fixture
def make_inbox(tmp_path: Path):
    made: list[Inbox] = []

    def make(size: int = 8, **options) -> tuple[Inbox, Slots, str]:
        path = os.fspath(tmp_path / f'inbox{len(made)}.sock')
        slots = Slots(size)
        inbox = Inbox(wire.listen(path), slots, **options)
        made.append(inbox)
        return inbox, slots, path

    yield make
    for inbox in made:
        inbox.close()


def _counted(inbox: Inbox, slots: Slots, envelope: dict) -> None:
    """Send as the bus does: take a slot, then push."""
    assert slots.acquire(False)
    inbox.push(envelope)


def test_a_push_from_another_thread_wakes_the_owner_waiting_for_mail(make_inbox):
    inbox, _, _ = make_inbox()
    got: list[str] = []

    def owner() -> None:
        if inbox.poll(30.0):  # much longer than the test's timeout: only the push ends it
            got.append(inbox.get()['subject'])

    thread = threading.Thread(target=owner)
    thread.start()
    try:
        inbox.push({'subject': 'ping'}, 0)
        thread.join(10)
        assert not thread.is_alive() and got == ['ping']
    finally:
        inbox.wake()
        thread.join(5)


def test_fifo_order_and_every_slot_given_back_as_envelopes_leave(make_inbox):
    inbox, slots, _ = make_inbox(size=3)
    for i in range(3):
        _counted(inbox, slots, {'subject': 'item', 'body': i})
    assert slots.free() == 0
    inbox.poll(0.0)
    assert [inbox.get()['body'] for _ in range(3)] == [0, 1, 2]
    assert slots.free() == 3 and inbox.get() is None


def test_priority_queue_lowest_first_then_arrival_order(make_inbox):
    inbox, slots, _ = make_inbox(priority=True)
    for body, priority in [('c', 5), ('a', 1), ('d', 5), ('none', None), ('b', 1)]:
        envelope = {'subject': 'item', 'body': body}
        if priority is not None:
            envelope['priority'] = priority
        _counted(inbox, slots, envelope)
    inbox.poll(0.0)
    assert [e['body'] for e in inbox.queued()] == ['none', 'a', 'b', 'c', 'd']
    assert inbox.take(lambda e: e['body'] == 'c')['body'] == 'c'
    assert [inbox.get()['body'] for _ in range(4)] == ['none', 'a', 'b', 'd']
    assert slots.free() == slots.size


def test_take_picks_the_first_match_and_leaves_the_rest_in_order(make_inbox):
    inbox, slots, _ = make_inbox()
    for body in ['x', 'reply', 'y']:
        _counted(inbox, slots, {'subject': body, 'body': body})
    inbox.poll(0.0)
    assert inbox.take(lambda e: e['subject'] == 'reply')['body'] == 'reply'
    assert inbox.take(lambda e: e['subject'] == 'nothing') is None
    assert [e['body'] for e in inbox.queued()] == ['x', 'y']


def test_when_room_calls_back_once_when_an_envelope_leaves(make_inbox):
    inbox, slots, _ = make_inbox()
    calls: list[int] = []
    _counted(inbox, slots, {'subject': 'a'})
    _counted(inbox, slots, {'subject': 'b'})
    inbox.poll(0.0)
    inbox.when_room(lambda: calls.append(len(inbox)))
    inbox.get()
    inbox.get()
    assert calls == [1]  # once, at the first envelope that left


def test_control_envelopes_skip_the_queue_and_only_from_the_internal_route(make_inbox, caplog):
    controls: list[str] = []
    inbox, slots, _ = make_inbox(poison_pill='STOP!', on_control=lambda e: controls.append(
        e['subject']))
    _counted(inbox, slots, {'subject': 'STOP!'})
    _counted(inbox, slots, {'subject': CONTROL_PREFIX + 'born'})
    _counted(inbox, slots, {'subject': 'STOP!', 'route': 'uds', 'sender': 'intruder'})
    _counted(inbox, slots, {'subject': 'stop!'})  # not the pill: the pill is exact
    assert inbox.poll(0.0)
    assert controls == ['STOP!', CONTROL_PREFIX + 'born']
    assert [e['subject'] for e in inbox.queued()] == ['stop!']
    assert slots.free() == slots.size - 1  # the controls gave their slots back
    assert "refused control subject 'STOP!' that arrived on route 'uds'" in caplog.text


def test_frames_written_to_the_socket_are_read_in_order(make_inbox):
    inbox, _, path = make_inbox()
    sender = wire.connect(path, 'head')
    try:
        data = b''.join(wire.frame(pickle.dumps({'subject': 'n', 'body': i}), 0)
                        for i in range(100))
        wire.send_within(sender, data[:1000], 5.0)  # a frame cut in two on the way
        wire.send_within(sender, data[1000:], 5.0)
        got: list[int] = []
        while len(got) < 100:
            inbox.poll(5.0)
            while (envelope := inbox.get()) is not None:
                got.append(envelope['body'])
        assert got == list(range(100))
    finally:
        sender.close()


def test_close_is_idempotent_and_a_late_wake_is_harmless(make_inbox):
    inbox, _, _ = make_inbox()
    inbox.close()
    inbox.close()
    inbox.wake()  # e.g. die() from another thread after the head ended


def test_a_large_envelope_is_read_straight_into_its_own_buffer(make_inbox):
    inbox, _, path = make_inbox()
    sender = wire.connect(path, 'head')
    body = os.urandom(1 << 20) * 20  # 20 MiB: far more than one read
    thread = threading.Thread(target=wire.send_frame, args=(
        sender, pickle.dumps({'subject': 'big', 'body': body}, 5), 0, 30.0))
    thread.start()
    try:
        while not inbox.poll(10.0):
            pass
        assert inbox.get()['body'] == body
    finally:
        thread.join(30)
        sender.close()
