"""Fuzzing the named pipe route: generated lines, each answered once, no head falls.

One application (route head ``route`` on a pair of pipes, and a head ``echo``) serves the
whole run; a Python peer in the test writes each generated line to ``in``
(test/support/mq_fuzz.py: good envelopes, bad headers, bytes that are no JSON object, blank
lines) and then a good ping, and reads ``out``. Once the ping is answered, the line must have
had exactly one answer (a reply, or an error naming what was wrong), or none when it is blank
(no frame) or its subject is ``error``. At the end every head still runs with no error
counted, and the route's counters add up. ``POLYCEPHALY_FUZZ_EXAMPLES`` (default 2000) sets
the number of lines.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from hypothesis import given

from fifo_heads import ProbedFifo
from fifo_peer import FifoPeer
from harness import Running
from heads import RouteEcho
from mq_fuzz import EXAMPLES, FUZZ, PILL, answered, check_answers, frames


@pytest.fixture(scope='module')
def route(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, FifoPeer]]:
    pipes = tmp_path_factory.mktemp('fuzz') / 'pipes'
    running = Running([(ProbedFifo, {'name': 'route', 'directory': str(pipes),
                                     'mode': 'process'}),
                       (RouteEcho, {'name': 'echo', 'mode': 'process'})], ppill=PILL)
    peer = FifoPeer(pipes)
    try:
        yield running, peer
        peer.send(recipient='route', subject='stats', threadid='stats')  # (answered by the route)
        stats = peer.recv()['body']
    finally:
        peer.close()
        final = running.close()
    assert [(h['name'], h['state'], h['exits'], h['errors']) for h in final] == [
        ('route', 'running', 0, 0), ('echo', 'running', 0, 0)]
    assert stats['received'] >= EXAMPLES
    assert stats['received'] == stats['delivered'] + stats['refused'], stats
    assert not stats.get('errors_lost') and not stats.get('send_failed'), stats
    assert not (pipes / 'in').exists()  # removed at the end


@pytest.mark.timeout(600)
@FUZZ
@given(frame=frames())
def test_every_line_is_answered_once_and_the_heads_go_on(route: Any, frame: bytes) -> None:
    _, peer = route
    peer.send_line(frame)
    peer.send(recipient='echo', subject='ping', sender='fuzzer', threadid='good', body=1)
    expect = bool(frame.strip()) and answered(frame)
    got = [peer.recv() for _ in range(2 if expect else 1)]
    check_answers(frame, got, expect)

