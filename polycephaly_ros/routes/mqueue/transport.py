"""The POSIX message queue route's transport: JSON envelopes through our queue and a peer's.

One message is one envelope as compact UTF-8 JSON (:func:`polycephaly_ros.codec.encode`; the
queue keeps message boundaries, so no framing is needed). The transport reads *our* queue
(:mod:`.queues`: created with a tight mode, locked while served, removed on close) and sends
to the *peer's* queue named ``peer_queue``; replies, error messages and envelopes to remote
names all go there. Without a ``peer_queue`` the route only receives.

Security rules: messages are decoded by :func:`polycephaly_ros.codec.decode` (JSON only,
every header checked, control subjects and the poison pill refused, ``route`` set here);
the kernel bounds their size (``max_message_size``) and number (``max_messages``). A refused
message is answered with an error envelope on the peer's queue (never one whose own subject is
``error``: no error storms between two routes), or, with no peer queue or a full one, counted
in :attr:`MqueueTransport.stats` and logged, a few lines per period.

Nothing accepted is lost silently: a send to a full peer queue waits up to ``send_timeout``
for room, then raises :class:`QueueFull` (the route head turns it into a bounce); a message
whose recipient's queue is full stays in our queue (we read no further: back-pressure, and
peers' sends wait) and is offered again every :data:`HOLD_RETRY` seconds, answered with an
error after ``hold_timeout``; messages still unread at close are answered with errors. A
peer queue that was removed (its reader stopped) is opened again by name before the next send.

Threading: ``on_envelope(envelope)`` runs in the thread of the loop that watches our queue's
descriptor (Linux queue descriptors are pollable): the head's own loop when ``start(loop=...)``
is given one (no thread of our own), else a thread of ours. It may raise QueueFull ("not
now": see above) or another PolycephalyError (an error message to the peer). ``send()`` may
be called from any thread (one lock around the peer's queue). ``stop()`` is called by the
loop's owner thread (or any thread, with a thread of our own). If our thread fails, the
exception is logged and given to ``on_failure``.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any, Callable

import posix_ipc

from ... import codec
from ...errors import (EnvelopeError, PolycephalyError, QueueFull, RecipientUnavailable,
                       StateError)
from ...loop import Loop
from ...throttle import Throttle
from ..delivery import DELIVERED, WAIT, hand_on, parse_or_none
from . import queues

#: Seconds between offers of a message whose recipient's queue was full.
HOLD_RETRY = 0.002
#: Messages read per wake-up at most (then the loop's other work gets its turn).
BATCH = 64
_log = logging.getLogger(__name__)


class MqueueTransport:
    """Read our POSIX queue and send to a peer's (see the module documentation)."""

    def __init__(
        self,
        queue: str,
        on_envelope: Callable[[dict[str, Any]], None],
        *,
        peer_queue: str | None = None,
        route: str = 'mqueue',
        mode: int = 0o600,
        group: str | int | None = None,
        max_messages: int | None = None,
        max_message_size: int | None = None,
        poison_pill: str | None = None,
        send_timeout: float = 2.0,
        hold_timeout: float = 2.0,
        peer_uids: frozenset[int] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.queue = queues.check_name(queue)
        self.peer_queue = None if peer_queue is None else queues.check_name(peer_queue,
                                                                            'peer_queue')
        self.mode = queues.check_mode(mode, group)
        self.gid = None if group is None else queues.group_id(group)
        messages, size = queues.default_sizes()
        self.max_messages = max_messages or messages
        self.max_message_size = max_message_size or size
        self.route = route
        self.send_timeout = send_timeout
        self.hold_timeout = hold_timeout
        self.peer_uids = frozenset(peer_uids if peer_uids is not None else (os.getuid(), 0))
        #: What happened, by kind: received, delivered, refused, errors_sent, errors_lost,
        #: errors_unanswered, sent (error messages too), send_failed, left_at_close. The
        #: reading side's counts are kept by the loop's thread, the sending side's under a lock.
        self.stats: collections.Counter[str] = collections.Counter()
        self._on_envelope = on_envelope
        self._on_failure = on_failure
        self._poison_pill = poison_pill
        self._throttle = Throttle(_log)
        self._lock = threading.Lock()  # the peer's queue, the sends in flight
        self._peer: posix_ipc.MessageQueue | None = None
        self._retired: list[posix_ipc.MessageQueue] = []  # replaced, maybe still in use
        self._sending = 0
        self._mq: posix_ipc.MessageQueue | None = None
        self._loop: Loop | None = None
        self._thread: threading.Thread | None = None
        self._wake = -1
        self._reading = False
        self._stopping = False
        self._held: bytes | None = None  # a message whose recipient was full
        self._held_since = 0.0

    # -- public API --------------------------------------------------------------------------
    def start(self, *, loop: Loop | None = None) -> None:
        """Create our queue and read it from loop (its owner's thread), or from a thread of ours."""
        if self._mq is not None:
            raise StateError(f'the route on {self.queue} is already running')
        self._mq = queues.create(self.queue, self.mode, self.gid, self.max_messages,
                                 self.max_message_size)
        self._mq.block = False
        self._stopping = False
        self._loop = Loop() if loop is None else loop
        self._watch()
        if loop is None:
            self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._loop.watch(self._wake, lambda fd: None)  # (wakes the loop to see _stopping)
            self._thread = threading.Thread(target=self._run, name=f'mqueue:{self.queue}',
                                            daemon=True)
            self._thread.start()
        _log.info('reading the queue %s (mode %#o, %d messages of %d bytes at most)%s',
                  self.queue, self.mode, self.max_messages, self.max_message_size,
                  f', sending to {self.peer_queue}' if self.peer_queue else '')

    def send(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the peer's queue, waiting send_timeout at most for room."""
        try:
            self._send(codec.encode(envelope), self.send_timeout)
        except PolycephalyError:
            with self._lock:
                self.stats['send_failed'] += 1
            raise

    def stop(self) -> None:
        """Stop reading, remove our queue (answering what is left in it) and close both."""
        if self._mq is None:
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

    def __enter__(self) -> MqueueTransport:
        """Start with a thread of its own and return it."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop."""
        self.stop()

    # -- sending, any thread -------------------------------------------------------------------
    def _send(self, data: bytes, timeout: float) -> None:
        """Put one message on the peer's queue within timeout seconds, or raise why not."""
        with self._lock:  # (held only to find the queue: sends wait for room in parallel)
            mq = self._peer_queue()
            self._sending += 1
        sent = False
        try:
            if len(data) > mq.max_message_size:
                raise EnvelopeError(f'the envelope is {len(data)} bytes of JSON; the queue '
                                    f'{self.peer_queue} takes {mq.max_message_size} at most')
            for _ in range(3):
                try:
                    mq.send(data, timeout=timeout)
                    sent = True
                    break
                except posix_ipc.SignalError:
                    continue  # (interrupted: try again)
                except posix_ipc.BusyError:
                    raise QueueFull(f'the queue {self.peer_queue} stayed full ({mq.max_messages} '
                                    f'messages) for {timeout:g} s') from None
            else:
                raise RecipientUnavailable(f'sending to {self.peer_queue} kept being '
                                           'interrupted')
        finally:
            with self._lock:
                self._sending -= 1
                self.stats['sent'] += sent
                if not self._sending:
                    self._close_retired()

    def _peer_queue(self) -> posix_ipc.MessageQueue:
        """Return the peer's queue, opened again if its name now names another (under the lock)."""
        if self.peer_queue is None:
            raise RecipientUnavailable(f'the route on {self.queue} has no peer_queue to send to')
        mq = self._peer
        if mq is not None and queues.unlinked(mq):  # its reader stopped: a new one may be there
            self._retired.append(mq)  # (closed once no send uses it)
            mq = self._peer = None
        if mq is None:
            mq = self._peer = queues.open_peer(self.peer_queue, self.peer_uids)
        return mq

    def _close_retired(self) -> None:
        """Close the peer queues replaced meanwhile (under the lock, no send in flight)."""
        for mq in self._retired:
            mq.close()
        self._retired.clear()

    # -- reading, the loop's thread -------------------------------------------------------------
    def _watch(self) -> None:
        """Read our queue whenever it is readable."""
        assert self._loop is not None and self._mq is not None
        self._loop.watch(self._mq.mqd, self._on_readable)
        self._reading = True

    def _unwatch(self) -> None:
        """Stop reading our queue (until _watch())."""
        if self._reading and self._loop is not None and self._mq is not None:
            self._loop.unwatch(self._mq.mqd)
        self._reading = False

    def _run(self) -> None:
        """Run our loop until stop() (our thread)."""
        assert self._loop is not None
        try:
            while not self._stopping:
                self._loop.run_once()
        except Exception as exc:
            _log.exception('the route on %s failed', self.queue)
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._close()

    def _on_readable(self, _fd: int) -> None:
        """Take the messages waiting in our queue (a batch at most) and deliver them."""
        mq = self._mq
        assert mq is not None
        for _ in range(min(mq.current_messages, BATCH)):  # (cheaper than a receive that fails)
            try:
                data, _priority = mq.receive()
            except posix_ipc.BusyError:
                return
            self.stats['received'] += 1
            if not self._handle(data, final=False):
                self._hold(data)
                return

    def _handle(self, data: bytes, final: bool) -> bool:
        """Decode a message and hand it on; False if it must wait (its recipient is full)."""
        outcome = hand_on(data, final=final, route=self.route, poison_pill=self._poison_pill,
                          on_envelope=self._on_envelope, refuse=self._refuse,
                          hold_timeout=self.hold_timeout, where=self.queue)
        if outcome == DELIVERED:
            self.stats['delivered'] += 1
        return outcome != WAIT

    def _hold(self, data: bytes) -> None:
        """Keep a message whose recipient is full; read no more until it is taken."""
        self._held, self._held_since = data, time.monotonic()
        self._unwatch()
        assert self._loop is not None
        self._loop.call_later(HOLD_RETRY, self._offer_held)

    def _offer_held(self) -> None:
        """Offer the held message again; read on once it is taken (or answered)."""
        data = self._held
        if data is None or self._mq is None:
            return  # closed meanwhile
        final = time.monotonic() - self._held_since >= self.hold_timeout
        if not self._handle(data, final):
            assert self._loop is not None
            self._loop.call_later(HOLD_RETRY, self._offer_held)
            return
        self._held = None
        self._watch()

    def _refuse(self, reason: str, original: dict[str, Any] | None) -> None:
        """Count and log a refused message; answer it on the peer's queue when there is one."""
        self.stats['refused'] += 1
        self._throttle.warning('refused', '%s: refused a message: %s', self.queue, reason)
        if isinstance(original, dict) and original.get('subject') == 'error':
            self.stats['errors_unanswered'] += 1  # never an error for an error
            return
        try:  # (never waits: this thread reads our queue; a full peer queue loses the error)
            self._send(codec.encode(codec.error_envelope(reason, original)), 0)
        except PolycephalyError as exc:
            self.stats['errors_lost'] += 1
            self._throttle.warning('lost', '%s: could not answer a refused message: %s',
                                   self.queue, exc)
        else:
            self.stats['errors_sent'] += 1

    def _close(self) -> None:
        """Remove our queue, answer what is left in it, and close both queues."""
        mq = self._mq
        if mq is None:
            return
        self._unwatch()
        queues.remove(mq, self.queue)  # first: no new sender finds it
        left = [] if self._held is None else [self._held]  # (counted as received)
        self._held = None
        while True:
            try:
                left.append(mq.receive()[0])
            except posix_ipc.BusyError:
                break
            self.stats['received'] += 1
        self._mq = None
        mq.close()
        if left:
            lost = self.stats['errors_lost']
            self.stats['left_at_close'] += len(left)
            for data in left:
                self._refuse('not delivered: the route is closing', parse_or_none(data))
            _log.warning('%s: %d message(s) were still unread at close: answered with errors '
                         '(%d could not be)', self.queue, len(left),
                         self.stats['errors_lost'] - lost)
        with self._lock:
            if self._peer is not None:
                self._retired.append(self._peer)
                self._peer = None
            if not self._sending:
                self._close_retired()
        _log.info('stopped reading the queue %s', self.queue)
