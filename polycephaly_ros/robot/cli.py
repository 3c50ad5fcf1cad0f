"""Command-line plumbing shared by the robot's console scripts."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any, Sequence

from ..logs import LOG_FORMAT
from ..errors import ConfigurationError
from ..signals import STOP_SIGNALS
from . import config as cfg

LOG_LEVELS = ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')
#: Python's level names that rcutils spells otherwise.
ROS_LEVELS = {'WARNING': 'WARN', 'CRITICAL': 'FATAL'}


def log_level(text: str) -> str:
    """Return text as a log level name (any case; WARN and FATAL as ROS spells them)."""
    ours = {ros: python for python, ros in ROS_LEVELS.items()}
    name = ours.get(text.upper(), text.upper())
    if name not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f'invalid log level {text!r} (choose from {", ".join(LOG_LEVELS)})')
    return name


def parser(description: str) -> argparse.ArgumentParser:
    """Return a parser with the options every robot script takes."""
    p = argparse.ArgumentParser(description=description, epilog=(
        'ROS arguments after --ros-args are understood too (as launch_ros passes them): '
        '-r __ns:=/NS (namespace), --params-file FILE (read as --config), '
        '-p KEY:=VALUE (as --set on this application\'s section).'))
    p.add_argument('--config', metavar='FILE',
                   help='robot.yaml to read (default: the installed config/robot.yaml, '
                        'else the built-in defaults)')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='override one setting, e.g. service.heads.updates.dry_run=false '
                        '(repeatable; VALUE is read as YAML)')
    p.add_argument('--namespace', help='ROS namespace of the application(s) (robot.namespace)')
    p.add_argument('--log-level', type=log_level,
                   default=os.environ.get('POLYCEPHALY_LOG_LEVEL', 'INFO'),
                   help=f'{", ".join(LOG_LEVELS)}, any case (default INFO)')
    return p


def split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split argv into (our arguments, the ROS arguments after --ros-args up to --)."""
    ours: list[str] = []
    ros: list[str] = []
    inside = False
    for arg in argv:
        if arg == '--ros-args':
            inside = True
        elif inside and arg == '--':
            inside = False
        elif inside:
            ros.append(arg)
        else:
            ours.append(arg)
    return ours, ros


def read_ros_args(ros: Sequence[str], section: str) -> tuple[str | None, list[str], list[str]]:
    """Return (namespace, parameter files, overrides) from ROS arguments; warn about the rest."""
    namespace = None
    files: list[str] = []
    overrides: list[str] = []
    it = iter(ros)
    for arg in it:
        if arg in ('-r', '--remap'):
            rule = next(it, '')
            name, _, value = rule.partition(':=')
            if name == '__ns':
                namespace = value
            else:
                logging.getLogger('polycephaly_ros.robot').warning(
                    'ignored ROS remapping %r: each head names its own node', rule)
        elif arg in ('-p', '--param'):
            name, sep, value = next(it, '').partition(':=')
            if sep:
                overrides.append(f'{section}.{name}={value}')
        elif arg == '--params-file':
            files.append(next(it, ''))
        elif arg in ('--log-level', '-e', '--enclave'):  # (--log-level: setup_logging)
            next(it, None)
    return namespace, files, overrides


def load(args: argparse.Namespace, ros: Sequence[str], section: str) -> tuple[dict, str | None]:
    """Return the configuration the arguments ask for, and the file it was read from."""
    namespace, files, overrides = read_ros_args(ros, section)
    path = args.config or (files[-1] if files else None) or cfg.default_file()
    config = cfg.load(path, [*overrides, *args.overrides])
    if namespace is not None:
        config['robot']['namespace'] = namespace
    if args.namespace is not None:
        config['robot']['namespace'] = args.namespace
    return config, path


def setup_logging(level: str, config: dict | None = None, section: str = '',
                  ros: Sequence[str] = ()) -> list[str] | None:
    """Set the log level; return the application's ros_args when its heads log through rclpy.

    With ROS (the config section's application.ros; no config: without), records go through
    rclpy (ros/log.py): level is rcutils's default level, and a ``--log-level`` among the ROS
    arguments (e.g. ``robot.service:=debug``) comes after it. Without ROS, Python's logging
    writes them on stderr.
    """
    use_ros = config is not None and cfg.use_ros(config[section]['application']['ros'])
    if use_ros is None:
        from ..ros.host import ros_available

        use_ros = ros_available()
    if not use_ros:
        logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT, stream=sys.stderr)
        return None
    logging.getLogger().setLevel(level)
    args = ['--ros-args', '--log-level', ROS_LEVELS.get(level, level).lower()]
    it = iter(ros)
    for arg in it:
        if arg == '--log-level':
            args += [arg, next(it, '')]
    return args


def run_application(app: Any) -> int:
    """Run app (an application or the composition) with SIGINT and SIGTERM ignored around it.

    Its run() handles them while it runs and then gives back the handlers it found: ignored,
    so a Ctrl-C held down cannot raise KeyboardInterrupt while the process ends (exit -2).
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    return app.run()


def run(main, argv: Sequence[str] | None) -> int:
    """Call main(argv) turning configuration errors into a message and exit code 2."""
    try:
        return main(argv)
    except ConfigurationError as exc:
        print(f'{os.path.basename(sys.argv[0])}: configuration error: {exc}', file=sys.stderr)
        return 2
