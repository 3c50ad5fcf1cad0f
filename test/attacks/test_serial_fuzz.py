"""Fuzzing the serial route: generated frames on the line, each answered once, no head falls.

One application per framing (route head ``serial`` on a pseudo-terminal, a head ``echo`` that
answers 'ping') serves the whole run; the test holds the device's end. Each Hypothesis input is
one frame on the line: bytes that are no envelope, JSON objects with random, mistyped or
out-of-range core headers, control subjects, heads' names as sender, frames over the limit,
and, for COBS, frames damaged on the way (a bit flipped: a bad CRC or bad COBS) or sent without
their CRC; then a good ping. Once the ping is answered the frame must have had exactly the
answers an independent oracle expects (the device simulator's own decoder, then
``codec.decode``): one (a reply, or an error) for everything but an empty line and a frame
whose subject is ``error`` (never answered: no error storms), none for those. Nothing else may
come back, and every head still runs at the end with no error counted.
``POLYCEPHALY_FUZZ_EXAMPLES`` (default 2000, ~20 s) sets the frames in all, half per framing.
"""

from __future__ import annotations

import os
import uuid
import zlib
from typing import Any, Iterator

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness import Running
from heads import RouteEcho
from polycephaly_ros import EnvelopeError, codec
from polycephaly_ros.routes.serial import SerialRouteHead
from polycephaly_ros.routes.serial.framing import cobs_limit
from serial_device import cobs_decode, cobs_encode
from serial_link import Peer, pty_pair

EXAMPLES = int(os.environ.get('POLYCEPHALY_FUZZ_EXAMPLES', '2000'))
PILL = 'STOP-THE-APPLICATION'
MAX_FRAME = 2048
FUZZ = settings(max_examples=max(EXAMPLES // 2, 1), deadline=None, database=None,
                suppress_health_check=list(HealthCheck), phases=[Phase.generate])

_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
# (names built from two draws: st.from_regex costs ~4 ms a draw, most of an example's time)
names = st.builds(str.__add__, st.sampled_from(_LETTERS),
                  st.text(_LETTERS + '0123456789_', max_size=20))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=8)
# A header's value: any JSON value but nested at most once (mistyped is what matters there, and
# recursive strategies are the slowest to draw).
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
any_value = (scalars | st.lists(scalars, max_size=2)
             | st.dictionaries(st.text(max_size=4), scalars, max_size=2)
             | st.sampled_from(['', 'main', 'echo', 'serial', 'Serial', PILL,
                                'polycephaly.exited', 'ping', 'error', 'a b', '9x']))
headers = {
    'recipient': st.sampled_from(['echo', 'ECHO', 'nobody', 'main', 'serial']) | any_value,
    'subject': st.sampled_from(['ping', 'other', PILL, 'polycephaly.ebrake', 'error',
                                'reply']) | any_value,
    'sender': names | any_value,
    'threadindex': st.integers(-5, 2**64) | any_value,
    'priority': st.integers(-2**32, 2**32) | st.floats() | any_value,
    'time': st.floats() | any_value,
    'messageid': st.text(max_size=200) | any_value,
    'via': any_value,
    'route': any_value,
    'body': json_values,
}


@st.composite
def payloads(draw: Any) -> bytes:
    """Return one payload: bytes that are no JSON object, or a JSON object (maybe a bad one)."""
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
    if kind == 1:  # over the frame limit, or just under it
        size = draw(st.integers(MAX_FRAME - 100, MAX_FRAME + 100))
        return b'{"recipient":"echo","subject":"ping","sender":"mcu","body":"%s"}' % (
            b'x' * (size - 59))
    chosen = draw(st.lists(st.sampled_from(sorted(headers)), unique=True))
    envelope = {h: draw(headers[h]) for h in chosen}
    if kind == 2:  # a good request, whatever else it carries
        envelope.update(recipient='echo', subject='ping', sender=draw(names))
    elif kind == 3:  # the device reporting an error (to a head, or to nobody it should)
        envelope.update(subject='error', sender=draw(names | any_value))
    envelope['threadid'] = uuid.uuid4().hex  # so its answer can be told from the others
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError:  # e.g. an integer orjson cannot write: send it as text
        return str(envelope).encode()


def flip(data: bytes, draw: Any, forbidden: int) -> bytes:
    """Return data with one bit flipped (a byte never made into the delimiter)."""
    if not data:
        return data
    at = draw(st.integers(0, len(data) - 1))
    mask = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]))
    if data[at] ^ mask == forbidden:
        mask ^= 0xFF if mask != 0xFF ^ forbidden else 1
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1:]


@st.composite
def json_lines(draw: Any) -> bytes:
    """Return one line of the json framing, maybe damaged (no checksum to tell)."""
    line = draw(payloads()).replace(b'\n', b' ')
    if draw(st.integers(0, 4)) == 0:
        line = flip(line, draw, ord('\n'))
    return line + b'\n'


@st.composite
def cobs_frames(draw: Any) -> bytes:
    """Return one frame of the cobs framing: good, damaged, without its CRC, or not COBS."""
    payload = draw(payloads())
    kind = draw(st.sampled_from(['good'] * 5 + ['damaged'] * 2 + ['no crc', 'raw']))
    if kind == 'raw':
        return payload.replace(b'\0', b'\1') + b'\0'
    crc = zlib.crc32(payload).to_bytes(4, 'little') if kind != 'no crc' else b''
    frame = cobs_encode(payload + crc)
    if kind == 'damaged':
        frame = flip(frame, draw, 0)
    return frame + b'\0'


# -- the oracle: what the route must answer, worked out without the route's code -----------------
def _is_error(payload: bytes) -> bool:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get('subject') == 'error'


def _answers_to_payload(payload: bytes) -> int:
    """Return the answers a well-framed payload gets: a reply or an error, unless an error."""
    try:
        envelope = codec.decode(payload, route='serial', poison_pill=PILL)
    except EnvelopeError:
        return 0 if _is_error(payload) else 1
    return 0 if envelope['subject'] == 'error' else 1


def expected_answers(framing: str, data: bytes) -> int:
    """Return how many answers the frame in data (delimiter included) must get: 0 or 1."""
    frame = data[:-1]
    if framing == 'json':
        if not frame.strip():
            return 0  # a blank line is no frame
        return 1 if len(frame) > MAX_FRAME else _answers_to_payload(frame)
    if not frame:
        return 0  # an empty frame is skipped
    if len(frame) > cobs_limit(MAX_FRAME):
        return 1
    try:
        decoded = cobs_decode(frame)
    except ValueError:
        return 1
    payload, crc = decoded[:-4], decoded[-4:]
    if len(decoded) <= 4 or len(payload) > MAX_FRAME:
        return 1
    if zlib.crc32(payload).to_bytes(4, 'little') != crc:
        return 0 if _is_error(payload) else 1  # (its headers are read to answer it)
    return _answers_to_payload(payload)


# -- the application and the device's end ---------------------------------------------------------
@pytest.fixture(scope='module', params=['json', 'cobs'])
def line(request: pytest.FixtureRequest) -> Iterator[tuple[str, Peer]]:
    framing = request.param
    master, slave, path = pty_pair()
    running = Running([(SerialRouteHead, {'name': 'serial', 'path': path, 'framing': framing,
                                          'max_frame': MAX_FRAME}),
                       (RouteEcho, {'name': 'echo'})], ppill=PILL)
    peer = Peer(master, framing, 'fuzzer')
    try:
        yield framing, peer
        assert peer.silent(0.5), 'an answer nobody expected came'
    finally:
        final = running.close()
        os.close(master)
        os.close(slave)
    assert [(h['name'], h['state'], h['exits'], h['errors']) for h in final] == [
        ('serial', 'running', 0, 0), ('echo', 'running', 0, 0)]


@pytest.mark.timeout(600)
@FUZZ
@given(data=st.data())
def test_every_frame_on_the_line_is_answered_once_and_the_heads_go_on(line, data) -> None:
    framing, peer = line
    frame = data.draw(json_lines() if framing == 'json' else cobs_frames())
    peer.write(frame)
    good = uuid.uuid4().hex
    peer.send(recipient='echo', subject='ping', threadid=good, body=1)
    expected = expected_answers(framing, frame)
    got = [peer.recv() for _ in range(expected + 1)]  # (heads answer in any order)
    pings = [g for g in got if g['threadid'] == good]
    assert len(pings) == 1 and pings[0]['body']['body'] == 1, (frame, got)
    for answer in got:
        if answer is not pings[0]:
            assert answer['subject'] in ('reply', 'error'), (frame, answer)
            if answer['subject'] == 'error':
                assert isinstance(answer['body']['error'], str) and answer['body']['error']


def test_the_fuzz_covers_what_it_should() -> None:
    """Both framings produce frames answered and not, good ones and every kind of bad one."""
    seen = {f'{framing} {n}': 0 for framing in ('json', 'cobs') for n in (0, 1)}
    kinds: set[str] = set()

    # 600 draws: with 150, a CI run once drew no frame over the limit.
    @settings(max_examples=600, deadline=None, database=None)
    @given(data=st.data())
    def classify(data: Any) -> None:
        for framing, strategy in (('json', json_lines()), ('cobs', cobs_frames())):
            frame = data.draw(strategy)
            seen[f'{framing} {expected_answers(framing, frame)}'] += 1
            if framing == 'cobs':
                kinds.add(_cobs_kind(frame[:-1]))

    classify()
    assert all(seen.values()), seen
    assert kinds >= {'not cobs', 'bad crc', 'good', 'too long'}, kinds


def _cobs_kind(frame: bytes) -> str:
    try:
        decoded = cobs_decode(frame)
    except ValueError:
        return 'not cobs'
    if len(decoded) - 4 > MAX_FRAME:
        return 'too long'
    ok = len(decoded) > 4 and zlib.crc32(decoded[:-4]).to_bytes(4, 'little') == decoded[-4:]
    return 'good' if ok else 'bad crc'
