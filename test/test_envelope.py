"""Envelope headers, replies and ids."""

import copy
import re
import time
import uuid

import pytest

from polycephaly_ros import EnvelopeError
from polycephaly_ros import envelope as env

pytestmark = pytest.mark.fast

UUID4 = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}')


def test_new_envelope_has_the_seed_headers_and_extra_ones():
    before = time.time()
    e = env.make('hello', 'Main', 'salutation', 'Hello, World!', {'args': ('Arg1',), 'acme': 1})
    assert e['sender'] == 'hello' and e['recipient'] == 'main'
    assert e['subject'] == 'salutation' and e['body'] == 'Hello, World!'
    assert UUID4.fullmatch(e['messageid']) and UUID4.fullmatch(e['threadid'])
    assert e['messageid'] != e['threadid']
    assert e['threadindex'] == 1
    assert before <= e['time'] <= time.time()
    assert e['args'] == ('Arg1',) and e['acme'] == 1


def test_ids_are_unique_uuid4_text():
    ids = {env.new_id() for _ in range(20000)}
    assert len(ids) == 20000
    assert all(UUID4.fullmatch(i) for i in ids)
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 for i in ids)


def test_reply_keeps_the_thread_echoes_headers_and_leaves_the_original_alone():
    request = env.make('hello', 'main', 'salutation', 'hi', {'args': (1, 2), 'kwargs': {'a': 1}})
    kept = copy.deepcopy(request)
    answer = env.answer(request, 'main', 'thanks', headers={'acme': 123})
    assert request == kept
    assert answer['recipient'] == 'hello' and answer['sender'] == 'main'
    assert answer['subject'] == 'reply' and answer['body'] == 'thanks'
    assert answer['threadid'] == request['threadid']
    assert answer['threadindex'] == 2
    assert answer['messageid'] != request['messageid']
    assert answer['args'] == (1, 2) and answer['kwargs'] == {'a': 1} and answer['acme'] == 123
    assert env.is_reply_to(answer, request)
    assert env.answer(answer, 'hello')['threadindex'] == 3


def test_reply_match_needs_thread_sender_and_later_index():
    request = env.make('a', 'b', 's')
    forged = env.answer(request, 'c')  # right thread, wrong head
    assert not env.is_reply_to(forged, request)
    assert not env.is_reply_to(env.make('b', 'a', 'reply'), request)


@pytest.mark.parametrize('header', ['messageid', 'threadid', 'sender', 'time'])
def test_caller_cannot_set_framework_headers(header):
    with pytest.raises(EnvelopeError, match=header):
        env.make('a', 'b', 's', headers={header: 'x'})


@pytest.mark.parametrize('bad', ['', None, 3])
def test_recipient_must_be_a_name(bad):
    with pytest.raises(EnvelopeError, match='recipient'):
        env.make('a', bad)


@pytest.mark.parametrize('name', ['Hello', 'HELLO', 'hello'])
def test_head_names_are_case_insensitive(name):
    assert env.normalize_name(name) == 'hello'


@pytest.mark.parametrize('name', ['9lives', 'with space', 'dash-ed', ''])
def test_invalid_head_names_are_refused(name):
    with pytest.raises(EnvelopeError, match='invalid head name'):
        env.normalize_name(name)


def test_ids_are_drawn_safely_from_many_threads_at_once():
    import threading

    got: list[list[str]] = []
    errors: list[BaseException] = []

    def draw() -> None:
        mine = []
        try:
            for _ in range(5000):
                mine.append(env.make('a', 'b', 's')['messageid'])
        except BaseException as exc:  # an IndexError from an emptied pool, before the fix
            errors.append(exc)
        got.append(mine)

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [i for mine in got for i in mine]
    assert errors == [] and len(ids) == 40000 and len(set(ids)) == 40000
