"""Test-run isolation: a ROS domain id of the run's own, a subreaper, no leftover processes.

Imported by test/conftest.py before anything imports rclpy (and by tests that check the
isolation itself), so it runs once per pytest process:

* this pytest run gets a ROS domain id of its own in 1..100, reserved by keeping loopback TCP
  port ``47100 + id`` bound for the whole session, so parallel runs on one machine do not see
  each other's topics;
* the pytest process is a child subreaper: orphans of the tests' processes reparent to it, so
  :func:`check_no_leftover_processes` can find them and zombies can be reaped here.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import socket
import sys
import time

import psutil
import pytest

DOMAIN_PORT_BASE = 47100
PR_SET_CHILD_SUBREAPER = 36

def _reserve_domain_id() -> tuple[int, socket.socket]:
    """Bind 127.0.0.1:47100+id for the first free id in 1..100, starting at (pid % 100) + 1."""
    start = os.getpid() % 100
    for k in range(100):
        domain_id = (start + k) % 100 + 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        try:
            sock.bind(('127.0.0.1', DOMAIN_PORT_BASE + domain_id))
        except OSError:
            sock.close()
            continue
        sock.set_inheritable(False)
        return domain_id, sock
    raise RuntimeError('no free ROS domain id in 1..100 (all ports 47101..47200 are bound)')


# Kept open (module global) for the whole session: the reservation lasts as long as this process.
ROS_DOMAIN_ID, _DOMAIN_SOCKET = _reserve_domain_id()
os.environ['ROS_DOMAIN_ID'] = str(ROS_DOMAIN_ID)


def _become_subreaper() -> bool:
    if not sys.platform.startswith('linux'):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


IS_SUBREAPER = _become_subreaper()


# -- helpers ---------------------------------------------------------------------------------
def reap_zombies() -> list[int]:
    """Reap every exited child of this process without blocking; return their pids.

    multiprocessing's own children are reaped first through their Process objects (so their
    ``exitcode`` stays right); whatever else has exited is reaped with ``waitpid(-1, WNOHANG)``.
    Call it after joining/waiting your own processes: a ``subprocess.Popen`` reaped here reports
    return code 0 afterwards.
    """
    multiprocessing.active_children()
    reaped = []
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped.append(pid)
    return reaped


def _exempt_pids() -> set[int]:
    """The long-lived helpers multiprocessing keeps for the whole session."""
    pids = set()
    try:
        from multiprocessing import forkserver
        pid = getattr(forkserver._forkserver, '_forkserver_pid', None)
        if pid:
            pids.add(pid)
    except Exception:  # noqa: BLE001 - private API; absent on some platforms
        pass
    try:
        from multiprocessing import resource_tracker
        pid = getattr(resource_tracker._resource_tracker, '_pid', None)
        if pid:
            pids.add(pid)
    except Exception:  # noqa: BLE001
        pass
    return pids


def _descendants() -> list[psutil.Process]:
    exempt = _exempt_pids()
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in children if p.pid not in exempt]


def _describe(proc: psutil.Process) -> str:
    try:
        with proc.oneshot():
            name, status = proc.name(), proc.status()
            try:
                cmdline = ' '.join(proc.cmdline())
            except psutil.Error:
                cmdline = '?'
    except psutil.NoSuchProcess:
        return f'pid={proc.pid} (gone)'
    except psutil.Error as exc:
        return f'pid={proc.pid} ({type(exc).__name__})'
    return f'pid={proc.pid} name={name!r} status={status} cmdline={cmdline!r}'


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=3.0)
    reap_zombies()


def check_no_leftover_processes(timeout: float = 5.0) -> None:
    """Wait up to ``timeout`` s for every descendant of pytest to end, else fail and kill them.

    The multiprocessing fork server and resource tracker are allowed to stay. Waiting is done
    with ``psutil.wait_procs`` on the current descendants (it returns as soon as they are all
    gone); the descendants are listed again afterwards, since orphans reparent to us meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        reap_zombies()
        procs = _descendants()
        if not procs:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        psutil.wait_procs(procs, timeout=remaining)
    leftovers = [_describe(p) for p in procs]
    _kill_all(_descendants())
    pytest.fail(f'{len(leftovers)} process(es) left over after {timeout} s (now killed):\n  '
                + '\n  '.join(leftovers), pytrace=False)
