"""Helpers for the robot composition's tests: configs, real processes, a raw socket client."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

import raw_client

TIMEOUT = 30.0


def script(name: str) -> str:
    """Return the installed console script (lib/polycephaly_ros/<name>)."""
    from ament_index_python.packages import get_package_prefix

    path = os.path.join(get_package_prefix('polycephaly_ros'), 'lib', 'polycephaly_ros', name)
    assert os.access(path, os.X_OK), f'{path} is not installed: run ./dev setup'
    return path


def write_config(tmp_path: Path, **sections: dict) -> Path:
    """Write a robot.yaml into tmp_path: the socket there, fast rates, sections merged on top.

    sections: ``robot={...}``, ``service={...}``, ``touchscreen={...}`` (nested dicts).
    """
    sock_dir = tmp_path / 'run'
    if len(str(sock_dir)) > 80:  # AF_UNIX paths are short: fall back to a short directory
        sock_dir = Path(tempfile.mkdtemp(prefix='pr-'))
    sock_dir.mkdir(mode=0o700, exist_ok=True)
    base = {
        'robot': {'socket_path': str(sock_dir / 'robot.sock'), 'restart_delay': 0.2,
                  'stop_timeout': 10.0},
        'service': {
            'application': {'threads_timeout': 5.0},
            'console': {'port': 0, 'state_dir': str(tmp_path / 'state')},
            'heads': {
                # (hermetic: the machine's NetworkManager, if any, is not followed)
                'network': {'mode': 'thread', 'frequency': 5.0, 'probe_timeout': 0.2,
                            'networkmanager': False},
                'updates': {'mode': 'thread', 'frequency': 5.0},
                'diagnostics': {'mode': 'process', 'rate': 5.0},
            },
        },
        'touchscreen': {'status_period': 0.2, 'reply_timeout': 0.4,
                        'diagnostics_period': 0.5, 'headless': 'on'},
    }
    _deep_update(base, sections)
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump({k: {'ros__parameters': v} for k, v in base.items()}))
    return path


def _deep_update(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def socket_of(config: Path) -> str:
    return yaml.safe_load(config.read_text())['robot']['ros__parameters']['socket_path']


class Proc:
    """A real process whose stdout lines are read (and timestamped) by a thread."""

    def __init__(self, argv: list[str], log: Path, stdin: bool = False, **kwargs: Any) -> None:
        self.argv = argv
        self.log_path = log
        self.stderr = open(log, 'ab')
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr,
                                      stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                      text=True, **kwargs)
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.put((time.monotonic(), line.rstrip('\n')))
        self.lines.put((time.monotonic(), None))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def event(self, kind: str, timeout: float = TIMEOUT,
              where: Callable[[dict], bool] = lambda e: True) -> tuple[float, dict]:
        """Return (arrival time, event) of the next JSON event of kind matching where."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, (f'no {kind!r} event within {timeout} s; output so far:\n'
                                   + '\n'.join(self.seen[-30:]) + '\n--- log:\n' + self.log())
            try:
                at, line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, (f'the process ended (code {self.popen.wait()}) before a '
                                      f'{kind!r} event; output:\n' + '\n'.join(self.seen[-30:])
                                      + '\n--- log:\n' + self.log())
            self.seen.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get('event') == kind and where(event):
                return at, event

    def send_line(self, text: str) -> None:
        self.popen.stdin.write(text + '\n')
        self.popen.stdin.flush()

    def rest(self, timeout: float = 5.0) -> list[str]:
        """Return the lines not read yet, until the output ends (or timeout passes)."""
        rest: list[str] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                _, line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            rest.append(line)
        return rest

    def log(self) -> str:
        self.stderr.flush()
        return self.log_path.read_text(errors='replace')[-6000:]

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, then SIGKILL after timeout; return the exit code."""
        self.signal(signal.SIGINT)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self._reader.join(5)
        self.stderr.close()
        return code


class Processes:
    """Start processes for one test; stop whatever still runs at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], **kwargs: Any) -> Proc:
        proc = Proc(argv, self.tmp_path / f'{name}-{len(self.procs)}.log', **kwargs)
        self.procs.append(proc)
        return proc

    def service(self, config: Path, *extra: str) -> Proc:
        return self.start('service', [script('polycephaly-system-service'), '--config',
                                      str(config), *extra])

    def touchscreen(self, config: Path, *extra: str, **kwargs: Any) -> Proc:
        return self.start('touchscreen', [script('polycephaly-touchscreen'), '--config',
                                          str(config), '--json', *extra], **kwargs)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                proc.stop()


class RawClient(raw_client.RawClient):
    """A Unix-socket client made of a plain socket, waiting for the service to listen."""

    def __init__(self, path: str, name: str = 'tester', timeout: float = TIMEOUT) -> None:
        super().__init__(path, timeout, sock=connect_when_ready(path, timeout))
        self.name = name
        self.timeout = timeout
        self.n = 0

    def ask(self, subject: str, body: Any = None, recipient: str = 'service') -> dict:
        """Send one envelope and return the reply on its thread."""
        self.n += 1
        thread = f'{self.name}-{self.n}-{time.monotonic_ns()}'
        self.send(sender=self.name, recipient=recipient, subject=subject, body=body,
                  threadid=thread, threadindex=1)
        while True:
            reply = self.recv()
            if reply.get('threadid') == thread:
                return reply


def connect_when_ready(path: str, timeout: float) -> socket.socket:
    """Connect to a Unix socket, retrying until the server listens (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            assert time.monotonic() < deadline, f'nobody listens on {path} after {timeout} s'
            threading.Event().wait(0.05)  # retry: a socket file gives no event to wait on


@pytest.fixture
def procs(tmp_path, leftover_processes):
    """Start real processes for a test; stop them after it and check none is left over."""
    processes = Processes(tmp_path)
    yield processes
    processes.stop_all()
    leftover_processes(timeout=10.0)
