"""The serial route's framings, byte by byte: COBS vectors, CRC-32, splitting, bad frames. Pure."""

from __future__ import annotations

import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polycephaly_ros.routes.serial import cobs_decode, cobs_encode, encode_cobs_frame
from polycephaly_ros.routes.serial.framing import Bad, CobsCrc, JsonLines, cobs_limit, \
    make_framing
from serial_device import cobs_decode as device_decode
from serial_device import cobs_encode as device_encode
from serial_device import decode as device_frame_decode
from serial_device import encode as device_frame_encode

pytestmark = pytest.mark.fast

ENVELOPE = {'sender': 'mcu', 'recipient': 'echo', 'subject': 'ping', 'body': [1, 'x'],
            'threadid': 't-1', 'threadindex': 1}
# COBS's reference examples (Cheshire and Baker; as on Wikipedia): data -> encoding.
VECTORS = [
    (b'\x00', b'\x01\x01'),
    (b'\x00\x00', b'\x01\x01\x01'),
    (b'\x00\x11\x00', b'\x01\x02\x11\x01'),
    (b'\x11\x22\x00\x33', b'\x03\x11\x22\x02\x33'),
    (b'\x11\x22\x33\x44', b'\x05\x11\x22\x33\x44'),
    (b'\x11\x00\x00\x00', b'\x02\x11\x01\x01\x01'),
    (bytes(range(1, 255)), b'\xff' + bytes(range(1, 255))),
    (bytes(range(0, 255)), b'\x01\xff' + bytes(range(1, 255))),
    (bytes(range(1, 256)), b'\xff' + bytes(range(1, 255)) + b'\x02\xff'),
    (bytes(range(2, 256)) + b'\x00', b'\xff' + bytes(range(2, 256)) + b'\x01\x01'),
    (bytes(range(3, 256)) + b'\x00\x01', b'\xfe' + bytes(range(3, 256)) + b'\x02\x01'),
]


@pytest.mark.parametrize('data, encoded', VECTORS)
def test_cobs_matches_the_reference_examples(data: bytes, encoded: bytes) -> None:
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data
    assert device_decode(cobs_encode(data)) == data  # the simulator's own decoder agrees


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=1200) | st.lists(st.sampled_from([b'\0', b'\1' * 253, b'\2' * 254,
                                                            b'\3' * 255, b'x']),
                                           max_size=8).map(b''.join))
def test_cobs_round_trips_and_never_holds_a_zero(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert b'\0' not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data
    assert cobs_decode(device_encode(data)) == data  # and the simulator's encoder (another style)


@pytest.mark.parametrize('bad', [b'\x00', b'\x05\x11\x22', b'\x02\x11\x00\x01', b'\xff\x01'])
def test_what_is_not_cobs_is_refused(bad: bytes) -> None:
    with pytest.raises(ValueError, match='not COBS'):
        cobs_decode(bad)


def test_a_cobs_frame_is_json_its_crc32_little_endian_then_zero() -> None:
    assert zlib.crc32(b'123456789') == 0xCBF43926  # CRC-32/IEEE's check value
    frame = encode_cobs_frame(ENVELOPE)
    assert frame.endswith(b'\0') and b'\0' not in frame[:-1]
    data = cobs_decode(frame[:-1])
    payload, crc = data[:-4], data[-4:]
    assert orjson.loads(payload) == ENVELOPE and payload == orjson.dumps(ENVELOPE)
    assert crc == zlib.crc32(payload).to_bytes(4, 'little')
    assert device_frame_encode(ENVELOPE, 'cobs') == frame  # byte for byte, as the device writes
    assert device_frame_decode(frame[:-1], 'cobs') == ENVELOPE


@pytest.mark.parametrize('name', ['json', 'cobs'])
def test_frames_come_out_whole_and_in_order_however_the_stream_is_cut(name: str) -> None:
    envelopes = [dict(ENVELOPE, body=n) for n in range(4)]
    stream = b''.join(make_framing(name).encode(e) for e in envelopes)
    for size in (1, 2, 7, len(stream)):
        framing = make_framing(name, 1024)
        got = [frame for i in range(0, len(stream), size)
               for frame in framing.feed(stream[i:i + size])]
        assert [orjson.loads(f) for f in got] == envelopes, size


def test_a_damaged_frame_fails_its_checksum_and_the_next_one_is_read() -> None:
    good = encode_cobs_frame(ENVELOPE)
    damaged = bytearray(good)
    damaged[20] ^= 0x04  # one bit flipped on the line
    framing = CobsCrc()
    bad, after = list(framing.feed(bytes(damaged) + good))
    assert isinstance(bad, Bad) and bad.kind == 'checksum' and 'checksum mismatch' in bad.reason
    assert bad.payload is not None and orjson.loads(bad.payload)['threadid'] == 't-1'
    assert orjson.loads(after) == ENVELOPE


def test_a_lost_delimiter_merges_two_frames_into_one_bad_one_then_reads_in_step() -> None:
    good = encode_cobs_frame(ENVELOPE)
    framing = CobsCrc()
    frames = list(framing.feed(good[:-1] + good + good))  # the first 0x00 was lost
    # (two valid COBS encodings joined decode as one payload with a 0x00 between: wrong CRC)
    assert [f.kind if isinstance(f, Bad) else 'ok' for f in frames] == ['checksum', 'ok']


def test_garbage_short_frames_and_empty_frames() -> None:
    framing = CobsCrc()
    frames = list(framing.feed(b'\0\0\x03ab\0\x02\x01\0\0'))
    assert [f.kind for f in frames] == ['cobs', 'cobs']  # empty frames are skipped
    assert 'no room for a payload' in frames[0].reason


@pytest.mark.parametrize('name', ['json', 'cobs'])
def test_an_over_long_frame_is_reported_once_never_held_whole(name: str) -> None:
    framing = make_framing(name, 100)
    limit = cobs_limit(100) if name == 'cobs' else 100
    delimiter = b'\n' if name == 'json' else b'\0'
    out: list = []
    for _ in range(50):  # 5000 bytes without a delimiter, 100 at a time
        out += framing.feed(b'x' * 100)
        buffered = len(framing._lines.buf) if name == 'json' else len(framing._buf)
        assert buffered <= limit + 100
    good = framing.encode(ENVELOPE)
    out += framing.feed(b'tail' + delimiter + good)
    assert [type(f) for f in out] == [Bad, bytes] and out[0].kind == 'too_long'
    assert orjson.loads(out[1]) == ENVELOPE


def test_a_cobs_payload_over_max_frame_is_too_long_even_within_the_encoded_limit() -> None:
    payload = b'\0' * 150  # zeros encode in one byte each: the encoding stays short
    frame = cobs_encode(payload + zlib.crc32(payload).to_bytes(4, 'little')) + b'\0'
    [bad] = CobsCrc(100).feed(frame)
    assert bad.kind == 'too_long'


def test_json_lines_are_the_shared_framing() -> None:
    framing = JsonLines(64)
    assert framing.encode(ENVELOPE) == orjson.dumps(ENVELOPE) + b'\n'
    assert list(framing.feed(b'\n{"a": 1}\r\n\n')) == [b'{"a": 1}\r']
    with pytest.raises(ValueError, match='framing must be one of json, cobs'):
        make_framing('slip')


def test_the_documented_example_frame() -> None:
    """The README's worked example, byte for byte: a CRC holding a 0x00."""
    envelope = {'sender': 'mcu', 'recipient': 'echo', 'subject': 'ping', 'body': 33}
    payload = orjson.dumps(envelope)
    assert len(payload) == 62 and zlib.crc32(payload) == 0xB73E002E
    assert encode_cobs_frame(envelope) == b'\x40' + payload + b'\x2e' + b'\x03\x3e\xb7' + b'\0'
