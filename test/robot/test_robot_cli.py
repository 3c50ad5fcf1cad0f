"""The robot scripts' shared options: a bad --log-level is refused before anything starts."""

from __future__ import annotations

import subprocess

import pytest

from polycephaly_ros.robot.cli import log_level
from robot_support import script


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
