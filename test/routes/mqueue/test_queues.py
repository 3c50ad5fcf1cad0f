"""Our queue's life: stale queues of dead owners, a live owner, removal, and other users (nobody).

The attacks from another user run a small program as uid ``nobody`` (the tests run as root),
which calls mq_open(3) through ctypes: the queue's mode alone must turn it away.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import subprocess
import sys
import uuid
from typing import Any, Iterator

import orjson
import posix_ipc
import pytest

from harness import Harness, ask, run_script
from heads import RouteEcho
from mq_heads import ProbedMqueue
from mq_peer import MqPeer
from polycephaly_ros import Process
from polycephaly_ros.errors import EXIT_CONFIG
from polycephaly_ros.routes.mqueue.queues import default_sizes

NOBODY = 65534
as_root = pytest.mark.skipif(os.getuid() != 0, reason='needs root to act as uid nobody')


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    """Return queue names of this test's own: 'route' and 'peer'; remove them after."""
    tag = uuid.uuid4().hex[:12]
    made = {kind: f'/pcyt-{tag}.{kind}' for kind in ('route', 'peer')}
    yield made
    for name in made.values():
        try:
            posix_ipc.unlink_message_queue(name)
        except posix_ipc.ExistentialError:
            pass


def heads_for(names: dict[str, str], **route: Any) -> list:
    return [(ProbedMqueue, {'name': 'mq', 'queue': names['route'], 'peer_queue': names['peer'],
                            **route}),
            (RouteEcho, {'name': 'echo'})]


def left_behind(name: str, mode: int = 0o600, sizes: tuple[int, int] | None = None,
                messages: int = 1) -> None:
    """Leave a queue as a dead owner would: made, a ping or more in it, not removed, unlocked."""
    count, size = sizes or default_sizes()
    old_umask = os.umask(0)
    try:
        mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, mode=mode, max_messages=count,
                                    max_message_size=size)
    finally:
        os.umask(old_umask)
    for n in range(messages):
        mq.send(orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'early',
                              'body': n}))
    mq.close()


def test_a_stale_queue_like_ours_is_taken_over_with_the_messages_left_in_it(
        names: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    # The peer sent while the route was away: nothing it sent is lost.
    peer = MqPeer(names['peer'], names['route'])
    left_behind(names['route'], messages=3)

    def script(main: Process) -> list[dict]:
        return [peer.recv() for _ in range(3)]

    caplog.set_level(logging.INFO)
    try:
        replies = run_script(script, heads_for(names), ros=False).outcome
    finally:
        peer.close()
    assert [(r['recipient'], r['body']['body']) for r in replies] == [('early', n)
                                                                     for n in range(3)]
    assert 'left by an owner that is gone (3 message(s) waiting in it)' in caplog.text


@pytest.mark.parametrize('unlike', ['mode', 'sizes'])
def test_a_stale_queue_unlike_ours_is_replaced(names: dict[str, str], unlike: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    if unlike == 'mode':
        left_behind(names['route'], mode=0o666)
    else:
        left_behind(names['route'], sizes=(2, 256))

    def script(main: Process) -> tuple[os.stat_result, int, int]:
        probe = posix_ipc.MessageQueue(names['route'])
        try:
            return os.fstat(probe.mqd), probe.current_messages, probe.max_messages
        finally:
            probe.close()

    st, waiting, max_messages = run_script(script, heads_for(names), ros=False).outcome
    assert stat.S_IMODE(st.st_mode) == 0o600 and waiting == 0
    assert max_messages == default_sizes()[0]
    assert 'replaced the stale queue' in caplog.text and '1 message(s) in it were dropped' in \
        caplog.text


def test_a_queue_a_live_route_serves_is_not_taken(names: dict[str, str]) -> None:
    live = posix_ipc.MessageQueue(names['route'], posix_ipc.O_CREX, mode=0o600)
    fcntl.flock(live.mqd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a serving route holds it
    try:
        app = Harness(lambda main: None, heads_for(names), ros=False)
        code = app.run()
    finally:
        live.close()
    assert code == EXIT_CONFIG
    assert 'another route serves the queue' in app.reason


def test_the_queue_is_removed_on_stop_and_made_again_by_a_restart(names: dict[str, str]) -> None:
    def script(main: Process) -> Any:
        before = os.fstat((probe := posix_ipc.MessageQueue(names['route'])).mqd).st_ino
        probe.close()
        return before

    run_script(script, heads_for(names), ros=False)
    with pytest.raises(posix_ipc.ExistentialError):
        posix_ipc.MessageQueue(names['route'])
    run_script(script, heads_for(names), ros=False)  # no stale queue, no error


# -- other users -------------------------------------------------------------------------------
_AS_NOBODY = '''
import ctypes, os, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534); os.umask(0)
libc = ctypes.CDLL(None, use_errno=True)
name, action = sys.argv[1].encode(), sys.argv[2]
if action == 'create':
    fd = libc.mq_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, ctypes.c_uint(0o666), None)
    print('made' if fd >= 0 else os.strerror(ctypes.get_errno()))
    sys.exit(0)
for what, flag in (('send', os.O_WRONLY), ('take', os.O_RDONLY)):
    fd = libc.mq_open(name, flag)
    print(what, 'allowed' if fd >= 0 else os.strerror(ctypes.get_errno()))
'''


def as_nobody(name: str, action: str = 'open') -> list[str]:
    """Run the program above as nobody on a queue; return what it printed."""
    done = subprocess.run([sys.executable, '-S', '-c', _AS_NOBODY, name, action],
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done
    return done.stdout.decode().splitlines()


@as_root
@pytest.mark.parametrize('mode', [0o600, 0o620, 0o660])
def test_another_user_can_neither_send_to_nor_take_from_our_queue(names: dict[str, str],
                                                                  mode: int) -> None:
    route = {'queue_mode': mode} if mode == 0o600 else {'queue_mode': mode, 'group': 0}
    tried = run_script(lambda main: as_nobody(names['route']), heads_for(names, **route),
                       ros=False).outcome
    assert tried == ['send Permission denied', 'take Permission denied']


@as_root
def test_a_queue_another_user_made_under_our_names_is_used_for_nothing(
        names: dict[str, str]) -> None:
    # nobody squats on both names with world-writable queues before the application starts:
    # ours is replaced (root may remove it), and nothing is sent to the peer's.
    assert as_nobody(names['route'], 'create') == ['made']
    assert as_nobody(names['peer'], 'create') == ['made']

    def script(main: Process) -> Any:
        probe = posix_ipc.MessageQueue(names['route'])
        st = os.fstat(probe.mqd)
        probe.close()
        bounce = main.wait_for_reply(main.send('panel', 'secret', via='mq'), timeout=10)
        squat = posix_ipc.MessageQueue(names['peer'])
        try:
            return st, bounce, squat.current_messages, ask(main, 'mq', 'stats')
        finally:
            squat.close()

    st, bounce, in_squat, stats = run_script(script, heads_for(names), ros=False).outcome
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.getuid(), 0o600)
    assert bounce['subject'] == 'error'
    assert f'belongs to uid {NOBODY}, not one of' in bounce['body']['error']
    assert in_squat == 0 and stats['send_failed'] == 1
