"""The directory of an application: its private run directory, addresses, slots and states."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import tempfile

import pytest

from polycephaly_ros import ConfigurationError
from polycephaly_ros import directory as dirs

pytestmark = pytest.mark.fast


def test_every_head_gets_a_private_inbox_socket_slots_and_a_state():
    context = multiprocessing.get_context('forkserver')
    directory, listeners, rundir = dirs.create(['main', 'echo'], 3, context,
                                               routes=['echo'], remote={'status': 'echo'})
    try:
        assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o700
        for name in ('main', 'echo'):
            address = directory[name]
            assert os.path.dirname(address.path) == rundir
            assert stat.S_IMODE(os.stat(address.path).st_mode) == 0o600
            assert address.queue_size == 3 and address.slots.get_value() == 3
        assert directory.names == ['echo', 'main'] and 'echo' in directory
        assert directory.routes == {'echo'} and directory.remote == {'status': 'echo'}
        assert not directory.running('echo')
        directory.set_running('echo', True)
        assert directory.running('echo') and not directory.running('main')
    finally:
        for sock in listeners.values():
            sock.close()
        shutil.rmtree(rundir)


def test_a_name_too_long_for_a_socket_path_is_named_and_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    context = multiprocessing.get_context('forkserver')
    with pytest.raises(ConfigurationError, match="head name 'x{100}' is too long"):
        dirs.create(['main', 'x' * 100], 3, context)
    assert list(tmp_path.iterdir()) == []  # the run directory went with the error
