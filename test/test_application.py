"""The application's own lifetime: what run() makes is undone however it ends."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from harness import Harness, run_script
from heads import Echo, SaysBorn
from polycephaly_ros import application

pytestmark = pytest.mark.fast


def _open_descriptors() -> set[int]:
    return {int(fd) for fd in os.listdir('/proc/self/fd')}


def test_a_run_that_fails_half_way_through_its_set_up_leaves_nothing_behind(monkeypatch):
    def broken(*args, **kwargs) -> None:
        raise RuntimeError('set-up failed here')  # the last step before the main head runs

    Harness(lambda main: None, [(Echo, {})]).run()  # multiprocessing's own lasting helpers
    monkeypatch.setattr(application, 'HeadRuntime', broken)
    scratch = Path(os.environ['TMPDIR'])
    before_dirs = set(scratch.glob('polycephaly-*'))
    before_fds = _open_descriptors()
    app = Harness(lambda main: None, [(Echo, {}), (Echo, {'name': 'other'})])
    with pytest.raises(RuntimeError, match='set-up failed here'):
        app.run()
    assert set(scratch.glob('polycephaly-*')) == before_dirs  # run directory removed
    assert _open_descriptors() <= before_fds  # sockets, inboxes and wakers closed


def test_a_process_heads_log_records_reach_the_applications_handlers(caplog):
    def script(main):
        return main.application.status()[0]['pid']

    with caplog.at_level(logging.INFO):
        app = run_script(script, [(SaysBorn, {'name': 'sayer', 'mode': 'process'})])
    pid = app.outcome
    assert pid != os.getpid()
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records
            if r.name == 'polycephaly_ros.sayer'] == [
        ('polycephaly_ros.sayer', 'WARNING', f'born in process {pid}')]
