"""Hostile neighbours: another user's directory or server, another robot on the same machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import Harness, run_script
from heads import RouteEcho
from polycephaly_ros import EXIT_CONFIG, Process
from polycephaly_ros.robot import config as cfg
from polycephaly_ros.routes.unix_socket import UnixSocketClientHead, UnixSocketServerHead
from robot_support import procs, write_config  # noqa: F401 (fixture)

NOBODY = 65534
as_root = pytest.mark.skipif(os.getuid() != 0, reason='needs root to act as uid nobody')


def _serve(path: Path) -> Harness:
    heads = [(UnixSocketServerHead, {'name': 'uds_server', 'path': str(path),
                                     'restart': 'on_failure'}),
             (RouteEcho, {'name': 'echo'})]
    return Harness(lambda main: None, heads)


@pytest.fixture
def shared_dir():
    """A directory under /tmp that every user may pass through (the tests' own are private)."""
    path = Path(tempfile.mkdtemp(prefix='pcy-shared-', dir='/tmp'))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@as_root
def test_a_socket_directory_another_user_made_first_is_refused_at_start(shared_dir, caplog):
    taken = shared_dir / 'polycephaly-0'
    taken.mkdir(mode=0o700)
    os.chown(taken, NOBODY, NOBODY)  # another user got there first
    started = time.monotonic()
    app = _serve(taken / 'robot.sock')
    assert app.run() == EXIT_CONFIG  # stops at once: restarting cannot help
    assert f'belongs to uid {NOBODY}' in app.reason
    assert time.monotonic() - started < 10 and caplog.text.count('restarting head') == 0


@pytest.mark.parametrize('problem', ['world-writable', 'symlink'])
def test_a_socket_directory_others_may_change_is_refused_at_start(shared_dir, problem):
    if problem == 'world-writable':
        directory = shared_dir / 'open'
        directory.mkdir()
        directory.chmod(0o777)
        expected = 'others may write to the socket directory'
    else:
        (shared_dir / 'real').mkdir(mode=0o700)
        directory = shared_dir / 'link'
        directory.symlink_to(shared_dir / 'real')
        expected = 'is not a directory (a symbolic link?)'
    app = _serve(directory / 's')
    assert app.run() == EXIT_CONFIG and expected in app.reason


def test_a_second_server_on_a_live_path_stops_with_a_clear_error_and_no_restart_loop(
        tmp_path, caplog):
    path = tmp_path / 's'

    def script(main: Process):
        second = _serve(path)
        second.handle_signals = False
        code = second.run()  # (in this thread: the first one serves meanwhile from its own)
        return code, second.reason

    code, reason = run_script(script, [(UnixSocketServerHead, {'name': 'first',
                                                               'path': str(path),
                                                               'transport_thread': True}),
                                       (RouteEcho, {'name': 'echo'})]).outcome
    assert code == EXIT_CONFIG and f'another server is listening on {path}' in reason
    assert 'restarting head' not in caplog.text


_FORGED_SERVER = '''
import os, socket, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(8)
print('listening', flush=True)
conn, _ = s.accept(); conn.settimeout(5)
try:
    data = conn.recv(65536)
except OSError:
    data = b''
print('read', len(data), flush=True)
'''


@as_root
def test_a_client_never_talks_to_a_server_of_another_user(shared_dir):
    theirs = shared_dir / 'polycephaly-0'  # made first by another user, as in the attack
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    path = theirs / 'robot.sock'
    forged = subprocess.Popen([sys.executable, '-S', '-c', _FORGED_SERVER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert forged.stdout.readline() == 'listening\n'

        def script(main: Process):
            sent = main.send('status', 'get', 'secret request', via='uds')
            return main.wait_for_reply(sent, timeout=10)

        bounce = run_script(script, [(UnixSocketClientHead, {
            'name': 'uds', 'path': str(path), 'backoff': (0.05, 0.1)})]).outcome
        forged.wait(10)
        output = forged.stdout.read()
    finally:
        forged.kill()
        forged.wait()
    # It connected (the file system let it), saw uid 65534 and hung up: nothing was sent.
    assert bounce['subject'] == 'error' and 'not connected' in bounce['body']['error']
    assert output == 'read 0\n'


def test_the_default_socket_path_is_per_namespace():
    one = cfg.load(None, ['robot.namespace=/robot_one'])
    two = cfg.load(None, ['robot.namespace=/robot_two'])
    assert cfg.socket_path(one) != cfg.socket_path(two)
    assert '/robot_one/' in cfg.socket_path(one) and '/robot_two/' in cfg.socket_path(two)


def test_the_touchscreen_never_takes_another_robot_s_service_for_its_own(tmp_path, procs):
    config = write_config(tmp_path, robot={'namespace': '/robot_one'})
    service = procs.service(config)
    screen = procs.touchscreen(config, '--namespace', '/robot_two')
    _, unreachable = screen.event('unreachable', where=lambda e: 'another' in e['error'])
    assert "belongs to another robot (namespace '/robot_one', not '/robot_two')" in \
        unreachable['error']
    assert screen.stop() == 0
    assert service.stop() == 0
