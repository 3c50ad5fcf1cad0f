"""Pairing phones with the robot: one-time codes, paired devices, revocation, a rate limit.

The model: being in front of the robot is the authorisation. Only the robot's own screen gets
a code (the service's ``pair`` request); a phone that types or scans it within ``code_ttl``
seconds becomes a *paired device* and gets a random token (32 bytes) it presents from then on.

* **Codes**: 8 characters of an alphabet without look-alikes (no 0/O, 1/I/L), shown as
  ``XXXX-XXXX`` (case, dashes and spaces are ignored when typed). One code lives at a time: a
  new one replaces the previous, which is then refused; a code works once and expires.
* **Wrong codes** are limited per client address: ``attempts`` within any minute, then every
  try is refused (:class:`TooManyAttempts`, "too many attempts, wait N s") until the oldest
  falls out of the minute.
* **Devices** (id, name, paired, last seen) are kept in ``devices.json`` in the state
  directory; a token is stored only as its SHA-256. The directory is made 0700 and the file
  0600, and both are checked as ssh-agent checks its socket's directory (ours, not a
  symbolic link, nobody else may read or write) before anything is read or written:
  otherwise :class:`~polycephaly_ros.errors.ConfigurationError`. The file is replaced
  atomically; ``last_seen`` is saved at most once a minute and on :meth:`PairingStore.close`.
* **Revocation** forgets a device; its token then gets "revoked" (not just "not paired").

Threading: every method of :class:`PairingStore` is safe from any thread (one lock); the
module's functions are pure or touch only the given path.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import math
import os
import secrets
import stat
import threading
import time
import unicodedata
from typing import Any, Callable

from ...errors import ConfigurationError

#: The letters of a code: no 0/O, 1/I/L look-alikes.
ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789'
CODE_LENGTH = 8
FILE_NAME = 'devices.json'
WINDOW = 60.0          # s over which wrong codes are counted
SAVE_EVERY = 60.0      # s between saves of last_seen alone
MAX_CLIENTS = 4096     # client addresses whose wrong codes are remembered
MAX_NAME = 40          # characters of a device's name
MAX_TOKEN = 128        # characters of a token as presented
KEEP_SPENT = 32        # recent codes remembered to say "used" or "replaced"
KEEP_REVOKED = 100     # revoked tokens remembered to say "revoked"


class PairingError(Exception):
    """A refusal, in words for the person holding the phone."""


class NotPaired(PairingError):
    """The token is missing, unknown or revoked."""


class CodeRefused(PairingError):
    """The code is wrong, used, replaced or expired."""


class TooManyAttempts(PairingError):
    """Too many wrong codes from this client within a minute."""

    def __init__(self, wait: int) -> None:
        super().__init__(f'too many attempts, wait {wait} s')
        self.wait = wait


class UnknownDevice(PairingError):
    """No paired device has that id."""


def default_state_dir(namespace: str) -> str:
    """Return $XDG_STATE_HOME/polycephaly/<namespace>, else ~/.local/state/polycephaly/<ns>."""
    base = os.environ.get('XDG_STATE_HOME') or os.path.expanduser('~/.local/state')
    return os.path.join(base, 'polycephaly', namespace.strip('/').replace('/', '.') or 'root')


def normalize_code(text: str) -> str:
    """Return a typed code in canonical form (upper case, no dashes or spaces)."""
    return ''.join(c for c in text.upper() if c not in '- \t')


def show_code(code: str) -> str:
    """Return a canonical code as it is shown: XXXX-XXXX."""
    return f'{code[:4]}-{code[4:]}'


def clean_name(text: str) -> str:
    """Return a device name fit to keep and show: printable, one line, at most MAX_NAME."""
    kept = ''.join(c if unicodedata.category(c)[0] not in 'CZ' or c == ' ' else ' '
                   for c in text)
    return ' '.join(kept.split())[:MAX_NAME] or 'phone'


def hash_token(token: str) -> str:
    """Return the SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def secure_directory(path: str) -> str:
    """Make path (and missing parents) 0700 if missing, check it; return it absolute."""
    path = os.path.abspath(os.path.expanduser(path))
    missing = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # (made meanwhile: checked below)
            pass
    check_private(path, directory=True)
    return path


def check_private(path: str, directory: bool, st: os.stat_result | None = None) -> None:
    """Raise ConfigurationError unless path is ours, no symbolic link, for nobody else."""
    st = st or os.lstat(path)
    kind = 'directory' if directory else 'file'
    if stat.S_ISLNK(st.st_mode):
        raise ConfigurationError(f'the pairing {kind} {path} is a symbolic link; refusing it')
    if not (stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)):
        raise ConfigurationError(f'the pairing {kind} {path} is not a {kind}; refusing it')
    if st.st_uid != os.getuid():
        raise ConfigurationError(f'the pairing {kind} {path} belongs to uid {st.st_uid}, not '
                                 f'to this user ({os.getuid()}); refusing it')
    if st.st_mode & 0o077:
        raise ConfigurationError(f'others may use the pairing {kind} {path} (mode '
                                 f'{stat.S_IMODE(st.st_mode):04o}); make it '
                                 f'{"0700" if directory else "0600"}')


class PairingStore:
    """Codes, paired devices and wrong-code counts of one robot, kept in directory."""

    def __init__(self, directory: str, code_ttl: float = 300.0, attempts: int = 5,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = secure_directory(directory)
        self.path = os.path.join(self.directory, FILE_NAME)
        self.code_ttl = float(code_ttl)
        self.attempts = int(attempts)
        self._clock = clock
        self._lock = threading.Lock()
        self._code: tuple[str, float] | None = None            # (canonical code, expires)
        self._spent: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._failures: dict[str, collections.deque[float]] = {}
        self._devices: dict[str, dict[str, Any]] = {}           # token hash -> device
        self._revoked: dict[str, dict[str, Any]] = {}           # token hash -> device
        self._dirty = False
        self._saved = clock()
        self._load()

    # -- codes -----------------------------------------------------------------------
    def new_code(self) -> dict[str, Any]:
        """Make the one valid code (the previous unused one is refused from now on)."""
        code = ''.join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        with self._lock:
            if self._code is not None:
                self._spend(self._code[0], 'replaced')
            expires = self._clock() + self.code_ttl
            self._code = (code, expires)
        return {'code': show_code(code), 'expires': expires, 'ttl': self.code_ttl}

    def pair(self, code: str, name: str, client: str) -> tuple[dict[str, Any], str]:
        """Use code to pair a device; return (device, token), or raise a PairingError."""
        typed = normalize_code(code)[:2 * CODE_LENGTH] if isinstance(code, str) else ''
        with self._lock:
            now = self._clock()
            failures = self._failures.get(client)
            while failures and failures[0] <= now - WINDOW:
                failures.popleft()
            if failures and len(failures) >= self.attempts:
                raise TooManyAttempts(max(1, math.ceil(failures[0] + WINDOW - now)))
            current = self._code
            if current is not None and hmac.compare_digest(typed, current[0]):
                if now < current[1]:
                    self._code = None
                    self._spend(current[0], 'used')
                    return self._add_device(name, now)
                self._code = None
                self._spend(current[0], 'expired')
            why = self._spent.get(typed)
            left = self.attempts - len(self._fail(client, now))
            tries = f' ({left} {"try" if left == 1 else "tries"} left this minute)'
            if why == 'used':
                raise CodeRefused('this code was already used: show a new one on the robot')
            if why == 'replaced':
                raise CodeRefused('this code was replaced by a newer one: use the code the '
                                  'robot shows now')
            if why == 'expired':
                raise CodeRefused(f'this code expired (codes live {self.code_ttl:g} s): show '
                                  'a new one on the robot')
            raise CodeRefused('wrong code: check the code on the robot\'s screen' + tries)

    def _spend(self, code: str, why: str) -> None:
        self._spent[code] = why
        self._spent.move_to_end(code)
        while len(self._spent) > KEEP_SPENT:
            self._spent.popitem(last=False)

    def _fail(self, client: str, now: float) -> collections.deque[float]:
        if client not in self._failures and len(self._failures) >= MAX_CLIENTS:
            for old in [c for c, f in self._failures.items() if not f or f[-1] <= now - WINDOW]:
                del self._failures[old]
            if len(self._failures) >= MAX_CLIENTS:  # (all recent: forget the oldest)
                del self._failures[next(iter(self._failures))]
        failures = self._failures.setdefault(client, collections.deque())
        failures.append(now)
        return failures

    # -- devices ---------------------------------------------------------------------
    def _add_device(self, name: str, now: float) -> tuple[dict[str, Any], str]:
        token = secrets.token_urlsafe(32)
        device = {'id': secrets.token_hex(6), 'name': clean_name(str(name)), 'paired': now,
                  'last_seen': now}
        self._devices[hash_token(token)] = device
        self._save()
        return dict(device), token

    def check(self, token: Any) -> dict[str, Any]:
        """Return the device token belongs to (noting it was seen), or raise NotPaired."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            raise NotPaired('this phone is not paired: scan the QR code on the robot\'s '
                            'screen (Pair)')
        digest = hash_token(token)
        with self._lock:
            device = self._devices.get(digest)
            if device is None:
                if digest in self._revoked:
                    raise NotPaired('this phone\'s pairing was revoked on the robot: scan '
                                    'a new QR code to pair it again')
                raise NotPaired('this phone is not paired (or no longer known): scan the QR '
                                'code on the robot\'s screen (Pair)')
            now = self._clock()
            device['last_seen'] = now
            self._dirty = True
            if now - self._saved >= SAVE_EVERY:
                self._save()
            return dict(device)

    def devices(self) -> list[dict[str, Any]]:
        """Return the paired devices (id, name, paired, last_seen), oldest first."""
        with self._lock:
            return sorted((dict(d) for d in self._devices.values()), key=lambda d: d['paired'])

    def revoke(self, device_id: Any) -> dict[str, Any]:
        """Forget a device; return it, or raise UnknownDevice."""
        with self._lock:
            for digest, device in self._devices.items():
                if device['id'] == device_id:
                    del self._devices[digest]
                    self._revoked[digest] = dict(device, revoked=self._clock())
                    while len(self._revoked) > KEEP_REVOKED:
                        del self._revoked[next(iter(self._revoked))]
                    self._save()
                    return dict(device)
        raise UnknownDevice(f'no paired device has the id {device_id!r}')

    def close(self) -> None:
        """Save what changed since the last save (last_seen)."""
        with self._lock:
            if self._dirty:
                self._save()

    # -- the file --------------------------------------------------------------------
    def _load(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:  # ELOOP: a symbolic link
            raise ConfigurationError(f'cannot open {self.path} ({exc.strerror}); a symbolic '
                                     'link is refused') from None
        with os.fdopen(fd, 'rb') as f:
            check_private(self.path, directory=False, st=os.fstat(f.fileno()))
            try:
                data = json.loads(f.read())
                for key, into in (('devices', self._devices), ('revoked', self._revoked)):
                    for entry in data.get(key, []):
                        into[str(entry.pop('token_sha256'))] = {
                            k: entry[k] for k in ('id', 'name', 'paired', 'last_seen',
                                                  'revoked') if k in entry}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigurationError(f'{self.path} is not a pairing file this version '
                                         f'reads ({exc!r}); move it away') from None

    def _save(self) -> None:
        """Replace the file atomically (caller holds the lock)."""
        data = {'version': 1,
                'devices': [dict(d, token_sha256=h) for h, d in self._devices.items()],
                'revoked': [dict(d, token_sha256=h) for h, d in self._revoked.items()]}
        check_private(self.directory, directory=True)
        temporary = os.path.join(self.directory, f'.{FILE_NAME}.{secrets.token_hex(4)}')
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise
        self._saved = self._clock()
        self._dirty = False
