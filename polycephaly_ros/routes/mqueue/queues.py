"""The route's POSIX message queues: names, limits, ours created tight and locked, a peer's checked.

Security and life-cycle rules:

* Our queue is created with ``O_EXCL`` and a mode with no bits for others: 0600, or with
  ``group`` 0620 (the group may send, not take messages) or 0660. It is created 0600 (the
  umask may only tighten that), given its group, and only then its mode, so it is never looser
  than asked, even briefly.
* While a route serves a queue it holds an exclusive ``flock`` on the queue's descriptor
  (Linux lets flock lock any open file, mqueue inodes included). The lock dies with its
  process, so a queue found at start-up is *live* (locked: a :class:`ConfigurationError`) or
  *stale* (its owner is gone). A stale queue that is exactly what we would create (our uid,
  mode, group, sizes) is taken over with the messages peers left in it, so nothing they sent
  while we were away is lost; any other one (another user's squatting on the name, an old
  mode, other sizes) is removed and created afresh, and the messages dropped are logged.
* A peer's queue is used only when its owner is one of ``peer_uids`` (this user and root by
  default) and others cannot read it: a queue someone else made under that name gets nothing.
* Our queue is unlinked on close (if it is still ours), before its descriptor is closed.

Limits: a queue holds at most ``max_messages`` messages of at most ``max_message_size``
bytes. Unprivileged processes are held to ``/proc/sys/fs/mqueue/msg_max`` and
``msgsize_max`` (10 and 8192 by default) and to ``RLIMIT_MSGQUEUE`` (819,200 bytes per user by
default: about nine such queues); the defaults here are the system's ``msg_default`` and
``msgsize_default``.

Threading: any thread; a returned queue belongs to its caller.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import logging
import os
import re
import stat

import posix_ipc

from ...errors import ConfigurationError, RecipientUnavailable

#: A queue's name: a slash, then up to 254 bytes with no slash or NUL.
NAME = re.compile(r'/[^/\x00]{1,254}')
#: Where the kernel says how big queues may be (see the module documentation).
PROC = '/proc/sys/fs/mqueue'
#: The modes our queue may have: never a bit for others, nor execute bits.
MODES = (0o600, 0o620, 0o640, 0o660)

_log = logging.getLogger(__name__)


def system_limit(name: str, fallback: int) -> int:
    """Return one of the kernel's queue limits (msg_default, msgsize_max, ...), or fallback."""
    try:
        with open(os.path.join(PROC, name)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return fallback


def default_sizes() -> tuple[int, int]:
    """Return (max_messages, max_message_size) that any user may create: the system's defaults."""
    return (system_limit('msg_default', posix_ipc.QUEUE_MESSAGES_MAX_DEFAULT),
            system_limit('msgsize_default', posix_ipc.QUEUE_MESSAGE_SIZE_MAX_DEFAULT))


def check_name(name: object, what: str = 'queue') -> str:
    """Return a valid queue name, or raise ConfigurationError."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(os.fsencode(name)) > 255:
        raise ConfigurationError(f'{what} must be a POSIX queue name: a slash, then 1..254 '
                                 f'bytes with no slash (such as "/robot.service"), not {name!r}')
    return name


def check_mode(mode: object, group: object) -> int:
    """Return a valid mode for our queue, or raise ConfigurationError."""
    if isinstance(mode, bool) or mode not in MODES:
        raise ConfigurationError(f'queue_mode must be one of {", ".join(map(oct, MODES))} '
                                 f'(nobody else but a group, never others), not {mode!r}')
    assert isinstance(mode, int)
    if mode & 0o070 and group is None:
        raise ConfigurationError(f'queue_mode {mode:#o} lets a group in: give group=<name or gid>')
    return mode


def group_id(group: str | int) -> int:
    """Return the gid of a group given by name or number."""
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigurationError(f'no group named {group!r}') from None


def create(name: str, mode: int, gid: int | None, max_messages: int,
           max_message_size: int) -> posix_ipc.MessageQueue:
    """Return our queue, read-only and locked: created, or a stale one taken over or replaced."""
    for _ in range(3):  # (a stale queue removed, then made again by someone else: try again)
        try:
            mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, mode=0o600, read=True,
                                        write=False, max_messages=max_messages,
                                        max_message_size=max_message_size)
        except posix_ipc.ExistentialError:
            mq = _take_over(name, mode, gid, max_messages, max_message_size)
            if mq is not None:
                return mq
            continue
        except ValueError:
            raise ConfigurationError(
                f'cannot create {name} with {max_messages} messages of {max_message_size} bytes: '
                f'over the limits in {PROC} (msg_max {system_limit("msg_max", 0)}, msgsize_max '
                f'{system_limit("msgsize_max", 0)}) for this user') from None
        except OSError as exc:
            hint = (' (RLIMIT_MSGQUEUE: this user has too many bytes in queues)'
                    if exc.errno == errno.EMFILE else '')
            raise ConfigurationError(f'cannot create the queue {name}: {exc}{hint}') from None
        try:
            _lock(mq, name)
            if gid is not None:
                os.fchown(mq.mqd, -1, gid)
            os.fchmod(mq.mqd, mode)
        except BaseException:
            mq.unlink()
            mq.close()
            raise
        return mq
    raise ConfigurationError(f'the queue {name} keeps appearing while it is being created')


def _lock(mq: posix_ipc.MessageQueue, name: str) -> None:
    """Lock a queue for this process, or raise ConfigurationError if a live owner holds it."""
    try:
        fcntl.flock(mq.mqd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigurationError(f'another route serves the queue {name} (a live process holds '
                                 'its lock)') from None


def _take_over(name: str, mode: int, gid: int | None, max_messages: int,
               max_message_size: int) -> posix_ipc.MessageQueue | None:
    """Return an existing queue taken over, or None once it was removed (to create it afresh)."""
    try:
        mq = posix_ipc.MessageQueue(name, read=True, write=False)
    except posix_ipc.ExistentialError:
        return None  # gone meanwhile
    except posix_ipc.PermissionsError:
        raise ConfigurationError(f'the queue {name} exists and this user may not open it (another '
                                 "user's?); remove it or choose another name") from None
    try:
        _lock(mq, name)
        st = os.fstat(mq.mqd)
        waiting = mq.current_messages
        if (st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == mode
                and (gid is None or st.st_gid == gid) and mq.max_messages == max_messages
                and mq.max_message_size == max_message_size):
            _log.info('taking over the queue %s left by an owner that is gone (%d message(s) '
                      'waiting in it)', name, waiting)
            return mq
        try:
            posix_ipc.unlink_message_queue(name)
        except posix_ipc.PermissionsError:
            raise ConfigurationError(f'the queue {name} belongs to uid {st.st_uid} and this user '
                                     'may not remove it; remove it or choose another '
                                     'name') from None
        except posix_ipc.ExistentialError:
            pass
        _log.warning('replaced the stale queue %s (uid %d, mode %#o, %d x %d bytes): %d message(s) '
                     'in it were dropped', name, st.st_uid, stat.S_IMODE(st.st_mode),
                     mq.max_messages, mq.max_message_size, waiting)
    except BaseException:
        mq.close()
        raise
    mq.close()
    return None


def open_peer(name: str, peer_uids: frozenset[int]) -> posix_ipc.MessageQueue:
    """Return a peer's queue, write-only; raise RecipientUnavailable if it is absent or not safe."""
    try:
        mq = posix_ipc.MessageQueue(name, read=False, write=True)
    except posix_ipc.ExistentialError:
        raise RecipientUnavailable(f'the queue {name} does not exist (its reader is not '
                                   'running)') from None
    except posix_ipc.PermissionsError:
        raise RecipientUnavailable(f'this user may not send to the queue {name}') from None
    st = os.fstat(mq.mqd)
    reason = None
    if st.st_uid not in peer_uids:
        reason = f'belongs to uid {st.st_uid}, not one of {sorted(peer_uids)}'
    elif st.st_mode & 0o004:
        reason = f'has mode {stat.S_IMODE(st.st_mode):#o}: anyone could take what is sent there'
    if reason is not None:
        mq.close()
        _log.error('not sending to the queue %s: it %s', name, reason)
        raise RecipientUnavailable(f'not sending to the queue {name}: it {reason}')
    return mq


def unlinked(mq: posix_ipc.MessageQueue) -> bool:
    """Tell whether a queue we hold open was removed from its name (its reader stopped)."""
    return os.fstat(mq.mqd).st_nlink == 0


def remove(mq: posix_ipc.MessageQueue, name: str) -> None:
    """Unlink our queue's name if it still names this queue (the descriptor stays open)."""
    try:
        ours = os.fstat(mq.mqd)
        if ours.st_nlink == 0:
            return
        probe = posix_ipc.MessageQueue(name, read=True, write=False)
    except (posix_ipc.ExistentialError, posix_ipc.PermissionsError, OSError):
        return
    try:
        st = os.fstat(probe.mqd)
        if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
            posix_ipc.unlink_message_queue(name)
    except posix_ipc.ExistentialError:
        pass
    finally:
        probe.close()
