"""The JSON codec: round trips, header checks, refused control subjects, error frames."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest

from polycephaly_ros import codec, envelope
from polycephaly_ros.errors import EnvelopeError, NotSerializable

pytestmark = pytest.mark.fast

PILL = 'c0ffee00-pill-4000-8000-000000000000'


def frame(**headers: Any) -> bytes:
    """Return a JSON frame with the given headers (recipient, subject and sender defaulted)."""
    return orjson.dumps({'recipient': 'main', 'subject': 'hello', 'sender': 'cli', **headers})


def test_round_trip_keeps_ids_thread_and_extra_headers() -> None:
    sent = envelope.make('touch', 'Main', 'salutation', {'text': 'hi', 'n': [1, 2.5, None]},
                         {'colour': 'blue'}, threadid='t-1', threadindex=4)
    sent['priority'] = 3
    got = codec.decode(codec.encode(sent), route='uds')
    assert got == {**sent, 'route': 'uds'}
    assert (got['messageid'], got['threadid'], got['threadindex']) == (sent['messageid'], 't-1', 4)


def test_tuples_become_lists() -> None:
    got = codec.decode(codec.encode({'recipient': 'a', 'subject': 's', 'sender': 'c',
                                     'body': (1, (2, 3))}), route='uds')
    assert got['body'] == [1, [2, 3]]


def test_missing_optional_headers_get_defaults() -> None:
    before = time.time()
    got = codec.decode(b'{"recipient": "Main", "subject": "hi", "sender": "Cli"}', route='uds')
    assert got['recipient'] == 'main' and got['sender'] == 'Cli'
    assert got['body'] is None and got['threadindex'] == 1
    assert uuid.UUID(got['messageid']).version == 4
    assert uuid.UUID(got['threadid']).version == 4 and got['threadid'] != got['messageid']
    assert before <= got['time'] <= time.time()


def test_route_is_overwritten() -> None:
    assert codec.decode(frame(route='internal'), route='uds')['route'] == 'uds'


@pytest.mark.parametrize(('data', 'words'), [
    (b'{"recipient": "main", ', ['malformed JSON', 'unexpected end of data']),
    (b'\xff\xfe', ['malformed JSON', 'UTF-8']),
    (b'[1, 2]', ['JSON object', 'array']),
    (b'"text"', ['JSON object', 'string']),
    (b'{"subject": "hi"}', ['missing header', "'recipient'"]),
    (frame(recipient=5), ["'recipient'", 'integer']),
    (frame(recipient=''), ["'recipient'", 'empty string']),
    (frame(recipient=None), ["'recipient'", 'null']),
    (b'{"recipient": "main"}', ['missing header', "'subject'"]),
    (frame(subject=['a']), ["'subject'", 'array']),
    (frame(sender=3), ["'sender'", 'integer']),
    (b'{"recipient": "main", "subject": "hi"}', ['missing header', "'sender'"]),
    (frame(sender=''), ["'sender'", 'must be a name', "''"]),
    (frame(sender='a b'), ["'sender'", 'must be a name']),
    (frame(sender='9lives'), ["'sender'", 'must be a name']),
    (frame(messageid='m' * 129), ["'messageid'", '1..128 characters', '129']),
    (frame(threadindex=2**32), ["'threadindex'", '1..4294967295', str(2**32)]),
    (frame(threadindex=18446744073709551615), ["'threadindex'", '1..4294967295']),
    (frame(priority=2**31), ["'priority'", 'within', str(2**31)]),
    (frame(priority=-2**31 - 0.5), ["'priority'", 'within']),
    (frame(messageid=1.5), ["'messageid'", 'number']),
    (frame(threadid={}), ["'threadid'", 'object']),
    (frame(threadid=''), ["'threadid'", '1..128 characters', 'not 0']),
    (frame(threadindex=0), ["'threadindex'", 'not 0']),
    (frame(threadindex='2'), ["'threadindex'", 'string']),
    (frame(threadindex=1.0), ["'threadindex'", 'number']),
    (frame(threadindex=True), ["'threadindex'", 'boolean']),
    (frame(time='now'), ["'time'", 'string']),
    (frame(priority='high'), ["'priority'", 'string']),
    (frame(priority=False), ["'priority'", 'boolean']),
])
def test_malformed_frames_name_the_header_and_type(data: bytes, words: list[str]) -> None:
    with pytest.raises(EnvelopeError) as caught:
        codec.decode(data, route='uds')
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize('header', ['time', 'priority'])
@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_numbers_must_be_finite(header: str, value: float) -> None:
    # (JSON cannot carry them; a ROS message's float64 can)
    with pytest.raises(EnvelopeError, match=f"'{header}' must be a finite number"):
        codec.check({'recipient': 'm', 'subject': 's', 'sender': 'c', header: value},
                    route='ros')


def test_numbers_of_both_kinds_are_accepted() -> None:
    got = codec.decode(frame(time=12, priority=-0.5, body=True), route='uds')
    assert (got['time'], got['priority'], got['body']) == (12, -0.5, True)


@pytest.mark.parametrize('subject', [PILL, 'polycephaly.exited', 'polycephaly.ebrake'])
def test_control_subjects_are_refused(subject: str) -> None:
    with pytest.raises(EnvelopeError, match='refused: control subject'):
        codec.decode(frame(subject=subject), route='uds', poison_pill=PILL)


def test_ordinary_subjects_pass_with_a_poison_pill_set() -> None:
    assert codec.decode(frame(subject='polycephaly'), route='uds', poison_pill=PILL)


@pytest.mark.parametrize(('headers', 'culprit', 'words'), [
    ({'body': {1, 2}}, 'body', ['set']),
    ({'colour': object()}, 'colour', ['object']),
    ({'body': {'deep': [b'raw']}}, 'body', ['bytes']),
    ({'body': 2 ** 70}, 'body', ['64-bit']),
    ({'body': {1: 'x'}}, 'body', ['key must be str']),
])
def test_not_serializable_names_the_header(headers: dict, culprit: str, words: list[str]) -> None:
    sent = {**envelope.make('a', 'b', 's'), **headers}
    with pytest.raises(NotSerializable) as caught:
        codec.encode(sent)
    assert f'header {culprit!r}' in str(caught.value)
    for word in words:
        assert word in str(caught.value)
    assert isinstance(caught.value, EnvelopeError)


def test_non_text_header_names_are_not_serializable() -> None:
    with pytest.raises(NotSerializable, match='header names must be text'):
        codec.encode({'recipient': 'a', 7: 'x'})


def test_encode_is_compact_single_line_utf8() -> None:
    data = codec.encode({'recipient': 'a', 'subject': 's', 'sender': 'c',
                         'body': 'line1\nline2 – ü'})
    assert b'\n' not in data
    assert codec.decode(data, route='uds')['body'] == 'line1\nline2 – ü'


def test_error_envelope_answers_the_original() -> None:
    original = envelope.make('touch', 'main', 'ask', threadid='t-9', threadindex=2)
    before = time.time()
    error = codec.error_envelope('no such head', original)
    assert error['subject'] == 'error' and error['body'] == {'error': 'no such head'}
    assert error['sender'] == 'polycephaly' and error['recipient'] == 'touch'
    assert (error['threadid'], error['threadindex']) == ('t-9', 3)
    assert error['messageid'] != original['messageid']
    assert uuid.UUID(error['messageid']).version == 4
    assert before <= error['time'] <= time.time()
    assert envelope.is_reply_to(error, {**original, 'recipient': 'polycephaly'})


@pytest.mark.parametrize('original', [None, {}, {'sender': 5, 'threadid': 3, 'threadindex': 'x'},
                                      {'threadindex': True},
                                      {'sender': 'a b', 'threadindex': 2**64 - 1},
                                      {'threadindex': 2**32, 'threadid': 't' * 10000}])
def test_error_envelope_without_a_usable_original(original: dict | None) -> None:
    error = codec.error_envelope('malformed JSON', original)
    assert error['recipient'] == '' and error['threadindex'] == 1
    assert uuid.UUID(error['threadid']).version == 4
    assert orjson.loads(codec.encode(error)) == error


def test_an_answer_to_the_last_thread_index_keeps_it() -> None:
    """Index 2**32 - 1 is valid from outside; its answers cannot go higher and stay encodable."""
    last = {'sender': 'peer', 'threadid': 't', 'threadindex': 2**32 - 1}
    error = codec.error_envelope('no', last)
    reply = envelope.answer({**last, 'recipient': 'echo'}, 'echo')
    assert error['threadindex'] == reply['threadindex'] == 2**32 - 1
    codec.check(reply, route='uds')
