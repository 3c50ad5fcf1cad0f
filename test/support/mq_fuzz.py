"""Generated frames for the fuzz suites of the message queue and named pipe routes.

Shared by test/attacks/test_mqueue_fuzz.py and test/attacks/test_fifo_fuzz.py: well-formed
envelopes mixed with every kind of bad header (missing, mistyped, out of range, control
subjects, heads' names as sender) and bytes that are no JSON object, and what the route must
answer to each.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get('POLYCEPHALY_FUZZ_EXAMPLES', '2000'))
PILL = 'STOP-THE-APPLICATION'
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
names = st.builds(str.__add__, st.sampled_from(_LETTERS),  # name-shaped (cheaper than a regex)
                  st.text(_LETTERS + '0123456789_', max_size=20))
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(  # (small: generating is most of a suite's time)
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                         inner, max_size=3),
    max_leaves=5)
any_value = scalars | st.sampled_from(['', 'main', 'echo', 'route', PILL, 'error',
                                       'polycephaly.exited', 'ping', 'a b', '9x']) | json_values
headers = {
    'recipient': st.sampled_from(['echo', 'ECHO', 'nobody', 'main', 'route']) | any_value,
    'subject': st.sampled_from(['ping', 'other', PILL, 'polycephaly.ebrake', 'error'])
    | any_value,
    'sender': names | any_value,
    'threadindex': st.integers(-5, 2**64) | st.sampled_from([0, 1, 2**32 - 1, 2**32])
    | any_value,
    'priority': st.integers(-2**32, 2**32) | st.floats() | any_value,
    'time': st.floats() | any_value,
    'messageid': st.text(max_size=200) | any_value,
    'via': any_value,
    'route': any_value,
    'body': json_values,
}


@st.composite
def frames(draw: Any) -> bytes:
    """Return one frame, no newline in it: a JSON object with some headers, or other bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:  # bytes that are no JSON object (maybe none at all, maybe blank)
        raw = draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
                   | st.sampled_from([b'', b' ', b'\r', b'[]', b'null', b'"x"']))
        return raw.replace(b'\n', b' ')
    chosen = draw(st.lists(st.sampled_from(sorted(headers)), unique=True))
    envelope = {h: draw(headers[h]) for h in chosen}
    if kind == 1:  # a good request, whatever else it carries
        envelope.update(recipient='echo', subject='ping', sender=draw(names))
    envelope['threadid'] = draw(st.uuids()).hex  # so its answer can be told from the others
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError:  # e.g. an integer orjson cannot write: send it as text
        return str(envelope).encode()


def answered(frame: bytes) -> bool:
    """Tell whether a frame gets one answer: all do but those whose subject is 'error'.

    An error from outside is never answered (no error storms between two routes): not when
    the route refuses it, nor when a head takes it.
    """
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return True
    return not (isinstance(obj, dict) and obj.get('subject') == 'error')


def thread_of(frame: bytes) -> str | None:
    """Return the thread id a frame's answer carries, when the frame has a usable one."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    thread = obj.get('threadid') if isinstance(obj, dict) else None
    return thread if isinstance(thread, str) and 0 < len(thread) <= 128 else None


def check_answers(frame: bytes, got: list[dict], expect_answer: bool) -> None:
    """Check what came back for a frame and the good ping after it (in any order)."""
    good = [g for g in got if g.get('threadid') == 'good']
    assert len(good) == 1 and good[0]['body']['body'] == 1, (frame, got)
    if expect_answer:
        answer = next(g for g in got if g is not good[0])
        expected = thread_of(frame)
        assert expected is None or answer['threadid'] == expected, (frame, answer)
        assert answer['subject'] in ('reply', 'error'), (frame, answer)
        if answer['subject'] == 'error':
            assert isinstance(answer['body']['error'], str) and answer['body']['error']
