"""The pipes' directory and files: checked like ssh-agent's, stale pipes, a live route, nobody.

The attack from another user runs a small program as uid ``nobody`` (the tests run as root):
the pipes' mode alone must turn it away, even in a directory anyone may pass through.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from fifo_peer import FifoPeer
from harness import Harness, run_script
from heads import RouteEcho
from polycephaly_ros import Process
from polycephaly_ros.errors import EXIT_CONFIG
from polycephaly_ros.routes.fifo import FifoRouteHead

NOBODY = 65534
as_root = pytest.mark.skipif(os.getuid() != 0, reason='needs root to act as uid nobody')


def heads_for(directory: Path, **route: Any) -> list:
    return [(FifoRouteHead, {'name': 'fifo', 'directory': str(directory), **route}),
            (RouteEcho, {'name': 'echo'})]


def start_fails(directory: Path, **route: Any) -> str:
    """Run an application with the route on directory; return why it could not start (78)."""
    app = Harness(lambda main: None, heads_for(directory, **route), ros=False)
    assert app.run() == EXIT_CONFIG
    return app.reason


def served(directory: Path) -> dict:
    """Run the route on directory and return echo's answer to a ping through its pipes."""
    def script(main: Process) -> dict:
        peer = FifoPeer(directory)
        try:
            peer.send(recipient='echo', subject='ping', body='ok')
            return peer.recv()
        finally:
            peer.close()

    return run_script(script, heads_for(directory), ros=False).outcome


def test_an_unsafe_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / 'link'
    (tmp_path / 'real').mkdir(mode=0o700)
    link.symlink_to(tmp_path / 'real')
    assert 'not a directory (a symbolic link?)' in start_fails(link)
    loose = tmp_path / 'loose'
    loose.mkdir()
    loose.chmod(0o770)
    assert 'others may write to the pipe directory' in start_fails(loose)
    if os.getuid() == 0:
        theirs = tmp_path / 'theirs'
        theirs.mkdir(mode=0o700)
        os.chown(theirs, NOBODY, -1)
        assert f'belongs to uid {NOBODY}' in start_fails(theirs)
    assert 'cannot make the pipe directory' in start_fails(tmp_path / 'no' / 'such')


def test_what_is_found_in_the_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pipes = tmp_path / 'pipes'
    pipes.mkdir(mode=0o700)
    (pipes / 'in').write_text('a file')
    assert 'is not a named pipe; refusing to replace it' in start_fails(pipes)
    (pipes / 'in').unlink()
    # A live route's pipe: something reads it.
    os.mkfifo(pipes / 'in', 0o600)
    reader = os.open(pipes / 'in', os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert 'another process reads' in start_fails(pipes)
    finally:
        os.close(reader)
    # A stale pipe like ours (nobody reads it) is used as it is; one unlike ours is replaced.
    caplog.set_level(logging.INFO)
    kept = os.lstat(pipes / 'in').st_ino
    os.mkfifo(pipes / 'out', 0o600)
    os.chmod(pipes / 'out', 0o666)
    seen: dict[str, Any] = {}

    def script(main: Process) -> None:
        seen.update({name: os.lstat(pipes / name) for name in ('in', 'out')})

    run_script(script, heads_for(pipes), ros=False)
    assert seen['in'].st_ino == kept  # (a replaced one may get the same inode number back)
    assert stat.S_IMODE(seen['out'].st_mode) == 0o600
    assert 'using the pipe' in caplog.text and 'replacing the pipe' in caplog.text
    assert served(pipes)['body']['body'] == 'ok'


def test_fifo_mode_0660_with_a_group_and_its_directory(tmp_path: Path) -> None:
    pipes = tmp_path / 'pipes'

    def script(main: Process) -> dict:
        return {p.name: os.lstat(p) for p in (pipes, pipes / 'in', pipes / 'out')}

    st = run_script(script, heads_for(pipes, fifo_mode=0o660, group=os.getgid()),
                    ros=False).outcome
    assert stat.S_IMODE(st['pipes'].st_mode) == 0o710  # the group may pass, not list or write
    assert all(stat.S_ISFIFO(st[n].st_mode) and stat.S_IMODE(st[n].st_mode) == 0o660
               and st[n].st_gid == os.getgid() for n in ('in', 'out'))


_AS_NOBODY = '''
import os, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
for name, flags in (('in', os.O_WRONLY), ('out', os.O_RDONLY)):
    try:
        os.close(os.open(os.path.join(sys.argv[1], name), flags | os.O_NONBLOCK))
        print(name, 'opened')
    except OSError as e:
        print(name, e.strerror)
'''


def as_nobody(directory: Path) -> list[str]:
    done = subprocess.run([sys.executable, '-S', '-c', _AS_NOBODY, str(directory)],
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done
    return done.stdout.decode().splitlines()


@as_root
def test_another_user_can_open_neither_pipe() -> None:
    # A directory anyone may pass through, so that only the pipes' own mode decides; then the
    # route's own 0700 directory.
    shared = Path(tempfile.mkdtemp(prefix='pcy-nobody-', dir='/tmp'))
    shared.chmod(0o755)

    def script(main: Process) -> tuple[list[str], list[str]]:
        return as_nobody(shared / 'open'), as_nobody(shared / 'private')

    heads = [(FifoRouteHead, {'name': 'open', 'directory': str(shared / 'open')}),
             (FifoRouteHead, {'name': 'private', 'directory': str(shared / 'private')}),
             (RouteEcho, {'name': 'echo'})]
    os.mkdir(shared / 'open', 0o755)
    try:
        by_mode, by_directory = run_script(script, heads, ros=False).outcome
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert by_mode == by_directory == ['in Permission denied', 'out Permission denied']
