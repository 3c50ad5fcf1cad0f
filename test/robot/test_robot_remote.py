"""The system service on MQTT and polycephaly-remote, through a real mosquitto started here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from broker import Broker, free_port
from mqtt_peer import PlainClient
from robot_support import procs, script, write_config  # noqa: F401 (fixture)

TOPICS = 'polycephaly/r1'


@pytest.fixture
def broker(tmp_path: Path, procs):  # noqa: F811 (stopped before procs checks for leftovers)
    with Broker(tmp_path / 'broker') as running:
        yield running


def remote(config: Path, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run polycephaly-remote with the service's configuration."""
    return subprocess.run([script('polycephaly-remote'), '--config', str(config),
                           '--timeout', str(timeout), *args],
                          capture_output=True, text=True, timeout=60)


def test_remote_operators_monitor_and_manage_the_service_over_mqtt(tmp_path, procs, broker):
    config = write_config(tmp_path, service={
        'application': {'ros': 'off'},
        'mqtt': {'enabled': True, 'port': broker.port, 'robot_id': 'r1', 'status_period': 0.3}})
    with PlainClient(broker.port, f'{TOPICS}/status') as presence:
        service = procs.service(config)
        assert presence.next(30).payload == b'online'

    status = remote(config, 'status')
    assert status.returncode == 0, status.stderr
    body = orjson.loads(status.stdout)
    assert body['pid'] == service.pid
    assert {h['name']: h['state'] for h in body['heads']} == {
        'network': 'running', 'updates': 'running', 'diagnostics': 'running',
        'uds_server': 'running', 'mqtt': 'running', 'console': 'running'}

    heads = remote(config, '--json', 'heads')  # for scripts: the reply envelope, one line
    reply = orjson.loads(heads.stdout)
    assert heads.returncode == 0 and reply['sender'] == 'service' and reply['subject'] == 'reply'

    stopped = orjson.loads(remote(config, 'stop_head', 'head=updates').stdout)
    assert stopped['state']['state'] == 'stopped'
    started = orjson.loads(remote(config, 'start_head', '{"head": "updates"}').stdout)
    assert started['state']['state'] == 'running'
    scheduled = orjson.loads(remote(config, 'schedule', 'action=reboot').stdout)
    assert scheduled['decision']['outcome'] == 'deferred'

    refused = remote(config, 'stop_head', 'head=mqtt')
    assert refused.returncode == 1 and 'came through it' in refused.stderr
    not_here = remote(config, 'pair')  # a pairing code only for the robot's own screen
    assert not_here.returncode == 1 and "not over 'mqtt'" in not_here.stderr
    unknown = remote(config, 'reboot_now')
    assert unknown.returncode == 1 and 'unknown subject' in unknown.stderr

    # Status and diagnostics, retained: a dashboard that subscribes late gets the latest.
    with PlainClient(broker.port, f'{TOPICS}/out/status', f'{TOPICS}/out/health') as late:
        got: dict = {}
        while len(got) < 2:  # the first of each topic is the retained one
            message = late.next()
            got.setdefault(message.topic, (orjson.loads(message.payload), message.retain))
    assert got[f'{TOPICS}/out/status'][0]['body']['pid'] == service.pid
    assert got[f'{TOPICS}/out/health'][0]['body']['level'] in ('OK', 'WARN', 'ERROR')
    assert got[f'{TOPICS}/out/status'][1] is got[f'{TOPICS}/out/health'][1] is True
    assert service.stop() == 0


def test_remote_says_what_is_wrong_when_nothing_answers(tmp_path, broker):
    config = write_config(tmp_path)
    nobody = remote(config, '--broker', f'127.0.0.1:{broker.port}', '--robot', 'ghost',
                    'status', timeout=0.5)
    assert nobody.returncode == 1
    assert "no reply from 'service' of robot 'ghost' within 0.5 s" in nobody.stderr
    unreachable = remote(config, '--broker', f'127.0.0.1:{free_port()}', 'status', timeout=0.5)
    assert unreachable.returncode == 2 and 'cannot reach the broker' in unreachable.stderr
    bad = remote(config, '--broker', f'127.0.0.1:{broker.port}', 'schedule', 'action=x', 'y')
    assert bad.returncode == 2 and "key=value pairs, not 'y'" in bad.stderr
