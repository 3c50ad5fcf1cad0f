"""Hand one inbound frame to the application: decode it, deliver it, or say why not.

Shared by the transports that read frames in a loop of their own and hold a frame while its
recipient's queue is full (the message queue and the named pipe). :func:`hand_on` decodes one
frame (:func:`polycephaly_ros.codec.decode`: every header checked, ``route`` set), gives it
to ``on_envelope`` and answers whatever goes wrong through ``refuse(reason, original)``:

* a frame that does not decode: refused with the reason (``original`` is its JSON object when
  it parses, for the error's headers, else None);
* ``QueueFull``: :data:`WAIT` (the caller holds the frame and offers it again) unless
  ``final``, when it is refused, saying how long it was held;
* any other PolycephalyError: refused; an exception that is a bug: logged with its traceback
  and refused as an internal error, so the peer still gets an answer.

Pure: no state, no thread of its own; it runs in the caller's thread.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .. import codec
from ..errors import EnvelopeError, PolycephalyError, QueueFull

_log = logging.getLogger(__name__)

#: What hand_on() did with a frame.
DELIVERED, REFUSED, WAIT = 'delivered', 'refused', 'wait'

Refuse = Callable[[str, 'dict[str, Any] | None'], None]


def parse_or_none(data: bytes) -> dict[str, Any] | None:
    """Return the JSON object in a refused frame, for its error's headers, or None."""
    try:
        return codec.parse(data)
    except EnvelopeError:
        return None


def hand_on(data: bytes, *, final: bool, route: str, poison_pill: str | None,
            on_envelope: Callable[[dict[str, Any]], None], refuse: Refuse,
            hold_timeout: float, where: str) -> str:
    """Decode data and give it to on_envelope; return DELIVERED, REFUSED or WAIT."""
    try:
        envelope = codec.decode(data, route=route, poison_pill=poison_pill)
    except EnvelopeError as exc:
        refuse(str(exc), parse_or_none(data))
        return REFUSED
    try:
        on_envelope(envelope)
    except QueueFull as exc:
        if not final:
            return WAIT
        refuse(f'not delivered: {exc} (for {hold_timeout:g} s)', envelope)
    except PolycephalyError as exc:
        refuse(f'not delivered: {exc}', envelope)
    except Exception:
        _log.exception('%s: on_envelope failed', where)
        refuse('not delivered: internal error', envelope)
    else:
        return DELIVERED
    return REFUSED
