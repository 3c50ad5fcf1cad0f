"""The launch files: thin wrappers over the console scripts."""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
import time
from pathlib import Path

import pytest
import yaml

from polycephaly_ros.runtime import TEARDOWN_LIMIT
from robot_support import RawClient, procs, socket_of, write_config  # noqa: F401 (fixture)

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


@pytest.mark.parametrize('name', ['system_service.launch.py', 'touchscreen.launch.py'])
def test_launch_escalates_only_after_the_applications_own_limits(name):
    tree = ast.parse((LAUNCH / name).read_text())
    limits = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], 'elts', None)
                  and node.targets[0].elts[0].id == 'SIGTERM_AFTER')
    sigterm_after = float(limits.elts[0].value)
    config = yaml.safe_load((LAUNCH.parent / 'config' / 'robot.yaml').read_text())
    section = config['service' if name.startswith('system') else 'touchscreen']
    assert sigterm_after > section['ros__parameters']['application']['threads_timeout'] + 2


@pytest.fixture(autouse=True)
def _logging_kept_as_it_was():
    """Undo what importing launch does to this process: every later logger a LaunchLogger
    that does not propagate (so caplog would see nothing), the root logger at INFO."""
    logger_class, level = logging.getLoggerClass(), logging.root.level
    yield
    logging.setLoggerClass(logger_class)
    logging.root.setLevel(level)


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
    from launch.actions import IncludeLaunchDescription

    description = _load('robot.launch.py')
    includes = [e for e in description.entities if isinstance(e, IncludeLaunchDescription)]
    assert len(includes) == 2


#: How many times the real `ros2 launch` is run and stopped: 20 in CI (~40 s),
#: POLYCEPHALY_LAUNCH_RUNS=100 on demand; README, Launch files, has the counts.
LAUNCH_RUNS = int(os.environ.get('POLYCEPHALY_LAUNCH_RUNS', '20'))
#: What launch prints when the KeyboardInterrupt its own SIGINT handler raises lands inside its
#: event loop's bookkeeping: it then exits 1 after every process finished cleanly.
LAUNCH_LOOP_BROKEN = 'Task was destroyed but it is pending!'
#: Runs of `ros2 launch` one test makes while launch alone fails (each ~1 in 40-80 here).
LAUNCH_ATTEMPTS = 4


def launch_failed_alone(code: int | None, said: str) -> bool:
    """Tell whether launch itself failed after both applications ended with exit 0.

    Both are launch's own: its loop broken by its KeyboardInterrupt (exit 1), or its shutdown
    stuck after the processes ended (no exit; like ros2/launch#473). 1 run in ~80 each here.
    """
    ours_clean = said.count('process has finished cleanly') == 2
    return ours_clean and (code is None or (code == 1 and LAUNCH_LOOP_BROKEN in said))


@pytest.mark.parametrize('run', range(LAUNCH_RUNS))
def test_ros2_launch_runs_both_applications_and_sigint_stops_everything(run, tmp_path, procs):
    """The real `ros2 launch polycephaly_ros robot.launch.py`, stopped as Ctrl-C would."""
    for attempt in range(LAUNCH_ATTEMPTS):
        code, took, said = _launch_and_interrupt(tmp_path / str(attempt), procs)
        if not launch_failed_alone(code, said):
            break
        # Ours both ended with 0; launch did not (see above): try again. (CI once met it
        # twice in a row: a hang, then the exit-1 race.)
        logging.getLogger(__name__).warning('ros2 launch failed on its own:\n%s', said)
    # Clean in 0.3-0.5 s. A process caught in Fast DDS's teardown deadlock is ended by its
    # timer TEARDOWN_LIMIT later with its own exit code (a head process's after its death(),
    # the main process's in its teardown): still exit 0. Bound for both at once.
    assert code == 0 and took < 2 * TEARDOWN_LIMIT + 3, f'exit {code} after {took:.1f} s:\n{said}'


def _launch_and_interrupt(tmp_path: Path, procs) -> tuple[int | None, float, str]:
    """Run ros2 launch until both applications talk; Ctrl-C; return (exit, seconds, output)."""
    ros2 = shutil.which('ros2')
    assert ros2, 'the ros2 command is not installed'
    tmp_path.mkdir()
    config = write_config(tmp_path)
    launch = procs.start('launch', [ros2, 'launch', 'polycephaly_ros', 'robot.launch.py',
                                    f'config:={config}', 'headless:=on'],
                         start_new_session=True, env=dict(os.environ, ROS_LOG_DIR=str(tmp_path)))
    client = RawClient(socket_of(config))
    try:
        status = client.ask('status')['body']
    finally:
        client.close()
    assert {h['name']: h['state'] for h in status['heads']} == {
        'network': 'running', 'updates': 'running', 'diagnostics': 'running',
        'uds_server': 'running', 'console': 'running'}
    # The touchscreen, launched beside it, got the service's status over the socket.
    while True:
        _, line = launch.lines.get(timeout=30)
        assert line is not None, 'ros2 launch ended:\n' + '\n'.join(launch.seen[-30:])
        launch.seen.append(line)
        if 'touchscreen: status #1: service pid ' in line:
            break
    assert f'service pid {status["pid"]} ' in line
    # Ctrl-C in a terminal: SIGINT to the whole foreground process group, launch and the
    # applications alike (each then gets a second SIGINT from launch: ignored while it stops).
    os.killpg(launch.popen.pid, signal.SIGINT)
    signalled = time.monotonic()
    try:
        code = launch.wait(30)
    except subprocess.TimeoutExpired:
        code = None
        os.killpg(launch.popen.pid, signal.SIGKILL)  # (what is left of it: nothing of ours)
        launch.wait(30)
    took = time.monotonic() - signalled
    return code, took, '\n'.join(launch.seen[-10:] + launch.rest()[-60:]) + launch.log()


def test_launch_testing_runs_robot_launch_py_and_checks_every_exit(tmp_path, leftover_processes):
    """The ROS way (launch/robot_launch_test.py): ready checks on output, exit codes after."""
    launch_test = shutil.which('launch_test')
    assert launch_test, 'launch_testing is not installed: ./dev setup installs it'
    report = tmp_path / 'launch_test.xml'
    out = subprocess.run([launch_test, str(Path(__file__).parent / 'launch' /
                                           'robot_launch_test.py'),
                          f'config:={write_config(tmp_path)}', '--junit-xml', str(report)],
                         capture_output=True, text=True, timeout=180,
                         env=dict(os.environ, ROS_LOG_DIR=str(tmp_path)))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    cases = ET.parse(report).getroot().iter('testcase')
    assert sorted(c.get('name') for c in cases if not len(c)) == [
        'test_exit_codes', 'test_the_touchscreen_shows_the_service_status']
    leftover_processes()


@pytest.mark.parametrize('name, argument, said', [
    ('system_service.launch.py', 'log_level:=bogus',
     'Argument "log_level" provided value "bogus" is not valid'),
    ('robot.launch.py', 'log_level:=bogus',
     'Argument "log_level" provided value "bogus" is not valid'),
    ('touchscreen.launch.py', 'headless:=off', 'headless:=off but there is no display'),
])
def test_a_bad_launch_argument_is_one_clear_error_and_a_failed_launch(name, argument, said,
                                                                      tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'DISPLAY'}
    out = subprocess.run([shutil.which('ros2'), 'launch', 'polycephaly_ros', name, argument,
                          f'config:={write_config(tmp_path)}'], capture_output=True, text=True,
                         timeout=120, env=dict(env, ROS_LOG_DIR=str(tmp_path)))
    output = out.stdout + out.stderr
    assert out.returncode == 1 and said in output, output
    assert 'process started' not in output  # refused before anything ran
