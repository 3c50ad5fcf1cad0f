"""Fuzzing every external route with generated frames: no head ever falls, every frame answered.

Frames come from Hypothesis strategies that mix well-formed envelopes with every kind of bad
header (missing, mistyped, out of range, control subjects, heads' names as sender) and bad
bytes. Each frame must get exactly one answer (a reply, or an error naming what was wrong),
and a well-behaved request sent right after it is answered too. At the end every head still
runs. ``POLYCEPHALY_FUZZ_EXAMPLES`` (default 2000) sets the frames per route.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import Harness, until
from heads import RouteEcho
from polycephaly_ros import EnvelopeError, codec
from polycephaly_ros.routes.unix_socket import UnixSocketServerHead
from raw_client import RawClient

EXAMPLES = int(os.environ.get('POLYCEPHALY_FUZZ_EXAMPLES', '2000'))
PILL = 'STOP-THE-APPLICATION'
HEADS = ('main', 'uds_server', 'echo')
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

names = st.from_regex(r'[A-Za-z][A-Za-z0-9_]{0,20}', fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False,
                                                                           allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
any_value = json_values | st.sampled_from(['', 'main', 'echo', 'uds_server', PILL,
                                           'polycephaly.exited', 'ping', 'a b', '9x'])
headers = {
    'recipient': st.sampled_from(['echo', 'ECHO', 'nobody', 'main']) | any_value,
    'subject': st.sampled_from(['ping', 'other', PILL, 'polycephaly.ebrake', 'error']) | any_value,
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
def frames(draw: Any) -> bytes:
    """Return one line: a JSON object with some headers (maybe bad), or bytes that are not."""
    if draw(st.integers(0, 9)) == 0:  # bytes that are no JSON object
        raw = draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
        return raw.replace(b'\n', b' ')
    chosen = draw(st.lists(st.sampled_from(sorted(headers)), unique=True))
    envelope = {h: draw(headers[h]) for h in chosen}
    envelope['threadid'] = draw(st.uuids()).hex  # so its answer can be told from the others
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError:  # e.g. an integer orjson cannot write: send it as text
        return str(envelope).encode()


class Running:
    """An application running in a thread for the duration of a test module."""

    def __init__(self, heads: list, **options: Any) -> None:
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.app = Harness(self._script, heads, ppill=PILL, **options)
        self.app.handle_signals = False
        self.thread = threading.Thread(target=self.app.run, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), 'the application did not start'

    def _script(self, main: Any) -> list[dict]:
        self.main = main
        self.ready.set()
        until(main, self.stop.is_set, timeout=3600)
        return main.application.status()

    def close(self) -> list[dict]:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.app.outcome


@pytest.fixture(scope='module')
def socket_app(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp('fuzz') / 's'
    running = Running([(UnixSocketServerHead, {'name': 'uds_server', 'path': str(path)}),
                       (RouteEcho, {'name': 'echo'})])
    client = RawClient(path)
    yield running, client
    client.close()
    final = running.close()
    assert [(h['name'], h['state'], h['exits'], h['errors']) for h in final] == [
        ('uds_server', 'running', 0, 0), ('echo', 'running', 0, 0)]


@pytest.mark.timeout(600)
@FUZZ
@given(frame=frames())
def test_every_frame_on_the_socket_is_answered_once_and_the_heads_go_on(socket_app,
                                                                        frame: bytes):
    _, client = socket_app
    client.send_line(frame)
    client.send(recipient='echo', subject='ping', sender='fuzzer', threadid='good', body=1)
    answered = _expects_an_answer(frame)
    got = [client.recv() for _ in range(2 if answered else 1)]  # (heads answer in any order)
    good = [g for g in got if g['threadid'] == 'good']
    assert len(good) == 1 and good[0]['body']['body'] == 1, (frame, got)
    if answered:
        answer = next(g for g in got if g is not good[0])
        expected = _thread_of(frame)
        assert expected is None or answer['threadid'] == expected, (frame, answer)
        assert answer['subject'] in ('reply', 'error'), (frame, answer)
        if answer['subject'] == 'error':
            assert isinstance(answer['body']['error'], str) and answer['body']['error']


def _expects_an_answer(frame: bytes) -> bool:
    """Tell whether a frame gets an answer: all do, but blank lines and well-formed errors."""
    if not frame.strip():
        return False  # a blank line is no frame
    try:
        envelope = codec.decode(frame, route='uds', poison_pill=PILL)
    except EnvelopeError:
        return True  # refused: an error frame
    # An error from outside is not answered (no error storms), unless refused for its sender
    # (a head's name) or its recipient (no such head).
    return (envelope['subject'] != 'error' or envelope['sender'].lower() in HEADS
            or envelope['recipient'] not in HEADS)


def _thread_of(frame: bytes) -> str | None:
    """Return the thread id a frame's answer carries, when the frame has a usable one."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    thread = obj.get('threadid') if isinstance(obj, dict) else None
    return thread if isinstance(thread, str) and 0 < len(thread) <= 128 else None


def test_the_fuzz_covers_what_it_should() -> None:
    """The strategies do produce good frames, bad headers and non-JSON (a guard on the guard)."""
    seen = {'good': 0, 'bad': 0, 'raw': 0}

    @settings(max_examples=300, deadline=None, database=None)
    @given(frame=frames())
    def classify(frame: bytes) -> None:
        try:
            obj = orjson.loads(frame)
        except orjson.JSONDecodeError:
            seen['raw'] += 1
            return
        good = (isinstance(obj, dict) and obj.get('recipient') == 'echo'
                and obj.get('subject') == 'ping' and isinstance(obj.get('sender'), str))
        seen['good' if good else 'bad'] += 1

    classify()
    assert all(seen.values()), seen
