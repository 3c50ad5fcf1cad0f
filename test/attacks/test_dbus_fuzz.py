"""Fuzzing the D-Bus route: generated calls of Send, each answered once, no head falls.

One dbus-daemon (started here, on a socket in a temporary folder) and one application (a
server head ``dbus`` answering what is addressed to it, and ``echo``, answering everything)
serve the whole run. A plain dbus-fast connection calls ``Send`` with each Hypothesis input
(arbitrary text, arbitrary JSON values, texts over the size limit, numbers too big for their
header, JSON objects with random, mistyped or out-of-range core headers, control subjects, bad
or borrowed senders; and calls with another signature than ``s``), then a good ping. Each call
must return exactly what the input deserves: the recipient's reply for a valid envelope, an
``error`` envelope naming a reason for a refused one, the D-Bus error InvalidArgs for another
signature; and the ping its reply. At the end the route's counters add up (every call replied
to or refused, none late, busy or lost) and every head still runs, with no error counted.
``POLYCEPHALY_FUZZ_EXAMPLES`` (default 2000) sets the number of inputs.
"""

from __future__ import annotations

import collections
import os
from typing import Any, Iterator

import orjson
import pytest
from dbus_fast import MessageType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbus_daemon import DbusDaemon
from dbus_heads import AnswersAll, ServingDbus
from dbus_peer import Peer
from harness import Running
from polycephaly_ros import EnvelopeError, codec

EXAMPLES = int(os.environ.get('POLYCEPHALY_FUZZ_EXAMPLES', '2000'))
NAME = 'io.polycephaly.Fuzz'
PILL = 'STOP-THE-APPLICATION'
MAX_MESSAGE = 4096
CALL_TIMEOUT = 0.5  # what an envelope nobody answers costs (an error to the route head)
HEADS = ('main', 'dbus', 'echo')
#: Inputs per Hypothesis example: drawing is cheap, each example's fixed cost is not.
BATCH = 5
FUZZ = settings(max_examples=-(-EXAMPLES // BATCH), deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# (Kept cheap to draw: generating the inputs, not calling, is most of this test's time.)
names = st.tuples(st.sampled_from('abcXYZ'), st.text('abz_09AZ', max_size=12)).map(''.join)
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=6)
odd = st.sampled_from(['', 'echo', 'Dbus', 'polycephaly', PILL, 'polycephaly.ebrake',
                       'polycephaly.exited', 'error', 'a b', '9x', 'x' * 200])
any_value = (scalars | odd | st.lists(scalars, max_size=2)
             | st.dictionaries(st.text(max_size=4), scalars, max_size=2))
headers = {
    # ('main', the harness's main head, answers nothing: left to the senders)
    'recipient': st.sampled_from(['echo'] * 6 + ['ECHO', 'nobody', 'dbus']) | any_value,
    'subject': st.sampled_from(['ping', 'other', PILL, 'polycephaly.ebrake', 'error'])
    | any_value,
    'sender': names | st.sampled_from(['main', 'Echo', 'dbus']) | any_value,
    'threadindex': (st.integers(-5, 2**64 - 1) | st.sampled_from([0, 1, 2**32 - 1, 2**32])
                    | any_value),
    'threadid': st.uuids().map(str) | any_value,
    'messageid': st.uuids().map(str) | st.sampled_from(['', 'x' * 129]) | any_value,
    'time': st.floats() | any_value,
    'priority': st.integers(-2**32, 2**32) | st.floats() | any_value,
    'body': json_values,
    'via': any_value,
    'route': any_value,
    'dbus_call': any_value,
}


def _text(value: str) -> str:
    """Return value as a D-Bus string may carry it (UTF-8 without NUL)."""
    return value.replace('\x00', ' ')


dbus_texts = st.text(max_size=10).map(_text)
other_calls = st.sampled_from([('i', st.integers(-2**31, 2**31 - 1).map(lambda v: [v])),
                               ('as', st.lists(dbus_texts, max_size=3).map(lambda v: [v])),
                               ('ss', st.tuples(dbus_texts, dbus_texts).map(list)),
                               ('', st.just([])),
                               ('ay', st.binary(max_size=20).map(lambda v: [v]))])


@st.composite
def inputs(draw: Any) -> tuple[str, str, list]:
    """Return (kind, signature, body) of one call of Send."""
    kind = draw(st.sampled_from(['text', 'json', 'too big', 'big number', 'signature']
                                + ['good'] * 3 + ['headers'] * 5))
    if kind == 'signature':
        signature, body = draw(other_calls)
        return kind, signature, draw(body)
    if kind == 'text':
        return kind, 's', [_text(draw(st.text(max_size=100)
                                      | st.binary(max_size=100).map(
                                          lambda b: b.decode('utf-8', 'replace'))))]
    if kind == 'json':
        return kind, 's', [orjson.dumps(draw(json_values)).decode()]
    if kind == 'too big':
        size = draw(st.integers(MAX_MESSAGE, 3 * MAX_MESSAGE))
        return kind, 's', ['{"recipient":"echo","subject":"ping","sender":"f","body":"%s"}'
                           % ('x' * size)]
    if kind == 'big number':
        header = draw(st.sampled_from(['threadindex', 'priority', 'time']))
        number = draw(st.integers(2**32, 10**40).map(str)
                      | st.sampled_from(['1e400', '-1e400', '1.5', '-0', '4294967295']))
        return kind, 's', ['{"recipient":"echo","subject":"ping","sender":"fuzzer","%s":%s}'
                           % (header, number)]
    if kind == 'good':
        optional = {'threadid': st.uuids().map(str), 'threadindex': st.integers(1, 2**32 - 1),
                    'messageid': st.uuids().map(str), 'priority': st.integers(-2**31, 2**31 - 1),
                    'time': st.floats(allow_nan=False, allow_infinity=False)}
        chosen = draw(st.lists(st.sampled_from(sorted(optional)), unique=True))
        envelope = {h: draw(optional[h]) for h in chosen}
        envelope.update(recipient=draw(st.sampled_from(['echo', 'ECHO', 'dbus'])),
                        subject=draw(st.sampled_from(['ping', 'other']) | st.text(max_size=20)),
                        sender=draw(names), body=draw(json_values))
    else:
        chosen = draw(st.lists(st.sampled_from(sorted(headers)), unique=True))
        envelope = {h: draw(headers[h]) for h in chosen}
    extras = draw(st.dictionaries(st.text(max_size=10).filter(lambda h: h not in envelope),
                                  json_values, max_size=2))
    try:
        text = orjson.dumps({**envelope, **extras}).decode()
    except orjson.JSONEncodeError:  # (an integer beyond 64 bits: sent as Python writes it)
        text = str(envelope)
    return kind, 's', [_text(text)]


def expected(signature: str, body: list) -> str:
    """Return what a call deserves: 'invalid args', 'error', 'timeout' or 'reply'."""
    if signature != 's':
        return 'invalid args'
    text = body[0]
    if len(text.encode()) > MAX_MESSAGE:
        return 'error'
    try:
        envelope = codec.decode(text, route='dbus', poison_pill=PILL)
    except EnvelopeError:
        return 'error'
    if envelope['recipient'] not in ('echo', 'dbus') or envelope['sender'].lower() in HEADS:
        return 'error'
    if envelope['recipient'] == 'dbus' and envelope['subject'] == 'error':
        return 'timeout'  # an error from outside goes to the route head's log, unanswered
    return 'reply'


@pytest.fixture(scope='module')
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Peer, dict]]:
    daemon = DbusDaemon(tmp_path_factory.mktemp('dbus-fuzz')).start()
    handed: dict[str, Any] = {}
    running = Running([(ServingDbus, {'name': 'dbus', 'bus': daemon.address, 'bus_name': NAME,
                                      'max_message': MAX_MESSAGE,
                                      'call_timeout': CALL_TIMEOUT, 'handed': handed}),
                       (AnswersAll, {'name': 'echo'})], ppill=PILL, ros=False)
    peer = Peer(daemon.address)
    try:
        yield running, peer, handed
    finally:
        peer.close()
        final = running.close()
        daemon.stop()
    assert [(h['name'], h['state'], h['exits'], h['errors']) for h in final] == [
        ('dbus', 'running', 0, 0), ('echo', 'running', 0, 0)]


@pytest.mark.timeout(600)
def test_every_call_of_send_is_answered_as_it_deserves_and_the_heads_go_on(fuzzed) -> None:
    running, peer, handed = fuzzed
    outcomes: collections.Counter[str] = collections.Counter()
    good = orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'fuzzer',
                         'threadid': 'good', 'body': 1}).decode()

    @FUZZ
    @given(batch=st.lists(inputs(), min_size=BATCH, max_size=BATCH))
    def some(batch: list[tuple[str, str, list]]) -> None:
        for example in batch:
            one(example)

    def one(example: tuple[str, str, list]) -> None:
        kind, signature, body = example
        deserved = expected(signature, body)
        answer = peer.call(NAME, body, signature=signature)
        assert answer is not None
        if deserved == 'invalid args':
            assert answer.message_type is MessageType.ERROR, (example, answer)
            assert answer.error_name == 'org.freedesktop.DBus.Error.InvalidArgs'
        else:
            assert answer.message_type is MessageType.METHOD_RETURN, (example, answer)
            envelope = orjson.loads(answer.body[0])
            if deserved == 'reply':
                request = orjson.loads(body[0])
                assert envelope['subject'] == 'reply', (example, envelope)
                assert envelope['body'] == {'subject': request['subject'],
                                            'body': request.get('body')}, example
                assert envelope['sender'] == request['recipient'].lower()
                assert envelope['threadindex'] == min(request.get('threadindex', 1) + 1,
                                                      2**32 - 1)
                if 'threadid' in request:
                    assert envelope['threadid'] == request['threadid']
                assert 'dbus_call' not in envelope and 'via' not in envelope
            else:
                assert (envelope['sender'], envelope['subject']) == ('polycephaly', 'error'), (
                    example, envelope)
                assert isinstance(envelope['body']['error'], str) and envelope['body']['error']
                if deserved == 'timeout':
                    assert 'no reply from' in envelope['body']['error']
        outcomes[deserved] += 1
        pong = peer.request(NAME, good)
        assert (pong['subject'], pong['body']['body'], pong['threadid']) == ('reply', 1, 'good')

    some()
    stats = handed['server'].stats
    print(f'\nD-Bus fuzz outcomes: {dict(outcomes)}; route: {dict(stats)}')
    assert stats['calls'] == 2 * sum(outcomes.values()), stats  # each input, then a ping
    assert stats['calls'] == stats['replied'] + stats['refused'], stats
    assert stats['timeouts'] == outcomes['timeout'] and stats['late'] == 0
    assert stats['busy'] == stats['lost'] == 0
    assert running.main is not None and running.main.unmatched == 0
    assert sum(outcomes.values()) >= EXAMPLES
    # the strategies produced every kind of answer (a guard on the guard)
    assert outcomes['error'] >= EXAMPLES // 4, outcomes
    assert outcomes['reply'] >= EXAMPLES // 20 and outcomes['invalid args'] >= EXAMPLES // 50
