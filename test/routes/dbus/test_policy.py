"""The shipped system-bus policy (config/dbus/polycephaly-robot.conf) on a real dbus-daemon.

The daemon runs with the policy of Debian's system bus (deny by default) and the shipped file
included, its group ``robot`` replaced by ``users`` (gid 100) so that the tests need no group
of their own. The application owns the name as root; the callers run as ``nobody``, with and
without the group ``users``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dbus_fast
import orjson
import pytest

from dbus_daemon import DbusDaemon, busctl, gdbus, system_like
from harness import ask, run_script
from heads import RouteEcho
from polycephaly_ros import Process
from polycephaly_ros.routes.dbus import DbusServerHead

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / 'config' / 'dbus' / 'polycephaly-robot.conf'
PROBE = ROOT / 'test' / 'support' / 'dbus_probe.py'
NAME = 'io.polycephaly.Robot'
NOBODY = {'user': 65534, 'group': 65534}
MEMBER = {**NOBODY, 'extra_groups': [100]}  # nobody in the group 'users', robot's stand-in
PING = orjson.dumps({'recipient': 'echo', 'subject': 'ping', 'sender': 'op',
                     'body': 'hi'}).decode()

#: A Python other users may run, of the venv's version, and where dbus-fast is for it.
SYSTEM_PYTHON = '/usr/bin/python3.11'
SITE = str(Path(dbus_fast.__file__).parents[1])

pytestmark = [
    pytest.mark.skipif(os.getuid() != 0, reason='runs callers as other users: root only'),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK) or sys.version_info[:2] != (3, 11),
                       reason='needs Debian python3.11 to run dbus-fast as another user')]


@pytest.fixture
def system_bus(tmp_path: Path, procs: Any):  # noqa: ARG001 (stopped before procs checks)
    policy = tmp_path / 'policy.conf'
    policy.write_text(POLICY.read_text().replace('group="robot"', 'group="users"'))
    policy.chmod(0o644)
    with DbusDaemon(tmp_path / 'bus', policy=system_like(policy), world=True) as daemon:
        yield daemon


def send(address: str, who: dict) -> subprocess.CompletedProcess:
    return busctl(address, '--json=short', 'call', NAME, '/io/polycephaly/Route',
                  'io.polycephaly.Route1', 'Send', 's', PING, **who)


def probe(address: str, *args: str, who: dict = NOBODY) -> subprocess.Popen:
    """Run dbus_probe.py as another user: with Debian's python3.11 (the venv's is root's only)."""
    return subprocess.Popen([SYSTEM_PYTHON, str(PROBE), address, *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/',
                            env={'PYTHONPATH': SITE, 'PATH': '/usr/bin:/bin'}, **who)


def test_the_shipped_policy_lets_root_own_the_name_and_only_the_group_call_and_listen(
        system_bus: DbusDaemon) -> None:
    address = system_bus.address

    def script(main: Process) -> Any:
        assert ask(main, 'dbus', 'connected', 10)['connected']
        member, stranger = send(address, MEMBER), send(address, NOBODY)
        introspected = gdbus(address, 'introspect', '--dest', NAME, '--object-path',
                             '/io/polycephaly/Route', **MEMBER)
        squatter = probe(address, 'own', NAME)
        listeners = [probe(address, 'listen', '10', who=MEMBER),
                     probe(address, 'listen', '1.5')]
        for listener in listeners:
            assert listener.stdout.readline().strip() == 'ready', listener.stderr.read()
        main.send('watcher', 'news', 'for the group', via='dbus')
        heard = [listener.communicate(timeout=30)[0].strip() for listener in listeners]
        return member, stranger, introspected, squatter.communicate(timeout=30), heard

    class Probed(DbusServerHead):
        def birth(self) -> None:
            self.add_filter(lambda m: self.reply(m, {'connected': self.server.link.connected_event
                                                     .wait(m['body'])}), subject='connected')

    member, stranger, introspected, (owned, errors), heard = run_script(script, [
        (Probed, {'name': 'dbus', 'bus': address, 'bus_name': NAME}),
        (RouteEcho, {'name': 'echo'})]).outcome
    assert member.returncode == 0, member.stderr
    assert orjson.loads(orjson.loads(member.stdout)['data'][0])['body']['body'] == 'hi'
    assert stranger.returncode != 0 and 'Access denied' in stranger.stderr
    assert introspected.returncode == 0 and 'io.polycephaly.Route1' in introspected.stdout
    assert owned.strip() == 'org.freedesktop.DBus.Error.AccessDenied', errors
    assert orjson.loads(heard[0])['body'] == 'for the group'
    assert heard[1] == 'none'


def test_dbus_daemon_takes_the_shipped_file_as_it_is_and_it_is_installed(
        tmp_path: Path) -> None:
    daemon = DbusDaemon(tmp_path / 'bus', policy=system_like(POLICY))
    with daemon:  # (dbus-daemon refuses to start on a file it cannot parse)
        assert daemon.process is not None and daemon.process.poll() is None
    assert 'polycephaly-robot.conf' not in daemon.log.read_text()  # not even a warning
    assert 'install(DIRECTORY launch config' in (ROOT / 'CMakeLists.txt').read_text()
