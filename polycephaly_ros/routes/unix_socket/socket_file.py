"""The server's socket file: claiming its path, creating it with tight permissions, removing it.

Security rules:

* The socket file never exists at its path with looser permissions than ``mode`` (0600 by
  default: only this user; 0660 with ``group`` to let one group in): it is bound in a private
  (0700) directory beside the path, given its mode and group there, and only then linked into
  place (a link, not a rename, so an existing file at the path is never replaced). No umask is
  changed, so other threads of the process are unaffected. The directory holding it should be
  just as tight.
* The directory must be owned by this user (or root), not a symbolic link, and writable by
  nobody else (:func:`check_directory`), or the server does not start.
* A stale socket file (nobody listening) is replaced; a live server on the path, or a file
  that is not a socket, is a :class:`ConfigurationError` and is left alone.
* On removal the file is unlinked only if it is still the one this server created, so a
  server that stops late never removes its successor's socket.

Threading: any thread.
"""

from __future__ import annotations

import grp
import logging
import os
import shutil
import socket
import stat
import tempfile

from ...errors import ConfigurationError

#: The identity of a file: (st_dev, st_ino).
FileId = tuple[int, int]

_log = logging.getLogger(__name__)


def group_id(group: str | int) -> int:
    """Return the gid of a group given by name or number."""
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigurationError(f'no group named {group!r}') from None


def check_directory(directory: str) -> None:
    """Raise ConfigurationError unless directory is safe to keep a socket in, as ssh-agent checks.

    It must be a real directory (not a symbolic link) owned by this user or root, that nobody
    else can write to: then nobody else can replace or remove a socket file in it.
    """
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        raise ConfigurationError(f'the socket directory {directory} does not exist') from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ConfigurationError(f'{directory} is not a directory (a symbolic link?); refusing '
                                 'to keep a socket in it')
    if st.st_uid not in (os.getuid(), 0):
        raise ConfigurationError(f'the socket directory {directory} belongs to uid {st.st_uid}, '
                                 f'not to this user ({os.getuid()}); refusing to use it')
    if st.st_mode & 0o022:
        raise ConfigurationError(f'others may write to the socket directory {directory} (mode '
                                 f'{stat.S_IMODE(st.st_mode):04o}); use a directory only its '
                                 'owner can write to, such as one of mode 0700')


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
    parent = os.path.dirname(os.path.abspath(path))
    check_directory(parent)
    claim(path)
    private = tempfile.mkdtemp(prefix='.pcy-', dir=parent)  # 0700: nobody else gets in
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dir_fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Bound through the directory's descriptor, so the private path's length never matters.
        listener.bind(f'/proc/self/fd/{dir_fd}/s')
        if gid is not None:
            os.chown('s', -1, gid, dir_fd=dir_fd)
        os.chmod('s', mode, dir_fd=dir_fd)
        listener.listen(socket.SOMAXCONN)
        listener.setblocking(False)
        try:
            os.link('s', path, src_dir_fd=dir_fd)
        except FileExistsError:
            raise ConfigurationError(f'{path} appeared while the server was starting; '
                                     'refusing to replace it') from None
        st = os.lstat(path)
    except BaseException:
        listener.close()
        raise
    finally:
        os.close(dir_fd)
        shutil.rmtree(private, ignore_errors=True)
    return listener, (st.st_dev, st.st_ino)


def remove(path: str, file_id: FileId | None) -> None:
    """Unlink the socket file at path if it is still the one with that identity."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == file_id:
            os.unlink(path)
    except FileNotFoundError:
        pass
