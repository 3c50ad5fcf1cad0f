"""Taking a head's ROS input in its own thread: batches, holding, room, closing (no DDS)."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path

import pytest

from polycephaly_ros import wire
from polycephaly_ros.inbox import Inbox
from polycephaly_ros.ros.subscriptions import BATCH, HeadSubscriptions

pytestmark = pytest.mark.fast


class Source:
    """Messages waiting in a subscription, taken one by one as rcl would hand them over."""

    def __init__(self, subscriptions: HeadSubscriptions, name: str, accept) -> None:
        self.waiting: deque = deque()
        self.subscriptions = subscriptions
        subscriptions.add(name, self.take, accept)

    def take(self):
        return self.waiting.popleft() if self.waiting else None

    def publish(self, *messages) -> None:
        self.waiting.extend(messages)
        self.subscriptions.wake()


@pytest.fixture
def inbox(tmp_path: Path):
    made = Inbox(wire.listen(os.fspath(tmp_path / 'head.sock')), threading.Semaphore(8))
    yield made
    made.close()


def test_messages_are_taken_at_the_next_poll_in_the_polling_thread(inbox):
    subs = HeadSubscriptions(inbox)
    got: list[tuple[int, int]] = []
    source = Source(subs, 'chatter', lambda m: got.append((m, threading.get_ident())) or True)
    source.publish(1, 2, 3)
    assert got == []  # nothing happens before the head polls
    inbox.poll(5.0)
    assert got == [(1, threading.get_ident()), (2, threading.get_ident()),
                   (3, threading.get_ident())]
    subs.close()


def test_a_flood_is_taken_in_batches_so_other_topics_get_their_turn(inbox):
    subs = HeadSubscriptions(inbox)
    order: list[str] = []
    flood = Source(subs, 'flood', lambda m: order.append('flood') or True)
    quiet = Source(subs, 'quiet', lambda m: order.append('quiet') or True)
    flood.publish(*range(BATCH + 10))
    quiet.publish('hello')
    inbox.poll(5.0)
    assert order.count('flood') == BATCH and order[-1] == 'quiet'
    inbox.poll(5.0)  # the rest of the flood, at the next poll
    assert order.count('flood') == BATCH + 10
    subs.close()


def test_a_message_that_cannot_be_taken_waits_and_holds_back_only_its_own_topic(inbox):
    subs = HeadSubscriptions(inbox)
    room = {'full': True}
    taken: list[str] = []

    def busy(message: str) -> bool:
        if room['full']:
            return False
        taken.append(message)
        return True

    held = Source(subs, 'held', busy)
    other = Source(subs, 'other', lambda m: taken.append(m) or True)
    held.publish('first', 'second')
    other.publish('meanwhile')
    inbox.poll(5.0)
    assert taken == ['meanwhile'] and list(held.waiting) == ['second']
    room['full'] = False
    inbox.push({'subject': 'x'})  # an envelope in the queue ...
    inbox.poll(0.0)
    inbox.get()  # ... leaves it: room, so the held message is offered again
    inbox.poll(5.0)
    assert taken == ['meanwhile', 'first', 'second']
    subs.close()


def test_look_again_later_offers_a_held_message_after_the_delay(inbox):
    subs = HeadSubscriptions(inbox)
    tries: list[str] = []
    source = Source(subs, 'later', lambda m: tries.append(m) or len(tries) > 1)
    source.publish('m')
    inbox.poll(5.0)
    assert tries == ['m']
    subs.look_again_later(0.01)
    inbox.poll(5.0)  # the timer is due ...
    inbox.poll(5.0)  # ... and its wake-up takes the message
    assert tries == ['m', 'm']
    subs.close()


def test_a_failing_callback_is_logged_and_the_head_goes_on(inbox, caplog):
    subs = HeadSubscriptions(inbox)
    got: list[int] = []

    def fragile(message: int) -> bool:
        if message == 2:
            raise ValueError('bug')
        got.append(message)
        return True

    Source(subs, 'fragile', fragile).publish(1, 2, 3)
    with caplog.at_level(logging.ERROR):
        inbox.poll(5.0)
    assert got == [1, 3] and 'could not handle a message on fragile' in caplog.text
    subs.close()


def test_close_hands_over_what_still_waits_held_one_first(inbox):
    subs = HeadSubscriptions(inbox)
    source = Source(subs, 'topic', lambda m: False)
    source.publish('a', 'b')
    inbox.poll(5.0)  # 'a' is held
    left: list[tuple[str, str]] = []
    subs.close(leftover=lambda topic, m: left.append((topic, m)))
    assert left == [('topic', 'a'), ('topic', 'b')]
    subs.wake()  # harmless once closed
