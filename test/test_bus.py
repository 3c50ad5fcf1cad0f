"""The routing table and the one admission into an inbox, with a directory made by hand."""

from __future__ import annotations

import os
import multiprocessing
from pathlib import Path

import pytest

from polycephaly_ros import (NotSerializable, QueueFull, RecipientUnavailable, UnknownRecipient,
                             wire)
from polycephaly_ros.bus import Bus
from polycephaly_ros.directory import Address, Directory
from polycephaly_ros.inbox import Inbox

pytestmark = pytest.mark.fast


class Application:
    """Heads 'main' and 'echo' (each with an inbox here) and route head 'uds' reaching 'status'."""

    def __init__(self, tmp_path: Path, queue_size: int = 4) -> None:
        names = ['main', 'echo', 'uds']
        self.listeners = {n: wire.listen(os.fspath(tmp_path / f'{n}.sock')) for n in names}
        addresses = {n: Address(n, os.fspath(tmp_path / f'{n}.sock'),
                                multiprocessing.BoundedSemaphore(queue_size), i, queue_size)
                     for i, n in enumerate(names)}
        self.directory = Directory(addresses, bytearray([1, 1, 1]), frozenset({'uds'}),
                                   {'status': 'uds'})
        self.inboxes = {n: Inbox(self.listeners[n], addresses[n].slots) for n in names}
        self.bus = Bus(self.directory, send_timeout=0.2)

    def mail(self, name: str, wait: float = 0.0) -> list[dict]:
        inbox = self.inboxes[name]
        inbox.poll(wait)
        got = []
        while (envelope := inbox.get()) is not None:
            got.append(envelope)
        return got

    def close(self) -> None:
        self.bus.close()
        for inbox in self.inboxes.values():
            inbox.close()
        for sock in self.listeners.values():
            sock.close()


@pytest.fixture
def app(tmp_path: Path):
    made = Application(tmp_path)
    yield made
    made.close()


def envelope(recipient: str, body: object = None, **headers: object) -> dict:
    return {'sender': 'main', 'recipient': recipient, 'subject': 's', 'body': body, **headers}


def test_a_head_of_this_process_gets_a_copy_straight_in_its_inbox(app):
    app.bus.attach_inbox('echo', app.inboxes['echo'])
    sent = envelope('echo', {'items': [1]})
    app.bus.post(sent)
    sent['body']['items'].append(2)  # after the send: the recipient must not see it
    assert [e['body'] for e in app.mail('echo')] == [{'items': [1]}]


def test_a_handed_over_envelope_is_queued_itself(app):
    app.bus.attach_inbox('echo', app.inboxes['echo'])
    sent = envelope('echo')
    app.bus.post(sent, handover=True)
    assert app.mail('echo')[0] is sent


def test_a_head_of_another_process_is_reached_through_its_socket(app):
    app.bus.post(envelope('echo', 'over the wire'))  # no inbox attached: another process
    assert [e['body'] for e in app.mail('echo', wait=5.0)] == ['over the wire']


def test_an_outside_name_goes_to_the_route_head_by_via_or_remote_name(app):
    taken: list[dict] = []
    app.bus.add_route('uds', lambda e: taken.append(e) or True)
    app.bus.post(envelope('anyone', 1, via='uds'))
    app.bus.post(envelope('status', 2))  # listed as remote: no via needed
    assert [e['body'] for e in taken] == [1, 2]
    app.bus.remove_route('uds')
    app.bus.post(envelope('status', 3))  # no direct route: into the route head's inbox
    assert [e['body'] for e in app.mail('uds', wait=5.0)] == [3]


def test_a_route_that_cannot_send_from_this_thread_gets_it_in_its_inbox(app):
    app.bus.add_route('uds', lambda e: False)
    app.bus.post(envelope('status', 'later'))
    assert [e['body'] for e in app.mail('uds', wait=5.0)] == ['later']


def test_other_names_go_to_the_ros_bridge_or_are_unknown(app):
    with pytest.raises(UnknownRecipient, match=r"'nobody'.*heads: echo, main, uds"):
        app.bus.post(envelope('nobody'))
    with pytest.raises(UnknownRecipient):  # via must name a route head, not any head
        app.bus.post(envelope('nobody', via='echo'))
    published: list[dict] = []
    app.bus.set_ros_bridge(lambda envelope, patient: published.append(envelope))
    app.bus.post(envelope('nobody', 'to the graph'))
    assert [e['body'] for e in published] == ['to the graph']
    with pytest.raises(UnknownRecipient):  # control envelopes never leave the application
        app.bus.post(envelope('nobody'), control=True)


def test_a_stopped_head_takes_control_envelopes_only(app):
    app.bus.attach_inbox('echo', app.inboxes['echo'])
    app.directory.set_running('echo', False)
    with pytest.raises(RecipientUnavailable, match="'echo' is not running"):
        app.bus.post(envelope('echo'))
    app.bus.post(envelope('echo', 'pill'), control=True)
    assert [e['body'] for e in app.mail('echo')] == ['pill']


def test_a_full_queue_raises_after_the_timeout_and_frees_no_slot_it_did_not_take(app):
    app.bus.attach_inbox('echo', app.inboxes['echo'])
    for i in range(4):
        app.bus.post(envelope('echo', i))
    with pytest.raises(QueueFull, match=r"queue of head 'echo' is full \(4 envelopes\)"):
        app.bus.post(envelope('echo', 'no room'), timeout=0)
    with pytest.raises(QueueFull, match='stayed full for 0.2 s'):
        app.bus.post(envelope('echo', 'no room'))
    assert [e['body'] for e in app.mail('echo')] == [0, 1, 2, 3]
    app.bus.post(envelope('echo', 'room again'), timeout=0)


def test_what_cannot_be_pickled_fails_before_taking_a_slot(app):
    with pytest.raises(NotSerializable, match="to 'echo'.*'s'"):
        app.bus.post(envelope('echo', lambda: None))
    for i in range(4):  # every slot is still free
        app.bus.post(envelope('echo', i), timeout=0)


def test_a_vanished_inbox_is_unavailable_and_its_slot_given_back(app, tmp_path: Path):
    app.inboxes['echo'].close()
    app.listeners['echo'].close()
    os.unlink(tmp_path / 'echo.sock')
    with pytest.raises(RecipientUnavailable, match="inbox of head 'echo'"):
        app.bus.post(envelope('echo'))
    slots = app.directory['echo'].slots
    assert all(slots.acquire(False) for _ in range(4))  # the failed send gave its slot back
