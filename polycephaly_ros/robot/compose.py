"""Run the system service and the touchscreen from one configuration, as two processes.

Each application runs as its own console script (``python -P -m
polycephaly_ros.robot.service`` / ``...touchscreen``, the same code as
``polycephaly-system-service`` and ``polycephaly-touchscreen``): a new interpreter, never a
fork of a process in which rclpy runs. The children get their own process group, so a Ctrl-C
in the terminal reaches them once, through this process (and the touchscreen does not read
commands from the terminal here): SIGINT and SIGTERM are forwarded, and
a child still running ``robot.stop_timeout`` seconds later is killed. Each child also gets
SIGTERM from the kernel if this process dies (PR_SET_PDEATHSIG), so none is left behind.

The composition ends when the touchscreen ends (window closed, ``--count`` reached, a
signal); a service that dies meanwhile is restarted after ``robot.restart_delay`` seconds when
``robot.restart_service`` is on (the touchscreen shows "service unreachable" until then).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Sequence

from ..errors import EXIT_CONFIG
from . import cli
from . import config as cfg

_log = logging.getLogger('polycephaly_ros.robot.compose')
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def command(module: str, config_args: list[str], extra: Sequence[str] = ()) -> list[str]:
    """Return the command that runs one application (a robot console script's code)."""
    return [sys.executable, '-P', '-m', f'polycephaly_ros.robot.{module}', *config_args, *extra]


class Composition:
    """The two children and their lifetimes."""

    def __init__(self, config: dict, config_args: list[str], touchscreen_args: list[str]) -> None:
        self.settings = config['robot']
        self.socket = cfg.socket_path(config) if config[cfg.SERVICE]['uds']['enabled'] else None
        self.config_args = config_args
        self.touchscreen_args = touchscreen_args
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = threading.Event()
        self.signal_received: int | None = None
        self.exit_code: int | None = None  # set when the composition must end with it
        self.service_starts = 0

    def start(self, name: str) -> subprocess.Popen:
        extra = self.touchscreen_args if name == 'touchscreen' else []
        module = 'touchscreen' if name == 'touchscreen' else 'service'
        child = subprocess.Popen(command(module, self.config_args, extra),
                                 process_group=0, preexec_fn=_die_with_parent)
        self.children[name] = child
        if name == 'service':
            self.service_starts += 1
        _log.info('started the %s (pid %d)', name, child.pid)
        return child

    def forward(self, signum: int, _frame: object = None) -> None:
        """Pass a signal on to every child, and start stopping."""
        self.signal_received = signum
        self.stopping.set()
        for child in self.children.values():
            if child.poll() is None:
                try:
                    child.send_signal(signum)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        previous = {s: signal.signal(s, self.forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start('service')
            self.wait_for_service(30.0)
            touchscreen = self.start('touchscreen')
            while not self.stopping.is_set():
                if touchscreen.poll() is not None:
                    break
                service = self.children['service']
                if service.poll() is not None:
                    self._service_died(service)
                self.stopping.wait(0.1)  # polling two children: no event to wait on portably
            return self.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def wait_for_service(self, timeout: float) -> bool:
        """Wait until the service accepts connections on its socket (so the touchscreen's first
        requests find it), until it exits, or timeout; the touchscreen copes either way."""
        if self.socket is None:
            return False
        deadline = time.monotonic() + timeout
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if self.children['service'].poll() is not None:
                return False
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.socket)
                return True
            except OSError:
                self.stopping.wait(0.05)  # retry: a socket file gives no event to wait on
            finally:
                probe.close()
        return False

    def _service_died(self, service: subprocess.Popen) -> None:
        _log.error('the service exited (code %s)', service.returncode)
        if service.returncode == EXIT_CONFIG:
            _log.error('the service cannot run as configured (see its log above): not '
                       'restarting it; stopping')
            self.exit_code = EXIT_CONFIG
        if not self.settings['restart_service'] or service.returncode == EXIT_CONFIG:
            self.children['touchscreen'].send_signal(signal.SIGTERM)
            self.stopping.set()
            return
        if self.stopping.wait(self.settings['restart_delay']):
            return
        _log.warning('restarting the service')
        self.start('service')

    def stop(self) -> int:
        """Stop both children (touchscreen first), escalating to SIGKILL; return the exit code."""
        for name in ('touchscreen', 'service'):
            child = self.children.get(name)
            if child is not None and child.poll() is None and self.signal_received is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings['stop_timeout']
        for name, child in self.children.items():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.error('the %s did not stop within %g s: killing it', name,
                           self.settings['stop_timeout'])
                child.kill()
                child.wait()
        touchscreen = self.children['touchscreen'].returncode
        service = self.children['service'].returncode
        _log.info('stopped: touchscreen exit code %s, service exit code %s', touchscreen, service)
        if self.exit_code is not None:
            return self.exit_code
        if self.signal_received is not None:
            return 0 if touchscreen in (0, -self.signal_received) else 1
        return touchscreen if touchscreen and touchscreen > 0 else (1 if touchscreen else 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the composition until Ctrl-C, SIGTERM, or the touchscreen ends."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, ros = cli.split_ros_args(argv)
    p = cli.parser('The robot: system service and touchscreen, from one configuration.')
    p.add_argument('--headless', choices=('auto', 'on', 'off'), help='touchscreen.headless')
    p.add_argument('--transport', choices=cfg.TRANSPORTS, help='touchscreen.transport')
    p.add_argument('--json', action='store_true', help='touchscreen events as JSON lines')
    p.add_argument('--count', type=int, default=0,
                   help='stop after N status and N diagnostics exchanges (0: never)')
    args = p.parse_args(ours)
    cli.setup_logging(args.log_level)
    config, path = cli.load(args, ros, cfg.SERVICE)  # checks the file before anything starts
    config_args = ['--log-level', args.log_level]
    if path:
        config_args += ['--config', path]
    for override in args.overrides:
        config_args += ['--set', override]
    if config['robot']['namespace']:
        config_args += ['--namespace', config['robot']['namespace']]
    touchscreen_args = ['--no-stdin']  # a background process group must not read the terminal
    for option in ('headless', 'transport'):
        if getattr(args, option):
            touchscreen_args += [f'--{option}', getattr(args, option)]
    if args.json:
        touchscreen_args.append('--json')
    if args.count:
        touchscreen_args += ['--count', str(args.count)]
    _log.info('robot: configuration %s; service socket %s', path or '(built-in defaults)',
              cfg.socket_path(config))
    return cli.run_application(Composition(config, config_args, touchscreen_args))


def cli_main() -> None:
    sys.exit(cli.run(main, None))


if __name__ == '__main__':
    cli_main()
