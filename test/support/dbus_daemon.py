"""A real dbus-daemon for the D-Bus route's tests and bench, started by the caller, private.

:class:`DbusDaemon` writes a configuration of its own in a folder (one ``unix:path=`` socket
there, EXTERNAL authentication, a permissive policy unless ``policy`` is given), starts Debian's
``dbus-daemon`` with it in the foreground and can kill it (SIGKILL) and start it again at the
same address. :func:`system_like` gives the policy of Debian's system bus (deny by default)
with extra policy files included, to test a shipped policy. The peers nobody here wrote are
run by :func:`busctl` and :func:`gdbus`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

DBUS_DAEMON = shutil.which('dbus-daemon') or '/usr/bin/dbus-daemon'
BUSCTL = shutil.which('busctl') or '/usr/bin/busctl'
GDBUS = shutil.which('gdbus') or '/usr/bin/gdbus'
OPEN_POLICY = """
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>"""


def system_like(*includes: Path) -> str:
    """Return the policy of Debian's system bus, with the given policy files included last."""
    text = """
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>"""
    return text + ''.join(f'\n  <include>{path}</include>' for path in includes)


class DbusDaemon:
    """One dbus-daemon listening on a socket in its own folder."""

    def __init__(self, folder: Path | None = None, *, policy: str = OPEN_POLICY,
                 world: bool = False) -> None:
        if not os.access(DBUS_DAEMON, os.X_OK):
            raise RuntimeError('dbus-daemon is not installed: ./dev setup installs it')
        # AF_UNIX paths are short: a test's tmp_path may be too long, so a short folder of ours.
        self.folder = Path(tempfile.mkdtemp(prefix='dbus-'))
        if world:  # other users (the policy tests' callers) reach the socket
            os.chmod(self.folder, 0o755)
        self.socket = self.folder / 'bus'
        self.address = f'unix:path={self.socket}'
        self.config = (Path(folder) if folder else self.folder) / 'bus.conf'
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n<busconfig>\n'
            f'  <type>session</type>\n  <listen>{self.address}</listen>\n'
            f'  <auth>EXTERNAL</auth>{policy}\n</busconfig>\n')
        self.log = self.config.parent / 'dbus-daemon.log'
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> DbusDaemon:
        """Start dbus-daemon; return once it listens (it prints its address then)."""
        assert self.process is None, 'the daemon runs already'
        with open(self.log, 'ab') as log:
            self.process = subprocess.Popen(
                [DBUS_DAEMON, f'--config-file={self.config}', '--nofork', '--nopidfile',
                 '--print-address=1'], stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # (written once it listens)
        if not line.startswith('unix:'):
            self.process.wait(timeout)
            self.process = None
            raise RuntimeError(f'dbus-daemon did not start:\n{self.log.read_text()}')
        return self

    def kill(self) -> None:
        """Kill the daemon (SIGKILL: every connection is cut at once)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process.stdout.close()
        self.process = None

    def stop(self) -> None:
        """Stop the daemon (SIGTERM) and remove its folder."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process.stdout.close()
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DbusDaemon:
        """Start the daemon."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the daemon."""
        self.stop()


def busctl(address: str, *args: str, timeout: float = 30.0, **kwargs: Any
           ) -> subprocess.CompletedProcess:
    """Run busctl against the bus at address (output as text)."""
    return subprocess.run([BUSCTL, f'--address={address}', *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def gdbus(address: str, command: str, *args: str, timeout: float = 30.0, **kwargs: Any
          ) -> subprocess.CompletedProcess:
    """Run a gdbus command (call, introspect ...) against the bus at address."""
    return subprocess.run([GDBUS, command, '--address', address, *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def until(condition: Any, timeout: float = 10.0, step: float = 0.02) -> Any:
    """Return condition() once it is true; fail after timeout seconds (for outside state)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f'condition not met within {timeout} s'
        time.sleep(step)
    return value
