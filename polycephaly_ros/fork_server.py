"""The process that head processes fork from: started once, with rclpy already imported.

Head processes are started by multiprocessing's fork server, a fresh interpreter that is
started before rclpy runs in the application's process (never fork a process in which rclpy
was initialised). :func:`ensure_running` starts it with what every head would otherwise import
again (about 0.2 s of CPU each): polycephaly_ros and, when the application runs ROS, rclpy, its
executors and the Envelope message. Importing rclpy starts no DDS participant, context or
executor; its children pay only for their own ``rclpy.init`` and node, and share the
preloaded modules' memory copy-on-write.

multiprocessing starts the server with ``python -c``, so it would look modules up from the
current directory first (and ignores the sys.path it is given); the server is started with
``PYTHONSAFEPATH`` and this process's sys.path as ``PYTHONPATH`` so it imports the very modules
this process imports, then this module (the first one preloaded) puts the server's environment
back as it was, for the heads and whatever they run.

A server started earlier in this process (another Application, a test session) is reused as it
is. The supervisor calls :func:`ensure_running` before every head process it starts, so a
server that died is started again this way (multiprocessing would start it without these
settings); :func:`relaunch` covers one that dies in between.

Threading contract: called from the main head's thread (Application.run and the supervisor).
"""

from __future__ import annotations

import json
import os
import sys
from multiprocessing import forkserver

#: The environment variable that carries the server's own environment to restore.
_RESTORE = 'POLYCEPHALY_ROS_FORK_SERVER_ENV'
_CHANGED = ('PYTHONSAFEPATH', 'PYTHONPATH')
#: What every head process imports; the ROS part only when the application runs ROS.
PRELOAD = ['polycephaly_ros.fork_server', 'polycephaly_ros.runtime']
PRELOAD_ROS = ['rclpy', 'rclpy.node', 'rclpy.executors', 'rclpy.parameter',
               'polycephaly_ros.ros.host', 'polycephaly_ros.ros.bridge', 'polycephaly_ros.msg']


def ensure_running(ros: bool) -> None:
    """Start the fork server with the head modules preloaded, unless it runs already."""
    forkserver.set_forkserver_preload(PRELOAD + (PRELOAD_ROS if ros else []))
    saved = {name: os.environ.get(name) for name in (*_CHANGED, _RESTORE)}
    os.environ[_RESTORE] = json.dumps({name: saved[name] for name in _CHANGED})
    os.environ['PYTHONSAFEPATH'] = '1'
    os.environ['PYTHONPATH'] = os.pathsep.join(p for p in sys.path if p)
    try:
        forkserver.ensure_running()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def relaunch(ros: bool) -> None:
    """Forget a fork server that died and start a new one (multiprocessing keeps no public way)."""
    server = forkserver._forkserver
    with server._lock:
        if server._forkserver_alive_fd is not None:
            os.close(server._forkserver_alive_fd)
        if server._forkserver_pid is not None:
            try:
                os.waitpid(server._forkserver_pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (e.g. by a subreaper)
                pass
        address = server._forkserver_address
        if address and os.path.exists(address):
            os.unlink(address)
        server._forkserver_address = None
        server._forkserver_alive_fd = None
        server._forkserver_pid = None
    ensure_running(ros)


def _restore_environment() -> None:
    """In the fork server: put back the environment its starter changed to start it."""
    original = json.loads(os.environ.pop(_RESTORE))
    for name, value in original.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


if _RESTORE in os.environ and __name__ == 'polycephaly_ros.fork_server' \
        and sys.argv[:1] == ['-c']:  # (only in the server: python -c 'from ...forkserver ...')
    _restore_environment()
