"""Fuzzing the external routes with generated frames: no head ever falls, every frame answered.

Frames come from Hypothesis strategies that mix well-formed envelopes with every kind of bad
header (missing, mistyped, out of range, control subjects, heads' names as sender) and bad
bytes, on the Unix socket and on a head's two ROS inbox topics (typed ``Envelope`` and
``inbox_json``). Each frame must get exactly one answer (a reply, or an error naming what was
wrong) when it has a sender that can be answered, none otherwise, and a well-behaved request
sent right after it is answered too. At the end every head still runs, with no error counted.
``POLYCEPHALY_FUZZ_EXAMPLES`` (default 2000) sets the frames per route.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness import Running
from heads import RouteEcho
from plain_ros import plain_node
from polycephaly_ros import EnvelopeError, codec
from polycephaly_ros.envelope import normalize_name
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
texts = st.text(st.characters(exclude_categories=('Cs',)), max_size=40)
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
    kind = draw(st.integers(0, 9))
    if kind == 0:  # bytes that are no JSON object
        raw = draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
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


@pytest.fixture(scope='module')
def socket_app(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp('fuzz') / 's'
    running = Running([(UnixSocketServerHead, {'name': 'uds_server', 'path': str(path)}),
                       (RouteEcho, {'name': 'echo'})], ppill=PILL)
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


def test_the_ros_fuzz_covers_what_it_should() -> None:
    """Both topics get frames, and some are answered to the fuzzer, some to nobody it sees."""
    seen = {'typed': 0, 'json': 0, 'answered': 0, 'unanswered': 0}

    @settings(max_examples=300, deadline=None, database=None)
    @given(frame=ros_frames())
    def classify(frame: tuple[str, dict]) -> None:
        seen[frame[0]] += 1
        seen['unanswered' if _ros_answered(*frame) is None else 'answered'] += 1

    classify()
    assert all(seen.values()), seen


# -- the ROS inbox topics ----------------------------------------------------------------------
FUZZER = 'fuzzer'  # a plain ROS node's reply-to name: the answers to it can be watched
senders = st.sampled_from([FUZZER] * 6 + ['FUZZER', 'echo', 'main', 'polycephaly', '', 'ghost',
                                          '9x', 'a b']) | texts
json_texts = json_values.map(lambda v: orjson.dumps(v).decode()) | texts
headers_texts = (st.dictionaries(st.sampled_from(['via', 'route', 'sender', 'priority', 'x',
                                                  'threadindex', 'reply_to']), any_value,
                                 max_size=3).map(lambda v: orjson.dumps(v).decode())
                 | st.sampled_from(['', '{}', '[]', 'null']) | texts)


@st.composite
def ros_frames(draw: Any) -> tuple[str, dict]:
    """Return ('typed', fields of an Envelope message) or ('json', {'data': text})."""
    sender = draw(senders)
    # An answer to the fuzzer is told apart by its thread: that thread id is always usable.
    thread = uuid.uuid4().hex if sender.lower() == FUZZER else draw(texts)
    if draw(st.booleans()):
        return 'typed', {
            'sender': sender, 'threadid': thread,
            'recipient': draw(st.sampled_from(['echo', 'ECHO', 'main', 'nobody', '']) | texts),
            'subject': draw(st.sampled_from(['ping', 'other', PILL, 'polycephaly.ebrake',
                                             'error', '']) | texts),
            'messageid': draw(st.sampled_from(['']) | texts | st.text(min_size=129,
                                                                       max_size=200)),
            'threadindex': draw(st.integers(0, 2**32 - 1)),
            'priority': draw(st.integers(-2**31, 2**31 - 1)),
            'time': draw(st.floats()),
            'route': draw(st.sampled_from(['', 'ros', 'uds']) | texts),
            'body_json': draw(json_texts),
            'headers_json': draw(headers_texts),
        }
    raw = draw(frames())
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 'json', {'data': raw.decode(errors='replace')}
    if isinstance(obj, dict) and draw(st.integers(0, 3)):
        obj['sender'] = sender
        obj['threadid'] = thread
        obj.setdefault('recipient', 'echo')
    return 'json', {'data': orjson.dumps(obj).decode()}


class Fuzzer:
    """A plain rclpy node that publishes frames to echo's inbox topics and collects answers."""

    def __init__(self, node: Any, executor: Any) -> None:
        from std_msgs.msg import String

        from rclpy.event_handler import PublisherEventCallbacks

        from polycephaly_ros.msg import Envelope
        from polycephaly_ros.ros.topics import inbox_qos

        self.Envelope, self.String = Envelope, String
        self.answers: list[Any] = []
        self.expected: set[str] = set()
        self.arrived = threading.Condition()
        node.create_subscription(Envelope, f'polycephaly/{FUZZER}/inbox', self._answer,
                                 inbox_qos())
        self.matched = [threading.Event(), threading.Event()]
        self.typed, self.json = (
            node.create_publisher(kind, f'polycephaly/echo/{topic}', inbox_qos(),
                                  event_callbacks=PublisherEventCallbacks(
                                      matched=lambda info, m=matched: m.set()))
            for kind, topic, matched in ((Envelope, 'inbox', self.matched[0]),
                                         (String, 'inbox_json', self.matched[1])))
        self.spinner = threading.Thread(target=executor.spin, daemon=True)
        self.spinner.start()

    def _answer(self, msg: Any) -> None:
        with self.arrived:
            self.answers.append(msg)
            self.arrived.notify_all()

    def answer(self, thread: str, timeout: float = 10.0) -> Any:
        """Return the answer of a thread once it arrived."""
        with self.arrived:
            assert self.arrived.wait_for(
                lambda: any(a.threadid == thread for a in self.answers), timeout), thread
            return next(a for a in self.answers if a.threadid == thread)

    def publish(self, kind: str, fields: dict) -> None:
        if kind == 'typed':
            self.typed.publish(self.Envelope(**fields))
        else:
            self.json.publish(self.String(**fields))


@pytest.fixture(scope='module')
def ros_app():
    running = Running([(RouteEcho, {'name': 'echo'})], ppill=PILL, ros=True)
    try:
        with plain_node(FUZZER) as (node, executor):
            fuzzer = Fuzzer(node, executor)
            # Both inbox topics of echo are subscribed before the first frame.
            assert all(matched.wait(30) for matched in fuzzer.matched)
            ping(fuzzer, 'first')
            yield running, fuzzer
            ping(fuzzer, 'last')  # every stray answer of the frames came before this one
            seen = [a.threadid for a in fuzzer.answers]
            assert len(seen) == len(set(seen)), 'a frame was answered twice'
            strays = {t for t in seen if not t.startswith('good-')} - fuzzer.expected
            assert not strays, [a for a in fuzzer.answers if a.threadid in strays]
            # No frame, whatever sender it claimed, made an error envelope reach main (on its own
            # inbox topic, where main's filters take nothing: it would count as unmatched).
            assert running.main.unmatched == 0
    finally:
        final = running.close()
    assert [(h['name'], h['state'], h['exits'], h['errors']) for h in final] == [
        ('echo', 'running', 0, 0)]


def ping(fuzzer: Fuzzer, thread: str) -> None:
    """Send a well-behaved request to echo and wait for its reply."""
    fuzzer.publish('typed', {'sender': FUZZER, 'recipient': 'echo', 'subject': 'ping',
                             'threadid': f'good-{thread}', 'body_json': '1'})
    reply = fuzzer.answer(f'good-{thread}')
    assert reply.subject == 'reply' and orjson.loads(reply.body_json)['body'] == 1


@pytest.mark.timeout(600)
@settings(FUZZ, phases=[Phase.generate])  # (no shrinking: a missing answer costs its timeout)
@given(frame=ros_frames())
def test_every_frame_on_the_inbox_topics_is_answered_once_and_the_heads_go_on(ros_app, frame):
    _, fuzzer = ros_app
    kind, fields = frame
    fuzzer.publish(kind, fields)
    thread = _ros_answered(kind, fields)
    ping(fuzzer, uuid.uuid4().hex)
    if thread is not None:
        fuzzer.expected.add(thread)
        answer = fuzzer.answer(thread)
        assert answer.subject in ('reply', 'error'), (frame, answer)
        if answer.subject == 'error':
            assert orjson.loads(answer.body_json)['error'], (frame, answer)


def _ros_answered(kind: str, fields: dict) -> str | None:
    """Return the thread of the answer the fuzzer gets for a frame; None when it gets none."""
    from polycephaly_ros.msg import Envelope
    from polycephaly_ros.ros import convert

    # What the peer receives: ROS strings are C strings, cut at the first NUL on the way.
    fields = {k: v.split('\x00', 1)[0] if isinstance(v, str) else v for k, v in fields.items()}
    try:
        if kind == 'typed':
            envelope = convert.from_message(Envelope(**fields), poison_pill=PILL)
        else:
            envelope = convert.from_json_text(fields['data'], poison_pill=PILL)
    except EnvelopeError:  # refused: answered when the sender is the fuzzer
        original = fields if kind == 'typed' else _object(fields['data'])
        envelope, answered = original, True
    else:
        answered = (envelope['recipient'] != 'echo'  # refused, or taken by echo:
                    or (envelope['sender'].lower() not in HEADS
                        and envelope['subject'] != 'error'))
    sender = envelope.get('sender')
    if not (answered and isinstance(sender, str) and _name(sender) == FUZZER):
        return None
    return envelope['threadid']


def _object(text: str) -> dict:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _name(text: str) -> str | None:
    try:
        return normalize_name(text)
    except EnvelopeError:
        return None
