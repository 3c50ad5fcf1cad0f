"""The package as ament and colcon see it: `colcon test` runs the suite, test-result reports it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_colcon_test_runs_the_suite_and_colcon_test_result_reports_it(tmp_path):
    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'COLCON_PREFIX_PATH', 'AMENT_PREFIX_PATH', 'TMPDIR')}
    env.update(CMAKE_PREFIX_PATH=str(venv), AMENT_PREFIX_PATH=str(venv),
               PYTEST_ADDOPTS='-m fast -q -p no:cacheprovider')
    colcon = [str(venv / 'bin' / 'colcon'), '--log-base', str(tmp_path / 'log')]
    where = ['--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install')]
    subprocess.run([*colcon, 'build', '--base-paths', str(ROOT), '--packages-select',
                    'polycephaly_ros', *where, '--cmake-args',
                    f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=ON'],
                   env=env, check=True, capture_output=True, timeout=600)
    subprocess.run([*colcon, 'test', '--base-paths', str(ROOT), '--packages-select',
                    'polycephaly_ros', *where], env=env, check=True, capture_output=True,
                   timeout=600)
    out = subprocess.run([*colcon, 'test-result', '--test-result-base',
                          str(tmp_path / 'build' / 'polycephaly_ros')],
                         env=env, capture_output=True, text=True, timeout=60)
    summary = re.search(r'Summary: (\d+) tests?, (\d+) errors?, (\d+) failures?, (\d+) skipped',
                        out.stdout)
    assert summary, out.stdout + out.stderr
    tests, errors, failures, _skipped = map(int, summary.groups())
    assert tests >= 100 and errors == failures == 0, out.stdout
