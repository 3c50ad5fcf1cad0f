"""The robot scripts' shared plumbing: options checked before anything starts, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from polycephaly_ros.robot.cli import log_level
from robot_support import RawClient, procs, script, socket_of, write_config  # noqa: F401


@pytest.mark.parametrize('name', ['polycephaly-system-service', 'polycephaly-touchscreen',
                                  'polycephaly-robot'])
def test_a_bad_log_level_is_refused_with_the_levels_there_are(name):
    out = subprocess.run([script(name), '--log-level', 'bogus'], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert ("invalid log level 'bogus' (choose from DEBUG, INFO, WARNING, ERROR, CRITICAL)"
            in out.stderr)


@pytest.mark.fast
def test_log_levels_in_any_case_and_as_ros_spells_them():
    assert [log_level(t) for t in ('debug', 'Info', 'WARN', 'fatal', 'ERROR')] == [
        'DEBUG', 'INFO', 'WARNING', 'CRITICAL', 'ERROR']


def test_sigint_repeated_while_the_service_stops_never_kills_it(tmp_path, procs):
    config = write_config(tmp_path)
    service = procs.service(config)
    client = RawClient(socket_of(config))
    try:
        assert client.ask('status')['subject'] == 'reply'
    finally:
        client.close()
    service.signal(signal.SIGINT)
    while service.popen.poll() is None:  # Ctrl-C held down: the repetition is the case
        service.signal(signal.SIGINT)
        time.sleep(0.01)
    assert service.wait() == 0, service.log()


def test_headless_off_without_a_display_is_one_clear_line_and_exit_2(tmp_path):
    config = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != 'DISPLAY'}
    out = subprocess.run([script('polycephaly-touchscreen'), '--config', str(config),
                          '--headless', 'off'], capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == ('polycephaly-touchscreen: configuration error: headless is off '
                                  'but there is no display (DISPLAY is not set): set DISPLAY, '
                                  'or use headless on or auto')
