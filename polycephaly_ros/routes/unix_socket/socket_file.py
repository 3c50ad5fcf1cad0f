"""The server's socket file: claiming its path, creating it with tight permissions, removing it.

Security rules:

* The socket file is created under a umask that never lets it exist with looser permissions
  than ``mode`` (0600 by default: only this user; 0660 with ``group`` to let one group in),
  not even between ``bind()`` and ``chmod()``. The directory holding it should be just as
  tight.
* A stale socket file (nobody listening) is replaced; a live server on the path, or a file
  that is not a socket, is a :class:`ConfigurationError` and is left alone.
* On removal the file is unlinked only if it is still the one this server created, so a
  server that stops late never removes its successor's socket.

Threading: any thread. The umask is per process, so :func:`listen` holds a module lock while
it is changed: two servers of one process do not race on it (code elsewhere in the process
that sets the umask at the same moment is not covered).
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import stat
import threading

from ...errors import ConfigurationError

#: The identity of a file: (st_dev, st_ino).
FileId = tuple[int, int]

_UMASK_LOCK = threading.Lock()
_log = logging.getLogger(__name__)


def group_id(group: str | int) -> int:
    """Return the gid of a group given by name or number."""
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigurationError(f'no group named {group!r}') from None


def claim(path: str) -> None:
    """Remove a stale socket file at path; raise if it is live or not a socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigurationError(f'{path} exists and is not a socket; refusing to replace it')
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        _log.info('removing stale socket file %s', path)
        os.unlink(path)
        return
    except FileNotFoundError:
        return
    except socket.timeout:
        pass  # someone listens but its backlog is full
    except OSError as exc:
        raise ConfigurationError(f'cannot tell whether {path} is in use: {exc}') from None
    finally:
        probe.close()
    raise ConfigurationError(f'another server is listening on {path}')


def listen(path: str, mode: int, gid: int | None) -> tuple[socket.socket, FileId]:
    """Claim path and return a non-blocking listening socket there, with the file's identity."""
    claim(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        with _UMASK_LOCK:
            old = os.umask(0o777 & ~mode)
            try:
                listener.bind(path)
                bound = True
            finally:
                os.umask(old)
        if gid is not None:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
        st = os.stat(path)
        listener.listen(socket.SOMAXCONN)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        if bound:
            os.unlink(path)
        raise
    return listener, (st.st_dev, st.st_ino)


def remove(path: str, file_id: FileId | None) -> None:
    """Unlink the socket file at path if it is still the one with that identity."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == file_id:
            os.unlink(path)
    except FileNotFoundError:
        pass
