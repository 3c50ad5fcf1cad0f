"""A Fast DDS discovery server for an application's participants, instead of simple discovery.

With simple discovery every participant meets every other one, and Fast DDS opens the
shared-memory port of each participant it meets (waiting, under its discovery lock, until the
port's listeners show they live: up to a third of a second each), so the start-up of N head
processes grows as N². With a discovery server each participant talks to the server, which
passes on only what a participant's own endpoints match.

``Application(discovery_server=...)`` takes ``'start'`` (the application starts one on
127.0.0.1 at a free port before its first participant and stops it after its last: it is no
head, as the main head's own node needs it first) or the ``host:port`` of a server already
running. Every participant of the application (main head and head processes) is then its
client through ``ROS_DISCOVERY_SERVER`` (see ros/host.py); ``ros2`` tools reach the graph with
``ROS_DISCOVERY_SERVER`` set to the same address and ``ROS_SUPER_CLIENT=TRUE``.

Threading contract: start() and the returned close() are called from the main head's thread.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..errors import ConfigurationError

_log = logging.getLogger('polycephaly_ros.ros.discovery_server')
_ADDRESS = re.compile(r'^[A-Za-z0-9.\-]+:\d{1,5}$')
#: The fast-discovery-server command that runs a server (the `fastdds discovery` tool's).
_SERVE = '42'
_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>loopback</transport_id>
        <type>UDPv4</type>
        <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="polycephaly_discovery_server" is_default_profile="true">
      <rtps>
        <userTransports><transport_id>loopback</transport_id></userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
        <builtin>
          <discovery_config><discoveryProtocol>SERVER</discoveryProtocol></discovery_config>
          <metatrafficUnicastLocatorList>
            <locator><udpv4><address>127.0.0.1</address><port>{port}</port></udpv4></locator>
          </metatrafficUnicastLocatorList>
        </builtin>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def checked_option(value: str | None) -> str | None:
    """Return a valid discovery_server option; raise ConfigurationError naming a bad one."""
    if value is None or value == 'start' or (isinstance(value, str) and _ADDRESS.match(value)):
        return value
    raise ConfigurationError(f'discovery_server must be None, "start" or "host:port", not '
                             f'{value!r}')


def start(timeout: float = 10.0) -> tuple[str, Callable[[], None]]:
    """Start a discovery server on 127.0.0.1; return its address and what stops it.

    Raises ConfigurationError when no fast-discovery-server is installed or it does not start.
    """
    command = shutil.which('fast-discovery-server') or \
        shutil.which('fast-discovery-server', path=os.path.join(sys.prefix, 'bin'))
    if command is None:
        raise ConfigurationError('discovery_server="start" needs the fast-discovery-server '
                                 'program (Fast DDS); none is on PATH')
    port = _free_udp_port()
    folder = Path(tempfile.mkdtemp(prefix='polycephaly-discovery-'))
    profile = folder / 'server.xml'
    profile.write_text(_PROFILE.format(port=port))
    process = subprocess.Popen(
        [command, _SERVE, '-x', str(profile)], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_library_environment(),
        start_new_session=True)

    def close() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)

    try:
        _wait_until_started(process, timeout)
    except BaseException:
        close()
        raise
    address = f'127.0.0.1:{port}'
    _log.info('discovery server running on %s (pid %d)', address, process.pid)
    return address, close


def _wait_until_started(process: subprocess.Popen, timeout: float) -> None:
    """Read the server's output until it says it started; raise ConfigurationError if not."""
    output = b''
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b'Server started' not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            output += chunk
    if b'Server started' not in output:
        raise ConfigurationError('the discovery server did not start: '
                                 + output.decode(errors='replace').strip()[-300:])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _library_environment() -> dict[str, str]:
    """Return the environment with the Fast DDS libraries of a pip-installed ROS on its path.

    (The PyPI wheels ship the program without a search path to their libraries; a ROS from
    apt needs nothing.)
    """
    environment = dict(os.environ)
    folders = [os.path.join(sys.prefix, 'lib'),
               *map(str, Path(sys.prefix).glob('lib/python3*/site-packages/ros_fastdds.libs'))]
    existing = environment.get('LD_LIBRARY_PATH')
    environment['LD_LIBRARY_PATH'] = os.pathsep.join(folders + ([existing] if existing else []))
    return environment
