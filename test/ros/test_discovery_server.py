"""A discovery server for an application's participants: started by it, or one named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from program import Program
from polycephaly_ros import Application, ConfigurationError

APP = Path(__file__).resolve().parents[1] / 'support' / 'scale_app.py'


def run_app(*args: str) -> dict:
    program = Program(str(APP), *args)
    try:
        line = program.wait_for(r'^report ', timeout=90)
        assert program.finish(60) == 0, program.output
    finally:
        program.kill()
    return json.loads(line.split(' ', 1)[1])


@pytest.mark.fast
@pytest.mark.parametrize('bad', ['', 'server', '127.0.0.1', 'host:port', ':11811', 5])
def test_a_bad_discovery_server_option_is_refused_naming_it(bad):
    with pytest.raises(ConfigurationError, match='discovery_server'):
        Application(discovery_server=bad)


@pytest.mark.parametrize('parallel', [False, True])
def test_an_application_starts_its_discovery_server_on_loopback_and_stops_it(parallel):
    report = run_app('4', '--ros', '--discovery', 'start', *(['--parallel'] * parallel))
    (pid, addresses), = report['discovery_server'].items()
    assert addresses and all(a.startswith('127.0.0.1:') for a in addresses), addresses
    address = report['main']['environment']['ROS_DISCOVERY_SERVER']
    assert address.startswith('127.0.0.1:') and address in addresses
    # Every head's participant is the server's client, and main's node saw every head's node.
    assert [h['environment']['ROS_DISCOVERY_SERVER'] for h in report['heads']] == [address] * 4
    assert not os.path.exists(f'/proc/{pid}'), 'the discovery server outlived the application'


def test_an_application_uses_a_discovery_server_already_running():
    from polycephaly_ros.ros import discovery_server

    address, close = discovery_server.start()
    try:
        report = run_app('2', '--ros', '--discovery', address)
    finally:
        close()
    assert report['discovery_server'] == {}  # (it started none of its own)
    assert [h['environment']['ROS_DISCOVERY_SERVER'] for h in report['heads']] == [address] * 2
