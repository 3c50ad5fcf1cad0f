"""The route's named pipes: their directory checked, the pair made tight, claimed, opened, removed.

Security rules (as for the Unix socket's file, in
:mod:`polycephaly_ros.routes.unix_socket.socket_file`):

* The directory is made 0700 (0710 with ``group``, so the group can reach the pipes) if it
  does not exist, and must be a real directory (not a symbolic link) owned by this user or
  root that nobody else can write to (:func:`check_directory`); otherwise nothing starts.
* Each pipe is made with mode 0600 (the umask may only tighten that), given its group, and
  only then its mode (0600, or 0620/0660 with ``group``), so it is never looser than asked.
  Pipes are opened with ``O_NOFOLLOW`` and checked to be the ones we made.
* A pipe found at start-up (:func:`claim`): a file that is not a pipe is a
  :class:`ConfigurationError` and is left alone; an ``in`` pipe someone reads is a live
  route's (ConfigurationError); a stale pipe that is exactly what we would make (our uid,
  mode, group) is kept, so a peer already waiting on it (``cat out``) is served; any other
  is replaced.
* On removal a pipe is unlinked only if it is still the one made here.

Threading: any thread.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import stat

from ...errors import ConfigurationError

#: The identity of a file: (st_dev, st_ino).
FileId = tuple[int, int]
#: The modes the pipes may have: never a bit for others, nor execute bits.
MODES = (0o600, 0o620, 0o660)

_log = logging.getLogger(__name__)


def check_mode(mode: object, group: object) -> int:
    """Return a valid mode for the pipes, or raise ConfigurationError."""
    if isinstance(mode, bool) or mode not in MODES:
        raise ConfigurationError(f'fifo_mode must be one of {", ".join(map(oct, MODES))} '
                                 f'(nobody else but a group, never others), not {mode!r}')
    assert isinstance(mode, int)
    if mode & 0o070 and group is None:
        raise ConfigurationError(f'fifo_mode {mode:#o} lets a group in: give group=<name or gid>')
    return mode


def group_id(group: str | int) -> int:
    """Return the gid of a group given by name or number."""
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigurationError(f'no group named {group!r}') from None


def check_directory(directory: str, gid: int | None = None) -> None:
    """Make directory if it is missing; raise ConfigurationError unless it is safe for the pipes."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigurationError(f'cannot make the pipe directory {directory}: {exc}') from None
    else:
        if gid is not None:
            os.chown(directory, -1, gid)
            os.chmod(directory, 0o710)
    st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ConfigurationError(f'{directory} is not a directory (a symbolic link?); refusing '
                                 'to keep pipes in it')
    if st.st_uid not in (os.getuid(), 0):
        raise ConfigurationError(f'the pipe directory {directory} belongs to uid {st.st_uid}, not '
                                 f'to this user ({os.getuid()}); refusing to use it')
    if st.st_mode & 0o022:
        raise ConfigurationError(f'others may write to the pipe directory {directory} (mode '
                                 f'{stat.S_IMODE(st.st_mode):04o}); use a directory only its '
                                 'owner can write to, such as one of mode 0700')


def _has_reader(path: str) -> bool:
    """Tell whether some process has the pipe at path open for reading."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return False
        raise ConfigurationError(f'cannot tell whether {path} is in use: {exc}') from None
    os.close(fd)
    return True


def claim(path: str, mode: int, gid: int | None, live_check: bool) -> FileId:
    """Return the identity of our pipe at path: a stale one kept, or one made afresh."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return make(path, mode, gid)
    if not stat.S_ISFIFO(st.st_mode):
        raise ConfigurationError(f'{path} exists and is not a named pipe; refusing to replace it')
    if live_check and _has_reader(path):
        raise ConfigurationError(f'another process reads {path} (another route?); refusing to '
                                 'take it over')
    if (st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == mode
            and (gid is None or st.st_gid == gid)):
        _log.info('using the pipe %s left by an owner that is gone', path)
        return st.st_dev, st.st_ino
    _log.warning('replacing the pipe %s (uid %d, mode %#o)', path, st.st_uid,
                 stat.S_IMODE(st.st_mode))
    os.unlink(path)
    return make(path, mode, gid)


def make(path: str, mode: int, gid: int | None) -> FileId:
    """Make a pipe at path with exactly mode (and group), never looser; return its identity."""
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        raise ConfigurationError(f'{path} appeared while the route was starting; refusing to '
                                 'replace it') from None
    st = os.lstat(path)
    if not stat.S_ISFIFO(st.st_mode):  # (the directory is ours: nobody else could swap it)
        raise ConfigurationError(f'{path} is not the pipe just made')
    if gid is not None:
        os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, mode)
    return st.st_dev, st.st_ino


def open_pipe(path: str, flags: int, file_id: FileId) -> int:
    """Open our pipe at path (O_NONBLOCK, no symbolic link) and check it is the one we made."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != file_id:
        os.close(fd)
        raise ConfigurationError(f'{path} is no longer the pipe this route made')
    return fd


def remove(path: str, file_id: FileId | None) -> None:
    """Unlink the pipe at path if it is still the one with that identity."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == file_id:
            os.unlink(path)
    except FileNotFoundError:
        pass
