"""Fast DDS's shared-memory files left behind by processes that died, found and removed.

Fast DDS keeps its shared-memory transport in ``/dev/shm``: a segment per participant
(``fastdds_<16 hex>`` with its lock file ``…_el`` or ``…_sl``) and a file per port
(``fastdds_port<n>``, its lock file and the mutex ``sem.fastdds_port<n>_mutex``). A live
owner holds an ``flock`` on the lock file; a SIGKILLed one cannot remove its files, so they
stay for ever. :func:`remove_stale` does what ``fastdds shm clean`` does, for this user's
files only, and an application runs it when it starts with ROS.

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
