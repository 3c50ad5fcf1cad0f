"""Build, answer and check envelopes: plain dicts with email-like headers."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Mapping

from .errors import EnvelopeError

#: Headers every envelope has; anything else is an extra header.
CORE_HEADERS = frozenset(
    ('messageid', 'threadid', 'threadindex', 'sender', 'recipient', 'subject', 'body', 'time')
)
_PER_ENVELOPE = ('route', 'priority')
#: The largest thread index (a uint32 on every external route); a reply to it keeps it.
MAX_THREADINDEX = 2**32 - 1
#: Headers the framework sets or reads itself; they are never echoed by reply().
RESERVED_HEADERS = CORE_HEADERS | frozenset(_PER_ENVELOPE)
#: Subjects starting with this prefix are control messages of the framework.
CONTROL_PREFIX = 'polycephaly.'
#: Control subjects between a sub-head and the main head (never accepted from outside).
BORN = CONTROL_PREFIX + 'born'
EXITED = CONTROL_PREFIX + 'exited'
EBRAKE = CONTROL_PREFIX + 'ebrake'
BEGIN = CONTROL_PREFIX + 'begin'  # main to a ready sub-head: run birth() now
LIFECYCLE = CONTROL_PREFIX + 'lifecycle'  # a transition for a managed head; its new state
#: The route envelopes travel on between heads of one application.
INTERNAL = 'internal'
#: Header naming the route head that reaches an outside sender; reply() echoes it, so the
#: answer to an envelope that came in through a route goes back out the same way.
VIA = 'via'

_NAME = re.compile(r'[a-z][a-z0-9_]*')


_pool: list[str] = []


def _forget_pool() -> None:
    _pool.clear()  # a forked child must never repeat its parent's ids


os.register_at_fork(after_in_child=_forget_pool)


_VERSION_4 = bytes(b & 0x0F | 0x40 for b in range(256))  # byte 6: version 4
_RFC_4122 = bytes(b & 0x3F | 0x80 for b in range(256))  # byte 8: the RFC 4122 variant
#: Where each run of hex digits of a 16-byte id goes in its 36-character text form.
_LAYOUT = ((0, 0, 8), (8, 9, 4), (12, 14, 4), (16, 19, 4), (20, 24, 12))


def _refill(count: int = 256) -> None:
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_RFC_4122)
    digits = raw.hex().encode()
    # Lay all ids out at once, column by column (37 bytes each: the id and a space), rather
    # than formatting each one: about 4 times cheaper.
    text = bytearray(b'-' * (37 * count))
    for src, dst, width in _LAYOUT:
        for k in range(width):
            text[dst + k::37] = digits[src + k::32]
    text[36::37] = b' ' * count
    _pool.extend(text.decode().split())


def new_id() -> str:
    """Return a new random UUID4 as text (drawn from the OS 256 at a time); thread-safe."""
    while True:
        try:
            return _pool.pop()  # (atomic: another thread may take the last one first)
        except IndexError:
            _refill()


def normalize_name(name: str) -> str:
    """Return a head name in canonical (lower) case, or raise if it is not a valid name."""
    if not isinstance(name, str):
        raise EnvelopeError(f'a head name must be text, not {type(name).__name__}: {name!r}')
    low = name.lower()
    if not _NAME.fullmatch(low):
        raise EnvelopeError(
            f'invalid head name {name!r}: use a letter, then letters, digits or _ '
            '(it also names the head\'s ROS node)'
        )
    return low


def make(
    sender: str,
    recipient: str,
    subject: str = '',
    body: Any = None,
    headers: Mapping[str, Any] | None = None,
    *,
    threadid: str | None = None,
    threadindex: int = 1,
) -> dict[str, Any]:
    """Return a new envelope from sender to recipient; extra headers are copied in."""
    return _address({}, sender, recipient, subject, body, headers, threadid, threadindex)


def answer(
    original: Mapping[str, Any],
    sender: str,
    body: Any = None,
    subject: str = 'reply',
    headers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the reply to original: same thread, index + 1 (at most 2**32 - 1), extras echoed."""
    try:
        to, thread, index = original['sender'], original['threadid'], original['threadindex']
    except KeyError as missing:
        raise EnvelopeError(f'cannot reply to an envelope without a {missing} header') from None
    # A copy of the original keeps its extra headers: _address() sets every core header and
    # the other reserved ones are dropped (cheaper than picking the extras one by one).
    reply = dict(original)
    for header in _PER_ENVELOPE:
        reply.pop(header, None)
    return _address(reply, sender, to, subject, body, headers, thread,
                    min(int(index) + 1, MAX_THREADINDEX))


def _address(
    envelope: dict[str, Any],
    sender: str,
    recipient: str,
    subject: str,
    body: Any,
    headers: Mapping[str, Any] | None,
    threadid: str | None,
    threadindex: int,
) -> dict[str, Any]:
    """Set the caller's extra headers and every core header of envelope; return it.

    A new thread is started when threadid is None.
    """
    if not isinstance(recipient, str) or not recipient:
        raise EnvelopeError(f'recipient must be a non-empty head name, not {recipient!r}')
    if not isinstance(subject, str):
        raise EnvelopeError(f'subject must be text, not {type(subject).__name__}: {subject!r}')
    if headers:
        clash = CORE_HEADERS.intersection(headers)
        if clash:
            raise EnvelopeError(
                f'header(s) {", ".join(sorted(clash))} are set by polycephaly_ros, not by the caller'
            )
        envelope.update(headers)
    envelope['sender'] = sender
    envelope['recipient'] = recipient.lower()
    envelope['subject'] = subject
    envelope['body'] = body
    try:  # new_id(), inline: the pool's pop is atomic, an empty pool raises
        envelope['messageid'] = _pool.pop()
    except IndexError:
        envelope['messageid'] = new_id()
    if threadid is None:
        threadid = new_id()
    envelope['threadid'] = threadid
    envelope['threadindex'] = threadindex
    envelope['time'] = time.time()
    return envelope


def is_reply_to(candidate: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Tell whether candidate answers sent: from its recipient, same thread, later index."""
    return (
        candidate.get('threadid') == sent['threadid']
        and candidate.get('sender') == sent['recipient']
        and candidate.get('threadindex', 0) > sent['threadindex']
    )


def is_control(subject: Any, poison_pill: str | None = None) -> bool:
    """Tell whether subject is the poison pill or a framework control subject."""
    return isinstance(subject, str) and (
        subject == poison_pill or subject.startswith(CONTROL_PREFIX)
    )
