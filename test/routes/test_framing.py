"""Newline-delimited JSON framing: line splitting, the frame limit, blank lines and \\r. Pure."""

from __future__ import annotations

import orjson

from polycephaly_ros import codec
from polycephaly_ros.routes.framing import MAX_FRAME, LineSplitter, encode_frame


def feed_all(splitter: LineSplitter, *chunks: bytes) -> list[bytes | None]:
    """Return everything the splitter yields for the chunks, fed in order."""
    return [line for chunk in chunks for line in splitter.feed(chunk)]


def test_lines_come_out_whole_and_in_order_however_the_stream_is_cut() -> None:
    stream = b'{"n": 1}\n{"n": 2}\n{"n": 3}\n'
    for size in (1, 2, 5, len(stream)):
        splitter = LineSplitter(64)
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert feed_all(splitter, *chunks) == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}'], size
        assert not splitter.partial


def test_a_line_without_its_newline_waits_for_it() -> None:
    splitter = LineSplitter(64)
    assert feed_all(splitter, b'{"n": ') == []
    assert splitter.partial
    assert feed_all(splitter, b'1}\n{"n"') == [b'{"n": 1}']
    assert splitter.partial


def test_blank_lines_are_skipped() -> None:
    splitter = LineSplitter(64)
    assert feed_all(splitter, b'\n\n  \n\t\n{}\n\r\n \r\n{"a": 1}\n') == [b'{}', b'{"a": 1}']


def test_a_trailing_carriage_return_stays_in_the_line_and_parses() -> None:
    splitter = LineSplitter(64)
    [line] = feed_all(splitter, b'{"recipient": "main"}\r\n')
    assert line == b'{"recipient": "main"}\r'
    assert codec.parse(line) == {'recipient': 'main'}  # JSON takes \r as white space


def test_the_frame_limit_counts_bytes_without_the_newline() -> None:
    splitter = LineSplitter(8)
    assert feed_all(splitter, b'x' * 8 + b'\n') == [b'x' * 8]
    assert feed_all(splitter, b'x' * 9 + b'\n') == [None]
    assert feed_all(splitter, b'y' * 8, b'\n') == [b'y' * 8]  # as many bytes, unfinished


def test_an_over_long_line_is_reported_once_and_the_next_one_is_whole() -> None:
    splitter = LineSplitter(10)
    assert feed_all(splitter, b'x' * 20 + b'\n{"ok": 1}\n') == [None, b'{"ok": 1}']
    assert not splitter.partial


def test_an_over_long_line_in_pieces_is_reported_as_it_grows_and_not_kept() -> None:
    splitter = LineSplitter(10)
    assert feed_all(splitter, b'x' * 6) == []
    assert feed_all(splitter, b'x' * 6) == [None]  # 12 > 10 bytes and no newline yet
    assert splitter.partial and not splitter.buf  # dropping its bytes, not buffering them
    assert feed_all(splitter, b'x' * 1000, b'x' * 1000) == []  # no second report
    assert not splitter.buf
    assert feed_all(splitter, b'xx\n{"ok": 1}\n') == [b'{"ok": 1}']
    assert not splitter.partial


def test_the_default_limit_is_one_mebibyte() -> None:
    assert MAX_FRAME == 1 << 20 and LineSplitter().max_frame == MAX_FRAME


def test_encode_frame_is_one_line_even_when_values_hold_newlines() -> None:
    envelope = {'recipient': 'main', 'subject': 'two\nlines', 'body': {'text': 'a\r\nb'}}
    frame = encode_frame(envelope)
    assert frame.endswith(b'\n') and frame.count(b'\n') == 1
    assert feed_all(LineSplitter(), frame) == [frame[:-1]]
    assert orjson.loads(frame) == envelope
