"""Fuzzing the POSIX message queue route: generated messages, each answered once, no head falls.

One application (route head ``route`` reading our queue and answering on the peer's, and a
head ``echo``) serves the whole run; a posix_ipc peer in the test sends each generated
message (test/support/mq_fuzz.py: good envelopes, bad headers, bytes that are no JSON object,
empty messages) and then a good ping. Once the ping is answered, the message must have had
exactly one answer (a reply, or an error naming what was wrong), or none when its subject is
``error``. At the end every head still runs with no error counted, and the route's counters
add up: every message received was delivered or refused, and every error went out.
``POLYCEPHALY_FUZZ_EXAMPLES`` (default 2000) sets the number of messages.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import posix_ipc
import pytest
from hypothesis import given

from harness import Running
from heads import RouteEcho
from mq_fuzz import EXAMPLES, FUZZ, PILL, answered, check_answers, frames
from mq_heads import ProbedMqueue
from mq_peer import MqPeer


@pytest.fixture(scope='module')
def route() -> Iterator[tuple[Running, MqPeer]]:
    tag = uuid.uuid4().hex[:12]
    mine, theirs = f'/pcyt-fuzz-{tag}.route', f'/pcyt-fuzz-{tag}.peer'
    peer = MqPeer(theirs, mine)
    running = Running([(ProbedMqueue, {'name': 'route', 'queue': mine, 'peer_queue': theirs,
                                      'mode': 'process'}),
                       (RouteEcho, {'name': 'echo', 'mode': 'process'})], ppill=PILL)
    try:
        yield running, peer
        peer.send(recipient='route', subject='stats', threadid='stats')  # (answered by the route)
        stats = peer.recv()['body']
    finally:
        final = running.close()
        peer.close()
    assert [(h['name'], h['state'], h['exits'], h['errors']) for h in final] == [
        ('route', 'running', 0, 0), ('echo', 'running', 0, 0)]
    assert stats['received'] >= 2 * EXAMPLES
    assert stats['received'] == stats['delivered'] + stats['refused'], stats
    assert not stats.get('errors_lost') and not stats.get('send_failed'), stats
    with pytest.raises(posix_ipc.ExistentialError):
        posix_ipc.MessageQueue(mine)  # removed at the end


@pytest.mark.timeout(600)
@FUZZ
@given(frame=frames())
def test_every_message_is_answered_once_and_the_heads_go_on(route: Any, frame: bytes) -> None:
    _, peer = route
    peer.send_raw(frame)
    peer.send(recipient='echo', subject='ping', sender='fuzzer', threadid='good', body=1)
    expect = answered(frame)
    got = [peer.recv() for _ in range(2 if expect else 1)]
    check_answers(frame, got, expect)
