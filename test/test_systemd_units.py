"""The systemd units in systemd/: they parse (systemd-analyze verify) and carry the keys the
README promises (Type=notify, watchdog, restart, hardening, the socket in the runtime dir)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.fast

UNITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'systemd')
NAMES = ('polycephaly-system-service.service', 'polycephaly-touchscreen.service')


def keys(path: str) -> dict[str, list[str]]:
    """Return 'Section.Key' -> its values, in order (a key may repeat, e.g. Environment=)."""
    found: dict[str, list[str]] = {}
    section = ''
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in '#;':
                continue
            if line.startswith('['):
                section = line.strip('[]')
                continue
            key, sep, value = line.partition('=')
            assert sep, f'{path}: not a key=value line: {line!r}'
            found.setdefault(f'{section}.{key.strip()}', []).append(value.strip())
    return found


@pytest.mark.parametrize('name', NAMES)
def test_unit_keys(name):
    unit = keys(os.path.join(UNITS, name))
    for key, value in {'Type': 'notify', 'Restart': 'on-failure', 'NoNewPrivileges': 'yes',
                       'ProtectSystem': 'strict', 'ProtectHome': 'yes',
                       'PrivateTmp': 'yes'}.items():
        assert unit[f'Service.{key}'] == [value], key
    assert unit['Service.WatchdogSec'][0].endswith('s')
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST' in unit['Service.Environment']
    (start,) = unit['Service.ExecStart']
    script = name.removesuffix('.service')
    assert f'/lib/polycephaly_ros/{script}"' in start
    assert '--set robot.socket_path=%t/polycephaly/robot.sock' in start
    assert 'POLYCEPHALY_PREFIX=/opt/polycephaly/install' in unit['Service.Environment']
    if name == 'polycephaly-system-service.service':
        assert unit['Service.RuntimeDirectory'] == ['polycephaly']
        assert unit['Service.RuntimeDirectoryMode'] == ['0700']
    else:  # the directory is the service's (a unit removes its RuntimeDirectory at its stop)
        assert 'Service.RuntimeDirectory' not in unit
        assert 'polycephaly-system-service.service' in unit['Unit.After'][0]


def test_units_verify(tmp_path):
    analyze = shutil.which('systemd-analyze')
    if analyze is None:
        pytest.skip('systemd-analyze is not installed')
    paths = []
    for name in NAMES:  # (verify needs the unit's file name; the prefix need not exist)
        paths.append(tmp_path / name)
        shutil.copy(os.path.join(UNITS, name), paths[-1])
    done = subprocess.run([analyze, 'verify', *map(str, paths)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    complaints = [line for line in done.stderr.splitlines() if 'polycephaly' in line]
    assert not complaints, done.stderr
