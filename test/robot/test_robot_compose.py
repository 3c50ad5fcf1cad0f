"""polycephaly-robot: both applications from one config as processes; clean stops."""

from __future__ import annotations

import signal

import psutil
import pytest

from robot_support import procs, script, write_config  # noqa: F401 (fixture)


def robot(procs, config, *extra):
    return procs.start('robot', [script('polycephaly-robot'), '--config', str(config), '--json',
                                 *extra])


def test_count_shows_the_two_applications_talking_then_stops(tmp_path, procs):
    config = write_config(tmp_path)
    composition = robot(procs, config, '--count', '3')
    _, reachable = composition.event('reachable')
    _, done = composition.event('done')
    assert done['exchanges']['status'] >= 3 and done['exchanges']['diagnostics'] >= 3
    assert composition.wait() == 0
    log = composition.log()
    assert 'touchscreen exit code 0, service exit code 0' in log
    service = [line for line in composition.seen if '"status"' in line]
    assert service, 'no status exchange printed'


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_everything(tmp_path, procs, signum):
    config = write_config(tmp_path)
    composition = robot(procs, config)
    composition.event('status')
    family = psutil.Process(composition.pid).children(recursive=True)
    assert len(family) >= 3  # service, touchscreen, and the service's process head at least
    composition.signal(signum)
    assert composition.wait() == 0, composition.log()
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f'left behind: {alive}'


def test_a_dead_service_is_restarted_and_the_touchscreen_recovers(tmp_path, procs):
    config = write_config(tmp_path)
    composition = robot(procs, config)
    _, first = composition.event('reachable')
    psutil.Process(first['service_pid']).kill()
    composition.event('unreachable')
    _, again = composition.event('reachable')
    assert again['service_pid'] != first['service_pid']
    composition.signal(signal.SIGINT)
    assert composition.wait() == 0
