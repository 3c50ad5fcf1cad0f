"""The service's extra routes (service.routes) and the touchscreen's transports over them.

Real processes and real peers: a private dbus-daemon with ``busctl``, a socat pty pair with a
hand-written device on the far end, a posix_ipc queue peer, and a shell on the named pipes.
Each route test asks the service for ``status`` from a peer nobody here wrote as a head,
then (dbus, mqueue, serial) runs the touchscreen with that transport against the same service.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import posix_ipc
import pytest

from dbus_daemon import DbusDaemon, busctl
from mq_peer import MqPeer
from polycephaly_ros.errors import ConfigurationError
from polycephaly_ros.robot import config as cfg
from polycephaly_ros.robot import link
from polycephaly_ros.routes.dbus import DbusClientHead, DbusServerHead
from polycephaly_ros.routes.fifo import FifoRouteHead
from polycephaly_ros.routes.mqueue import MqueueRouteHead
from polycephaly_ros.routes.serial import SerialRouteHead
from robot_support import procs, socket_of, write_config  # noqa: F401 (fixture)
from serial_link import Link, Peer

ROOT = Path(__file__).resolve().parents[2]
BUS_NAME = 'io.polycephaly.RobotTest'
ROUTE = ('/io/polycephaly/Route', 'io.polycephaly.Route1', 'Send')
STATUS = {'recipient': 'service', 'subject': 'status', 'threadindex': 1}
#: The service's heads in every test here (the route head under test is added).
HEADS = {'network', 'updates', 'diagnostics', 'uds_server'}


def until(probe: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    """Return probe()'s first true value; exceptions and false values mean try again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001 - not up yet: try again
            value, error = None, exc
        else:
            error = None
        if value:
            return value
        assert time.monotonic() < deadline, f'not within {timeout} s: {error or value!r}'
        time.sleep(step)


def check_status(reply: dict, head: str) -> None:
    assert reply['subject'] == 'reply', reply
    heads = {h['name']: h['state'] for h in reply['body']['heads']}
    assert set(heads) >= HEADS | {head}, heads
    assert heads[head] == 'running', heads


def touchscreen_shows_status(procs: Any, config: Path, service: Any, transport: str,  # noqa: F811
                             head: str) -> None:
    """Run the touchscreen with transport; it shows this service's status, then stops."""
    screen = procs.touchscreen(config, '--transport', transport, '--no-stdin')
    _, started = screen.event('started')
    assert started['transport'] == transport
    _, reachable = screen.event('reachable')
    assert reachable['service_pid'] == service.pid
    _, status = screen.event('status', where=lambda e: e['exchanges'] >= 2)
    assert status['heads'][head] == 'running' and set(status['heads']) >= HEADS
    assert screen.stop() == 0


@pytest.fixture
def daemon(procs: Any) -> Iterator[DbusDaemon]:  # noqa: F811
    """A private dbus-daemon (stopped before procs checks that nothing is left over)."""
    with DbusDaemon() as running:
        yield running


# -- configuration -------------------------------------------------------------------------------
def test_the_file_holds_the_defaults_and_every_route_is_off() -> None:
    config = cfg.load(ROOT / 'config' / 'robot.yaml')
    assert config[cfg.SERVICE]['routes'] == cfg.DEFAULTS[cfg.SERVICE]['routes']
    assert config[cfg.TOUCHSCREEN] == cfg.DEFAULTS[cfg.TOUCHSCREEN]
    assert not any(r['enabled'] for r in config[cfg.SERVICE]['routes'].values())
    assert [k for k, _ in link.service_heads(config)] == [link.UnixSocketServerHead]


@pytest.mark.parametrize('override, where', [
    ('service.routes.serial.framing=hdlc', 'service.routes.serial.framing'),
    ('touchscreen.transport=fifo', 'touchscreen.transport'),
    ('service.routes.serial.baudrate=fast', 'service.routes.serial.baudrate'),
    ('service.routes.dbus.nosuch=1', 'service.routes.dbus.nosuch'),
])
def test_bad_route_settings_are_refused(override: str, where: str) -> None:
    with pytest.raises(ConfigurationError, match=where.replace('.', r'\.')):
        cfg.load(overrides=[override])


def test_each_enabled_route_is_a_head_and_the_touchscreen_reaches_its_twin(tmp_path) -> None:
    config = cfg.load(overrides=[
        f'robot.socket_path={tmp_path}/run/robot.sock', 'robot.namespace=/lab/r1',
        'service.routes.dbus.enabled=true', 'service.routes.dbus.bus=system',
        'service.routes.serial.enabled=true', 'service.routes.serial.path=/dev/ttyUSB0',
        'service.routes.serial.framing=cobs', 'service.routes.serial.baudrate=57600',
        'service.routes.mqueue.enabled=true', 'service.routes.fifo.enabled=true',
        'touchscreen.serial_path=/dev/ttyS1'])
    heads = {kw['name']: (klass, kw) for klass, kw in link.service_heads(config)}
    assert set(heads) == {'uds_server', 'dbus', 'serial', 'mqueue', 'fifo'}
    for klass, kw in heads.values():
        assert kw['mode'] == 'thread' and kw['restart'] == 'on_failure'
    assert heads['dbus'][0] is DbusServerHead
    assert heads['dbus'][1]['bus'] == 'system' and heads['dbus'][1]['bus_name'] == \
        'io.polycephaly.Robot'
    assert heads['serial'][0] is SerialRouteHead
    assert {k: heads['serial'][1][k] for k in ('path', 'baudrate', 'framing')} == \
        {'path': '/dev/ttyUSB0', 'baudrate': 57600, 'framing': 'cobs'}
    uid = os.getuid()
    assert heads['mqueue'][0] is MqueueRouteHead
    assert heads['mqueue'][1]['queue'] == f'/polycephaly.{uid}.lab.r1.service'
    assert heads['mqueue'][1]['peer_queue'] == f'/polycephaly.{uid}.lab.r1.touchscreen'
    assert heads['fifo'][0] is FifoRouteHead
    assert heads['fifo'][1]['directory'] == str(tmp_path / 'run' / 'fifo')
    assert (tmp_path / 'run').stat().st_mode & 0o777 == 0o700
    for klass, kw in heads.values():  # every head's settings pass the head's own checks
        klass.configure(kw)

    def client(transport: str) -> tuple[type, dict, dict]:
        touch = cfg.merge(config, {'touchscreen': {'transport': transport}})
        [(klass, kw)] = link.client_heads(touch)
        klass.configure(kw)
        return klass, kw, link.via_headers(touch)

    klass, kw, via = client('dbus')
    assert klass is DbusClientHead and via == {'via': 'dbus_client'} == {'via': kw['name']}
    assert (kw['bus'], kw['bus_name']) == ('system', 'io.polycephaly.Robot')
    klass, kw, via = client('mqueue')
    assert klass is MqueueRouteHead and via == {'via': 'mqueue'}
    assert (kw['queue'], kw['peer_queue']) == (heads['mqueue'][1]['peer_queue'],
                                               heads['mqueue'][1]['queue'])
    klass, kw, via = client('serial')
    assert klass is SerialRouteHead and via == {'via': 'serial'}
    assert (kw['path'], kw['baudrate'], kw['framing']) == ('/dev/ttyS1', 57600, 'cobs')
    touch = cfg.merge(config, {'touchscreen': {'transport': 'ros'}})
    assert link.client_heads(touch) == [] and link.via_headers(touch) == {}

    for broken in ({'service': {'routes': {'serial': {'path': ''}}}},
                   {'touchscreen': {'transport': 'serial', 'serial_path': ''}}):
        with pytest.raises(ConfigurationError, match='serial'):
            bad = cfg.merge(config, broken)
            link.service_heads(bad)
            link.client_heads(bad)


# -- real processes ------------------------------------------------------------------------------
def test_dbus_route_answers_busctl_and_the_touchscreen(tmp_path, procs,  # noqa: F811
                                                       daemon) -> None:
    config = write_config(tmp_path, service={'routes': {'dbus': {
        'enabled': True, 'bus': daemon.address, 'bus_name': BUS_NAME}}})
    service = procs.service(config)

    def call() -> dict | None:
        text = orjson.dumps(dict(STATUS, sender='busctl', threadid='t-dbus')).decode()
        out = busctl(daemon.address, '--json=short', 'call', BUS_NAME, *ROUTE, 's', text)
        return orjson.loads(orjson.loads(out.stdout)['data'][0]) if out.returncode == 0 \
            else None

    check_status(until(call), 'dbus')
    text = orjson.dumps(dict(STATUS, subject='pair', sender='busctl', threadid='t-pair')).decode()
    out = busctl(daemon.address, '--json=short', 'call', BUS_NAME, *ROUTE, 's', text)
    pair = orjson.loads(orjson.loads(out.stdout)['data'][0])
    assert pair['subject'] == 'reply' and pair['body']['code'], pair  # (a touchscreen transport)
    touchscreen_shows_status(procs, config, service, 'dbus', 'dbus')
    assert service.stop() == 0


def test_mqueue_route_answers_a_queue_peer_and_the_touchscreen(tmp_path,
                                                                procs) -> None:  # noqa: F811
    ours = f'/prt.{os.getpid()}.{tmp_path.name}'
    config = write_config(tmp_path, service={'routes': {'mqueue': {
        'enabled': True, 'queue': f'{ours}.service'}}},
        touchscreen={'mqueue_queue': f'{ours}.touchscreen'})
    service = procs.service(config)
    # The peer takes the touchscreen's queue (the service's peer_queue) first, then leaves it.
    peer = MqPeer(f'{ours}.touchscreen', f'{ours}.service')
    try:
        until(lambda: peer.to)  # the service's queue, once it made it
        peer.send(**STATUS, threadid='t-mq')
        check_status(peer.recv(), 'mqueue')
    finally:
        peer.close()
    touchscreen_shows_status(procs, config, service, 'mqueue', 'mqueue')
    assert service.stop() == 0
    with pytest.raises(posix_ipc.ExistentialError):  # both gone with their owners
        posix_ipc.MessageQueue(f'{ours}.service')


def test_serial_route_answers_a_device_and_the_touchscreen(tmp_path, procs) -> None:  # noqa: F811
    line = Link(tmp_path)
    try:
        config = write_config(tmp_path, service={'routes': {'serial': {
            'enabled': True, 'path': line.dev, 'framing': 'cobs'}}},
            touchscreen={'serial_path': line.mcu})
        service = procs.service(config)
        peer = Peer.open(line.mcu, framing='cobs')
        try:
            def ask() -> dict:
                peer.send(**STATUS, threadid='t-serial')
                return peer.recv(timeout=1.0)
            check_status(until(ask), 'serial')
        finally:
            peer.close()
        line.unplug()  # (the pty pair ends with its far end closed: a fresh one, same paths)
        line.plug()
        touchscreen_shows_status(procs, config, service, 'serial', 'serial')
        assert service.stop() == 0
    finally:
        line.close()


def test_fifo_route_answers_a_shell(tmp_path, procs) -> None:  # noqa: F811
    config = write_config(tmp_path, service={'routes': {'fifo': {'enabled': True}}})
    service = procs.service(config)
    directory = Path(socket_of(config)).parent / 'fifo'  # the default: beside the socket
    until(lambda: (directory / 'in').exists() and (directory / 'out').exists())
    request = orjson.dumps(dict(STATUS, sender='sh', threadid='t-fifo')).decode()
    pair = orjson.dumps(dict(STATUS, subject='pair', sender='sh', threadid='t-pair')).decode()
    shell = subprocess.run(
        ['timeout', '20', 'sh', '-c', 'exec 3<>out; echo "$1" > in; echo "$2" > in; '
         'head -n 2 <&3', 'sh', request, pair], cwd=directory, capture_output=True, text=True,
        timeout=30)
    assert shell.returncode == 0, shell.stderr
    replies = {r['threadid']: r for r in map(orjson.loads, shell.stdout.splitlines())}
    assert replies['t-fifo']['recipient'] == 'sh'
    check_status(replies['t-fifo'], 'fifo')
    # No pairing code for a shell script: the pipes are not a touchscreen transport.
    assert replies['t-pair']['subject'] == 'error', replies['t-pair']
    assert "robot's own screen" in replies['t-pair']['body']['error']
    assert service.stop() == 0
