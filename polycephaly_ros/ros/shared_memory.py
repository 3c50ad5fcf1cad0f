"""Fast DDS's shared-memory files: kept private to this user, and removed when their owner died.

Fast DDS keeps its shared-memory transport in ``/dev/shm``: a segment per participant
(``fastdds_<16 hex>`` with its lock file ``…_el`` or ``…_sl``) and a file per port
(``fastdds_port<n>``, its lock file and the mutex ``sem.fastdds_port<n>_mutex``). A live
owner holds an ``flock`` on the lock file; a SIGKILLed one cannot remove its files, so they
stay for ever. :func:`remove_stale` does what ``fastdds shm clean`` does, for this user's
files only, and an application runs it when it starts with ROS.

The segments hold the samples themselves, envelope bodies included, and Fast DDS makes them
readable by everyone (0644); with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` rmw_fastrtps
always adds the shared-memory transport, whatever a Fast DDS profile says. :func:`make_private`
takes read access away from other users (0600) as soon as a process's participant exists
(``Application(private_shared_memory=True)``, the default): this user's processes still share
them; another user's reader of these topics no longer gets samples over shared memory. What
stays open: a process of another user that opened a segment in the milliseconds between its
creation and this change keeps what it opened.

Threading contract: any thread; it only touches files whose lock nobody holds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from pathlib import Path

SHM = Path('/dev/shm')
_SEGMENT_LOCK = re.compile(r'fastdds_[0-9a-z]{16}(_el|_sl)')
_PORT_LOCK = re.compile(r'fastdds_port\d{1,5}(_el|_sl)')
_log = logging.getLogger('polycephaly_ros.ros.shared_memory')


def _locked(path: Path) -> bool:
    """Tell whether a live process holds the lock file (an flock on it)."""
    try:
        with open(path, 'ab') as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


_SEGMENT = re.compile(r'fastdds_[0-9a-z]{16}')


def make_private(shm: Path = SHM) -> int:
    """Make this user's Fast DDS segments readable by this user only; return how many changed."""
    changed = 0
    uid = os.getuid()
    try:
        entries = list(os.scandir(shm))
    except OSError:
        return changed
    for entry in entries:
        if not _SEGMENT.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if st.st_uid == uid and st.st_mode & 0o077:
                os.chmod(entry.path, 0o600)
                changed += 1
        except OSError:  # (its owner ended meanwhile)
            continue
    return changed


def remove_stale(shm: Path = SHM) -> list[str]:
    """Remove this user's Fast DDS shared-memory files whose owner died; return their names."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(shm))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        name = entry.name
        segment = _SEGMENT_LOCK.fullmatch(name)
        port = _PORT_LOCK.fullmatch(name)
        if not (segment or port):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != uid or _locked(Path(entry.path)):
                continue
        except OSError:
            continue
        base = name[:-3]
        files = [name, base] + ([f'sem.{base}_mutex'] if port else [])
        for file in files:
            try:
                os.unlink(shm / file)
                removed.append(file)
            except FileNotFoundError:
                pass
            except OSError as exc:
                _log.debug('cannot remove %s: %s', shm / file, exc)
    if removed:
        _log.info('removed %d stale Fast DDS shared-memory file(s) of processes that died',
                  len(removed))
    return removed
