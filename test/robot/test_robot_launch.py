"""The launch files: thin wrappers over the console scripts."""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[2] / 'launch'
FILES = ('robot.launch.py', 'system_service.launch.py', 'touchscreen.launch.py')


def installed(name: str) -> Path:
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    if name.endswith('.py'):
        return Path(get_package_share_directory('polycephaly_ros')) / 'launch' / name
    return Path(get_package_prefix('polycephaly_ros')) / 'lib' / 'polycephaly_ros' / name


@pytest.mark.parametrize('name', FILES)
def test_launch_files_name_installed_executables(name):
    """Runs everywhere: the files parse, are installed, and start only our console scripts."""
    tree = ast.parse((LAUNCH / name).read_text())
    executables = {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                   for kw in node.keywords
                   if kw.arg == 'executable' and isinstance(kw.value, ast.Constant)}
    assert installed(name).is_file()
    for executable in executables:
        assert os.access(installed(executable), os.X_OK), executable
    if name != 'robot.launch.py':
        assert len(executables) == 1


def need_launch() -> None:
    for module in ('launch', 'launch_ros'):
        pytest.importorskip(module, reason=f'the ROS 2 `{module}` package cannot be imported here '
                            '(no PyPI wheel for it); this test runs where it imports')


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'), installed(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


@pytest.mark.parametrize('name,executable', [
    ('system_service.launch.py', 'polycephaly-system-service'),
    ('touchscreen.launch.py', 'polycephaly-touchscreen'),
])
def test_launch_description_starts_the_console_script(name, executable):
    need_launch()
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    description = _load(name)
    arguments = {a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)}
    assert {'namespace', 'config', 'log_level'} <= arguments
    if executable == 'polycephaly-touchscreen':
        assert {'headless', 'transport'} <= arguments
    nodes = [e for e in description.entities if isinstance(e, Node)]
    assert len(nodes) == 1 and nodes[0].node_package == 'polycephaly_ros'
    assert nodes[0].node_executable == executable


def test_robot_launch_includes_both():
    need_launch()
    from launch.actions import IncludeLaunchDescription

    description = _load('robot.launch.py')
    includes = [e for e in description.entities if isinstance(e, IncludeLaunchDescription)]
    assert len(includes) == 2
