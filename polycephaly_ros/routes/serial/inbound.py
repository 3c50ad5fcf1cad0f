"""Frames from a serial device to the application: checked, answered when refused, held when full.

An :class:`Inbound` turns the bytes read from the device into envelopes with its framing
(:mod:`.framing`), checks each at the edge (:func:`polycephaly_ros.codec.decode`: JSON only,
control subjects and the poison pill refused, ``route`` set here) and hands it to
``on_envelope``. A frame that is over ``max_frame``, not valid COBS, fails its CRC-32, is no
valid envelope, or that ``on_envelope`` refuses (a PolycephalyError) is counted, logged (a few
lines per period) and answered with one error frame (``codec.error_envelope``: on its sender's
thread when the frame can be read, even one that failed its checksum, whose headers may be
damaged; addressed to its sender, else to the name the peer last sent a delivered frame as),
then dropped. A frame whose subject is ``error`` is never answered, so two routes back to
back cannot feed each other errors.

``on_envelope`` raising QueueFull means "not now": that frame and every later one of the same
read are held (the caller stops reading the device meanwhile, so at most one read's frames
wait), offered again by :meth:`Inbound.offer_held`, and after ``hold_timeout`` seconds the
first is answered with an error frame instead.

Threading: one thread, the transport's loop, calls everything here (``on_envelope`` and
``answer`` included); ``stats`` and ``peer`` may be read from any thread.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Callable, Mapping

from ... import codec
from ...errors import EnvelopeError, PolycephalyError, QueueFull
from ...throttle import Throttle
from .framing import Bad, Frame, Framing

_log = logging.getLogger(__name__)


def _headers(payload: bytes | None) -> dict[str, Any] | None:
    """Return the JSON object in payload, unchecked, or None (for an error frame's headers)."""
    try:
        return codec.parse(payload) if payload is not None else None
    except EnvelopeError:
        return None


class Inbound:
    """The reading side of one serial device (see the module documentation)."""

    def __init__(self, path: str, framing: Framing,
                 on_envelope: Callable[[dict[str, Any]], None],
                 answer: Callable[[bytes], None], stats: collections.Counter[str], *,
                 route: str, poison_pill: str | None, hold_timeout: float) -> None:
        self.path = path
        self.framing = framing
        self.route = route
        self.hold_timeout = hold_timeout
        self.stats = stats
        #: The name the peer last sent a delivered frame as (error frames go to it).
        self.peer: str | None = None
        self._on_envelope = on_envelope
        self._answer = answer  # writes an error frame (raises a PolycephalyError if it cannot)
        self._poison_pill = poison_pill
        self._held: collections.deque[Frame] = collections.deque()
        self._held_since = 0.0
        self._throttle = Throttle(_log)

    def feed(self, data: bytes) -> bool:
        """Deliver the frames data completes, in order; tell whether some are held now."""
        held = self._held
        for frame in self.framing.feed(data):
            if held:
                held.append(frame)
            elif not self._deliver(frame, final=False):
                held.append(frame)
                self._held_since = time.monotonic()
        return bool(held)

    def offer_held(self) -> bool:
        """Offer the held frames again, in order; tell whether some are still held."""
        held = self._held
        while held:
            final = time.monotonic() - self._held_since >= self.hold_timeout
            if not self._deliver(held[0], final):
                return True
            held.popleft()
            self._held_since = time.monotonic()
        return False

    def reset(self) -> int:
        """Forget a partial frame and the held ones (the device went away); return how many."""
        held = len(self._held)
        self._held.clear()
        self.framing.reset()
        return held

    def _deliver(self, frame: Frame, final: bool) -> bool:
        """Check a frame and hand it to on_envelope; False if it must wait (and not final)."""
        if isinstance(frame, Bad):
            self.stats[frame.kind] += 1
            self._reject(frame.reason, _headers(frame.payload))
            return True
        try:
            envelope = codec.decode(frame, route=self.route, poison_pill=self._poison_pill)
        except EnvelopeError as exc:
            self.stats['refused'] += 1
            self._reject(str(exc), _headers(frame))
            return True
        stats = self.stats
        stats['frames_in'] += 1  # (before: its answer may come back before on_envelope returns)
        try:
            self._on_envelope(envelope)
        except QueueFull as exc:
            stats['frames_in'] -= 1
            if not final:
                return False
            reason = f'not delivered: {exc} (for {self.hold_timeout:g} s)'
        except PolycephalyError as exc:
            stats['frames_in'] -= 1
            reason = f'not delivered: {exc}'
        except Exception:
            stats['frames_in'] -= 1
            _log.exception('%s: on_envelope failed', self.path)
            reason = 'not delivered: internal error'
        else:
            self.peer = envelope['sender']
            return True
        stats['undelivered'] += 1
        self._reject(reason, envelope)
        return True

    def _reject(self, reason: str, original: Mapping[str, Any] | None) -> None:
        """Log a refused frame and answer it with an error frame, unless it is an error itself."""
        self._throttle.warning('rejected', '%s: rejected a frame: %s', self.path, reason)
        if original is not None and original.get('subject') == 'error':
            self.stats['unanswered'] += 1  # never answer an error with an error
            return
        error = codec.error_envelope(reason, original)
        if not error['recipient'] and self.peer:
            error['recipient'] = self.peer
        try:
            self._answer(self.framing.encode(error))
        except PolycephalyError as exc:
            self._throttle.warning('error lost', '%s: could not send an error frame: %s',
                                   self.path, exc)
