"""Fast DDS shared memory: the segments holding envelope bodies are this user's alone."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ask, run_ros_script
from heads import Echo

SEGMENT = re.compile(r'fastdds_[0-9a-z]{16}')
_READ_AS_NOBODY = '''
import os, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
for path in sys.argv[1:]:
    try:
        open(path, 'rb').read(16)
        print('read', path)
    except OSError as e:
        print('refused', e.strerror)
'''


def _our_segments() -> list[Path]:
    return [Path(e.path) for e in os.scandir('/dev/shm')
            if SEGMENT.fullmatch(e.name) and e.stat().st_uid == os.getuid()]


@pytest.mark.parametrize('private', [True, False])
def test_the_segments_of_an_application_are_private_unless_asked(private):
    def script(main):
        assert ask(main, 'echo', 'ping', 'secret body') == 'secret body'
        return {p: stat.S_IMODE(p.stat().st_mode) for p in _our_segments()}

    modes = run_ros_script(script, [(Echo, {'mode': 'process'})],
                           private_shared_memory=private).outcome
    assert len(modes) >= 2  # the main process's and the head process's
    if private:
        assert set(modes.values()) == {0o600}
    else:
        assert 0o644 in set(modes.values())  # Fast DDS's own choice: readable by everyone


@pytest.mark.skipif(os.getuid() != 0, reason='needs root to act as uid nobody')
def test_another_user_cannot_read_the_segments():
    def script(main):
        ask(main, 'echo', 'ping', 'secret body')
        segments = [str(p) for p in _our_segments()]
        done = subprocess.run([sys.executable, '-S', '-c', _READ_AS_NOBODY, *segments],
                              capture_output=True, text=True, timeout=30)
        return segments, done.stdout.splitlines()

    segments, lines = run_ros_script(script, [(Echo, {'mode': 'process'})]).outcome
    assert segments and lines == ['refused Permission denied'] * len(segments)
