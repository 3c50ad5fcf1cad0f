"""The named pipe route's transport: newline-delimited JSON in through ``in``, out through ``out``.

A pair of pipes in one directory (:mod:`.fifo_file`): the peer writes envelopes to ``in``,
one per line (:mod:`polycephaly_ros.routes.framing`), and reads replies, error frames and
envelopes to remote names from ``out``. So ``echo '{...}' > in`` and ``cat out`` are peers.

Reading ``in``: it is opened non-blocking and read whenever it is readable. When its last
writer goes away the read sees the end of the file, which is not the end of the route: a
partial last line is taken as a line (``printf '{...}' > in`` works), and ``in`` is opened
again (before the old descriptor is closed, so a writer never finds it without a reader).
Several writers at once must each write a line in one ``write()`` of at most ``PIPE_BUF``
(4096) bytes, which the kernel keeps whole; longer lines from two writers may interleave and
are then refused as malformed.

Writing ``out``: opened non-blocking when there is something to send. No reader (``ENXIO``) or
a reader that went away (``EPIPE``) raise :class:`RecipientUnavailable` at once: a send never
blocks on a missing reader. A reader that does not read gets ``send_timeout`` seconds for
room, then the send raises :class:`QueueFull`; if part of the frame was written, the next
frame starts on a new line, so the reader sees one malformed line, never two frames run
together.

Security rules: frames are decoded by :func:`polycephaly_ros.codec.decode` (JSON only, every
header checked, control subjects and the poison pill refused, ``route`` set here) and a line
over ``max_frame`` is never buffered whole. A refused frame gets an error frame on ``out``
(never one whose own subject is ``error``: no error storms), or, when nobody reads ``out``,
is counted in :attr:`FifoTransport.stats` and logged, a few lines per period. A frame whose
recipient's queue is full waits, with every later one, and ``in`` is not read meanwhile
(back-pressure: writers block or get EAGAIN); it is offered again every :data:`HOLD_RETRY`
seconds and answered with an error after ``hold_timeout``. Lines unread at close are
answered with errors.

Threading: ``on_envelope(envelope)`` runs in the thread of the loop that watches ``in``: the
head's own loop when ``start(loop=...)`` is given one, else a thread of ours; it may raise
QueueFull ("not now") or another PolycephalyError (an error frame). ``send()`` may be called
from any thread (one lock keeps frames whole). ``stop()`` is called by the loop's owner
thread (or any thread, with a thread of our own). If our thread fails, the exception is
logged and given to ``on_failure``.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import select
import threading
import time
from typing import Any, Callable

from ... import codec
from ...errors import (ConfigurationError, PolycephalyError, QueueFull,
                       RecipientUnavailable, StateError)
from ...loop import Loop
from ...throttle import Throttle
from ..framing import MAX_FRAME, READ_SIZE, LineSplitter, encode_frame
from ..delivery import DELIVERED, WAIT, hand_on, parse_or_none
from . import fifo_file

#: Seconds between offers of a frame whose recipient's queue was full.
HOLD_RETRY = 0.002
#: Reads per wake-up at most (then the loop's other work gets its turn).
READS = 4
#: Seconds an error frame waits for another thread's send to finish (it never waits for room).
LOCK_WAIT = 0.1
_log = logging.getLogger(__name__)


class FifoTransport:
    """Read the ``in`` pipe and write the ``out`` pipe of a directory (see the module)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        on_envelope: Callable[[dict[str, Any]], None],
        *,
        route: str = 'fifo',
        mode: int = 0o600,
        group: str | int | None = None,
        max_frame: int = MAX_FRAME,
        poison_pill: str | None = None,
        send_timeout: float = 2.0,
        hold_timeout: float = 2.0,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        if max_frame < 1:
            raise ConfigurationError(f'max_frame must be at least 1 byte, not {max_frame}')
        self.directory = os.path.abspath(os.fspath(directory))
        self.in_path = os.path.join(self.directory, 'in')
        self.out_path = os.path.join(self.directory, 'out')
        self.mode = fifo_file.check_mode(mode, group)
        self.gid = None if group is None else fifo_file.group_id(group)
        self.max_frame = max_frame
        self.route = route
        self.send_timeout = send_timeout
        self.hold_timeout = hold_timeout
        #: What happened, by kind: received, delivered, refused, errors_sent, errors_lost,
        #: errors_unanswered, sent (error frames too), send_failed, cut, reopened,
        #: left_at_close. The reading side's counts are kept by the loop's thread, the
        #: writing side's under a lock.
        self.stats: collections.Counter[str] = collections.Counter()
        self._on_envelope = on_envelope
        self._on_failure = on_failure
        self._poison_pill = poison_pill
        self._throttle = Throttle(_log)
        self._lock = threading.Lock()  # out: one frame at a time
        self._out = -1
        self._cut = False  # part of a frame went out: the next one starts on a new line
        self._in = -1
        self._ids: dict[str, fifo_file.FileId] = {}
        self._lines = LineSplitter(max_frame)
        self._held: collections.deque[bytes | None] = collections.deque()
        self._held_since = 0.0
        self._loop: Loop | None = None
        self._thread: threading.Thread | None = None
        self._wake = -1
        self._reading = False
        self._stopping = False

    # -- public API --------------------------------------------------------------------------
    def start(self, *, loop: Loop | None = None) -> None:
        """Make the pipes; read ``in`` from loop (its owner's thread), or from a thread of ours."""
        if self._in >= 0:
            raise StateError(f'the route in {self.directory} is already running')
        fifo_file.check_directory(self.directory, self.gid)
        self._ids['in'] = fifo_file.claim(self.in_path, self.mode, self.gid, live_check=True)
        self._ids['out'] = fifo_file.claim(self.out_path, self.mode, self.gid, live_check=False)
        self._in = fifo_file.open_pipe(self.in_path, os.O_RDONLY, self._ids['in'])
        self._stopping = False
        self._loop = Loop() if loop is None else loop
        self._watch()
        if loop is None:
            self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._loop.watch(self._wake, lambda fd: None)  # (wakes the loop to see _stopping)
            self._thread = threading.Thread(target=self._run, name=f'fifo:{self.directory}',
                                            daemon=True)
            self._thread.start()
        _log.info('reading %s, writing %s (mode %#o)', self.in_path, self.out_path, self.mode)

    def send(self, envelope: dict[str, Any]) -> None:
        """Write an envelope to ``out``, waiting send_timeout at most for its reader to read."""
        try:
            self._write(encode_frame(envelope), self.send_timeout)
        except PolycephalyError:
            with self._lock:
                self.stats['send_failed'] += 1
            raise

    def stop(self) -> None:
        """Stop reading, answer what is left, remove the pipes and close them."""
        if self._in < 0:
            return
        thread = self._thread
        self._stopping = True
        if thread is None:
            self._close()
        elif thread is not threading.current_thread():
            os.eventfd_write(self._wake, 1)
            thread.join()
            self._thread = None
            assert self._loop is not None
            self._loop.unwatch(self._wake)
            self._loop.close()
            os.close(self._wake)
            self._wake = -1

    def __enter__(self) -> FifoTransport:
        """Start with a thread of its own and return it."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop."""
        self.stop()

    # -- writing, any thread -------------------------------------------------------------------
    def _write(self, data: bytes, timeout: float) -> None:
        """Write one frame to ``out`` within timeout seconds, or raise why not."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=max(timeout, LOCK_WAIT)):
            raise QueueFull(f'another send to {self.out_path} waits for its reader')
        try:
            fd = self._out if self._out >= 0 else self._open_out()
            cut = self._cut
            view = memoryview(b'\n' + data if cut else data)
            sent = 0
            while sent < len(view):
                try:
                    sent += os.write(fd, view[sent:])
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    poller = select.poll()
                    poller.register(fd, select.POLLOUT)
                    poller.poll(remaining * 1000)
                except OSError as exc:  # EPIPE: the reader went away
                    self._cut = cut or sent > 0
                    self._close_out()
                    raise RecipientUnavailable(f'nobody reads {self.out_path} any more'
                                               if exc.errno == errno.EPIPE else
                                               f'cannot write {self.out_path}: {exc}') from None
            if sent < len(view):
                self._cut = cut or sent > 0
                self.stats['cut'] += sent > 0
                raise QueueFull(f'the reader of {self.out_path} took no more for {timeout:g} s')
            self._cut = False
            self.stats['sent'] += 1
        finally:
            self._lock.release()

    def _open_out(self) -> int:
        """Open ``out`` to write (under the lock); raise RecipientUnavailable if nobody reads it."""
        try:
            self._out = fifo_file.open_pipe(self.out_path, os.O_WRONLY, self._ids['out'])
        except OSError as exc:
            raise RecipientUnavailable(f'nobody reads {self.out_path}' if exc.errno == errno.ENXIO
                                       else f'cannot open {self.out_path}: {exc}') from None
        except ConfigurationError as exc:
            raise RecipientUnavailable(str(exc)) from None
        return self._out

    def _close_out(self) -> None:
        """Close our end of ``out`` (under the lock)."""
        if self._out >= 0:
            os.close(self._out)
            self._out = -1

    # -- reading, the loop's thread -------------------------------------------------------------
    def _watch(self) -> None:
        """Read ``in`` whenever it is readable."""
        assert self._loop is not None
        self._loop.watch(self._in, self._on_readable)
        self._reading = True

    def _unwatch(self) -> None:
        """Stop reading ``in`` (until _watch())."""
        if self._reading and self._loop is not None:
            self._loop.unwatch(self._in)
        self._reading = False

    def _run(self) -> None:
        """Run our loop until stop() (our thread)."""
        assert self._loop is not None
        try:
            while not self._stopping:
                self._loop.run_once()
        except Exception as exc:
            _log.exception('the route in %s failed', self.directory)
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._close()

    def _on_readable(self, _fd: int) -> None:
        """Read what the writers wrote (a few reads at most) and deliver its lines."""
        for _ in range(READS):
            try:
                data = os.read(self._in, READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                self._writers_gone()
                return
            self._feed(data)
            if not self._reading:
                return  # holding: read no more

    def _feed(self, data: bytes) -> None:
        """Deliver the complete lines in data, holding them from the first one that must wait."""
        for line in self._lines.feed(data):
            self.stats['received'] += 1
            if self._held:
                self._held.append(line)
            elif not self._handle(line, final=False):
                self._hold(line)

    def _writers_gone(self) -> None:
        """The last writer closed ``in``: take its unfinished line, then open ``in`` again."""
        if self._lines.partial:
            self._feed(b'\n')
        fresh = fifo_file.open_pipe(self.in_path, os.O_RDONLY, self._ids['in'])
        reading = self._reading
        self._unwatch()
        os.close(self._in)
        self._in = fresh
        if reading:
            self._watch()
        self.stats['reopened'] += 1

    def _handle(self, line: bytes | None, final: bool) -> bool:
        """Decode a line and hand it on; False if it must wait (its recipient is full)."""
        if line is None:
            self._refuse(f'frame longer than {self.max_frame} bytes', None)
            return True
        outcome = hand_on(line, final=final, route=self.route, poison_pill=self._poison_pill,
                          on_envelope=self._on_envelope, refuse=self._refuse,
                          hold_timeout=self.hold_timeout, where=self.in_path)
        if outcome == DELIVERED:
            self.stats['delivered'] += 1
        return outcome != WAIT

    def _hold(self, line: bytes | None) -> None:
        """Keep a frame whose recipient is full, and every later one; read no more meanwhile."""
        self._held.append(line)
        self._held_since = time.monotonic()
        self._unwatch()
        assert self._loop is not None
        self._loop.call_later(HOLD_RETRY, self._offer_held)

    def _offer_held(self) -> None:
        """Offer the held frames again, in order; read on once all are taken (or answered)."""
        held = self._held
        while held and self._in >= 0:
            final = time.monotonic() - self._held_since >= self.hold_timeout
            if not self._handle(held[0], final):
                assert self._loop is not None
                self._loop.call_later(HOLD_RETRY, self._offer_held)
                return
            held.popleft()
            self._held_since = time.monotonic()
        if self._in >= 0 and not self._reading:
            self._watch()

    def _refuse(self, reason: str, original: dict[str, Any] | None) -> None:
        """Count and log a refused frame; answer it on ``out`` when someone reads it."""
        self.stats['refused'] += 1
        self._throttle.warning('refused', '%s: refused a frame: %s', self.in_path, reason)
        if isinstance(original, dict) and original.get('subject') == 'error':
            self.stats['errors_unanswered'] += 1  # never an error for an error
            return
        try:  # (never waits for room: this thread reads ``in``)
            self._write(encode_frame(codec.error_envelope(reason, original)), 0)
        except PolycephalyError as exc:
            self.stats['errors_lost'] += 1
            self._throttle.warning('lost', '%s: could not answer a refused frame: %s',
                                   self.in_path, exc)
        else:
            self.stats['errors_sent'] += 1

    def _close(self) -> None:
        """Answer what is left unread, remove the pipes and close them."""
        if self._in < 0:
            return
        self._unwatch()
        fifo_file.remove(self.in_path, self._ids.get('in'))  # first: no new writer finds it
        left = list(self._held)
        self._held.clear()
        try:
            while data := os.read(self._in, READ_SIZE):
                for line in self._lines.feed(data):
                    self.stats['received'] += 1
                    left.append(line)
        except BlockingIOError:
            pass
        if self._lines.partial:  # (a last line with no newline, or the end of an over-long one)
            for line in self._lines.feed(b'\n'):
                self.stats['received'] += 1
                left.append(line)
        os.close(self._in)
        self._in = -1
        if left:
            lost = self.stats['errors_lost']
            self.stats['left_at_close'] += len(left)
            for line in left:
                self._handle_at_close(line)
            _log.warning('%s: %d frame(s) were still unread at close: answered with errors (%d '
                         'could not be)', self.in_path, len(left), self.stats['errors_lost'] - lost)
        fifo_file.remove(self.out_path, self._ids.get('out'))  # (after the errors went out)
        with self._lock:
            self._close_out()
        _log.info('stopped reading %s', self.in_path)

    def _handle_at_close(self, line: bytes | None) -> None:
        """Answer a frame left unread at close with an error."""
        original = None if line is None else parse_or_none(line)
        self._refuse('not delivered: the route is closing', original)
