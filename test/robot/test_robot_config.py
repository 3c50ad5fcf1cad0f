"""config/robot.yaml: every setting, strict loading, and a valid ROS 2 parameters file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from polycephaly_ros.errors import ConfigurationError
from polycephaly_ros.robot import config as cfg
from plain_ros import plain_node

REPO_FILE = Path(__file__).resolve().parents[2] / 'config' / 'robot.yaml'


def test_the_file_holds_every_setting_at_its_default():
    assert cfg.load(REPO_FILE) == cfg.DEFAULTS
    raw = yaml.safe_load(REPO_FILE.read_text())
    assert set(raw) == set(cfg.SECTIONS)
    for section in cfg.SECTIONS:  # written out in full, not left to the built-in defaults
        assert set(raw[section]['ros__parameters']) == set(cfg.DEFAULTS[section]), section


def test_installed_file_is_the_repository_file():
    assert cfg.default_file() is not None
    assert Path(cfg.default_file()).read_text() == REPO_FILE.read_text()


def test_no_file_gives_defaults_that_run_anywhere():
    config = cfg.load(None)
    assert config == cfg.DEFAULTS
    service = config['service']['heads']
    assert service['updates']['dry_run'] is True
    assert {h['host'] for h in service['network']['hosts'].values()} == {'127.0.0.1'}
    path = cfg.socket_path(config)
    assert path.endswith('robot.sock') and os.path.isabs(path)
    assert cfg.socket_mode(config) == 0o600


def test_overrides_and_strictness(tmp_path):
    config = cfg.load(None, ['service.heads.updates.dry_run=false', 'robot.socket_mode=0660',
                             'touchscreen.application.frequency=12'])
    assert config['service']['heads']['updates']['dry_run'] is False
    assert cfg.socket_mode(config) == 0o660
    assert config['touchscreen']['application']['frequency'] == 12.0  # widened to float
    with pytest.raises(ConfigurationError, match='unknown setting service.heads.updates.dry'):
        cfg.load(None, ['service.heads.updates.dry=false'])
    with pytest.raises(ConfigurationError, match='service.application.queue_size must be a whole'):
        cfg.load(None, ['service.application.queue_size=lots'])
    with pytest.raises(ConfigurationError, match='touchscreen.transport must be one of uds, ros'):
        cfg.load(None, ['touchscreen.transport=carrier-pigeon'])
    path = tmp_path / 'hosts.yaml'
    path.write_text('service:\n  ros__parameters:\n    heads:\n      network:\n        hosts:\n'
                    '          gateway: {host: 10.0.0.1}\n')
    hosts = cfg.load(path)['service']['heads']['network']['hosts']
    assert hosts == {'gateway': dict(cfg.HOST_TEMPLATE, host='10.0.0.1')}  # replaces loopback
    path.write_text('servise: {}\n')
    with pytest.raises(ConfigurationError, match="unknown section 'servise'"):
        cfg.load(path)


def test_the_file_is_a_ros_parameters_file_and_the_main_heads_declare_it(tmp_path):
    """rcl reads the file (--params-file) and its values reach the node's declared parameters."""
    changed = tmp_path / 'robot.yaml'
    text = REPO_FILE.read_text().replace('dry_run: true', 'dry_run: false')
    changed.write_text(text)
    config = cfg.load(REPO_FILE)  # what the head declares: the defaults
    with plain_node('service', ['--ros-args', '--params-file', str(changed)]) as (node, _):
        declared = cfg.declare_parameters(node, config, cfg.SERVICE)
        names = {p.name for p in declared}
        assert {'heads.updates.dry_run', 'heads.updates.window.days', 'robot.socket_path',
                'heads.network.hosts.loopback.port', 'application.queue_size'} <= names
        assert len(names) == len(cfg.parameters(config, cfg.SERVICE))
        # rcl parsed the file: its value for this node overrides the declared default
        assert node.get_parameter('heads.updates.dry_run').value is False
        assert node.get_parameter('heads.updates.window.days').value == list(cfg.DAYS)
        assert node.get_parameter('application.frequency').value == 20.0
