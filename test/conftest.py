"""Test-run isolation for polycephaly_ros, and the fixtures every test folder shares.

Loaded by pytest before any test module, so the settings below are in place before anything
imports rclpy:

* DDS discovery stays on loopback (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``; Kilted ignores
  ``ROS_LOCALHOST_ONLY``, which is removed).
* The run's own ROS domain id and the subreaper come from ``support/isolation.py``.
* Programs the tests start keep their temporary files in one scratch directory, removed at the
  end even when a SIGKILLed program could not remove its own.

The tests mirror the package tree; their helpers live in ``test/support/``, which is put on
``sys.path`` here. ``polycephaly_ros`` is imported from ``.ws/install`` (run the tests through
``./dev test``; ``./dev test --fast`` runs the fast tier, the tests marked ``fast``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest

# -- environment (before any rclpy import) --------------------------------------------------------
# Test helpers (test/support/: harness, heads, raw_client, …) import by plain name from every
# test module (pytest runs with --import-mode=importlib, so test folders are not on sys.path).
_HERE = os.path.dirname(os.path.abspath(__file__))
for _folder in ('support', ''):
    sys.path.insert(0, os.path.join(_HERE, _folder))

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.pop('ROS_LOCALHOST_ONLY', None)

from isolation import ROS_DOMAIN_ID, check_no_leftover_processes, reap_zombies  # noqa: E402

# Programs the tests start put their temporary files (an application's run directory) here, so
# what a SIGKILLed one cannot remove is removed with this directory when the session ends.
_SCRATCH = tempfile.mkdtemp(prefix='pcy-tests-')
os.environ['TMPDIR'] = _SCRATCH
atexit.register(shutil.rmtree, _SCRATCH, True)


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope='session')
def ros_domain() -> int:
    """The ROS domain id reserved for this pytest run (also in ``os.environ['ROS_DOMAIN_ID']``)."""
    return ROS_DOMAIN_ID


@pytest.fixture
def leftover_processes():
    """A callable ``check(timeout=5.0)`` that fails the test if processes it started outlive it."""
    return check_no_leftover_processes


@pytest.fixture
def ros2():
    """Return the real `ros2` command; stop the ros2 daemon it may have started, afterwards."""
    import subprocess

    command = shutil.which('ros2')
    assert command, 'the ros2 command is not installed: ./dev setup installs it'
    yield command
    subprocess.run([command, 'daemon', 'stop'], capture_output=True, timeout=60)


@pytest.fixture(autouse=True)
def _reap_zombies_after_test():
    yield
    reap_zombies()


@pytest.fixture(autouse=True)
def _fast_tier_stays_fast(request):
    """Fail a test of the fast tier (marked ``fast``) that starts rclpy (and so DDS)."""
    if request.node.get_closest_marker('fast') is None:
        yield
        return
    from polycephaly_ros.ros import host

    hosts = host.hosts_started()
    yield
    assert host.hosts_started() == hosts, 'a fast-tier test started rclpy (DDS)'
