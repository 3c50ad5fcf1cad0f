"""Turn envelopes into JSON bytes and back with orjson, checking every header on the way in.

JSON is what external routes (Unix socket, MQTT, ...) speak; pickle never leaves the
application's private bus. Security rules for everything arriving from outside:

* Only JSON is parsed: nothing received is ever unpickled or evaluated.
* Control subjects (``polycephaly.*``) and the application's poison pill are refused, so a
  peer can never stop, restart or impersonate the framework's own messages.
* Every core header is type- and range-checked, once, here: ``sender`` is required and
  name-shaped (a reply must be able to reach it); ``threadindex`` is an integer in
  1..2³²−1 (a ``uint32``, so its reply's index fits too); ``priority`` a finite number within
  ``int32``; ``time`` a finite number; ids non-empty text of at most :data:`MAX_ID`
  characters. ``route`` is always overwritten with the route the envelope really came in on.
  Sizes are bounded by each route (a frame, a message).

Encoding is strict: whatever orjson cannot serialise (a set, bytes, an arbitrary object, an
int beyond 64 bits, a dict with non-text keys) raises :class:`NotSerializable` naming the
header; nothing is stringified behind the caller's back. Tuples become JSON arrays, so they
arrive as lists. orjson's own native types (datetime, UUID, dataclass, enum) are written
as orjson documents them, and NaN and infinities become ``null``.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Mapping

import orjson

from .envelope import CONTROL_PREFIX, MAX_THREADINDEX, is_control, new_id
from .errors import EnvelopeError, NotSerializable

#: The sender of the error frames written back to external clients.
ERROR_SENDER = 'polycephaly'
#: The largest thread index (the ROS message's field is a uint32).
UINT32_MAX = MAX_THREADINDEX
#: The range of a priority (the ROS message's field is an int32).
INT32 = (-2**31, 2**31 - 1)
#: The longest message or thread id accepted from outside, in characters.
MAX_ID = 128
#: What a sender must look like: a head name, in any case.
_SENDER = re.compile(r'[A-Za-z][A-Za-z0-9_]*')

_JSON_KIND = {
    str: 'string', int: 'integer', float: 'number', bool: 'boolean',
    type(None): 'null', list: 'array', dict: 'object',
}


def _kind(value: Any) -> str:
    return _JSON_KIND.get(type(value), type(value).__name__)


def encode(envelope: dict[str, Any]) -> bytes:
    """Return the envelope as compact UTF-8 JSON (no newline), or raise NotSerializable."""
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError as exc:
        raise NotSerializable(_culprit(envelope, exc)) from None


def _culprit(envelope: Any, exc: Exception) -> str:
    """Return which header of envelope orjson refused, and why."""
    if not isinstance(envelope, dict):
        return f'an envelope must be a dict, not {type(envelope).__name__}'
    for header, value in envelope.items():
        if not isinstance(header, str):
            return f'header names must be text, not {type(header).__name__}: {header!r}'
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError as bad:
            return f'header {header!r} cannot be sent as JSON: {bad}'
    return f'the envelope cannot be sent as JSON: {exc}'


def parse(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Return the JSON object in data, unchecked, or raise EnvelopeError."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f'malformed JSON: {exc}') from None
    if not isinstance(obj, dict):
        raise EnvelopeError(f'an envelope must be a JSON object, not {_kind(obj)}')
    return obj


def _require(envelope: Mapping[str, Any], header: str, kinds: tuple[type, ...], what: str) -> None:
    """Raise EnvelopeError unless the header holds one of kinds (never a boolean)."""
    value = envelope[header]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise EnvelopeError(f'header {header!r} must be {what}, not {_kind(value)}')


_NUMBERS = (int, float)


def check(obj: Mapping[str, Any], *, route: str, poison_pill: str | None = None) -> dict[str, Any]:
    """Return a checked copy of a parsed envelope, defaults filled in and route set."""
    return _checked(dict(obj), route, poison_pill)


def _checked(envelope: dict[str, Any], route: str, poison_pill: str | None) -> dict[str, Any]:
    """Check envelope in place (see check())."""
    # The common case, every header present and well formed, in a few comparisons; anything
    # else is checked again below, header by header, to say exactly what is wrong.
    try:
        recipient, subject = envelope['recipient'], envelope['subject']
        index, sender = envelope['threadindex'], envelope['sender']
        messageid, threadid, sent = envelope['messageid'], envelope['threadid'], envelope['time']
    except KeyError:
        pass  # a header left out: below
    else:
        priority = envelope.get('priority', 0)
        if (type(recipient) is str and recipient and type(subject) is str
                and not subject.startswith(CONTROL_PREFIX) and subject != poison_pill
                and type(index) is int and 1 <= index <= UINT32_MAX
                and type(sender) is str and _SENDER.fullmatch(sender)
                and type(messageid) is str and 0 < len(messageid) <= MAX_ID
                and type(threadid) is str and 0 < len(threadid) <= MAX_ID
                and type(sent) in _NUMBERS and math.isfinite(sent)
                and type(priority) in _NUMBERS and INT32[0] <= priority <= INT32[1]):
            envelope['recipient'] = recipient.lower()
            if 'body' not in envelope:
                envelope['body'] = None
            envelope['route'] = route
            return envelope
    for header in ('recipient', 'subject'):
        if header not in envelope:
            raise EnvelopeError(f'missing header {header!r}')
    _require(envelope, 'recipient', (str,), 'a non-empty string')
    if not envelope['recipient']:
        raise EnvelopeError("header 'recipient' must be a non-empty string, not an empty string")
    _require(envelope, 'subject', (str,), 'a string')
    if is_control(envelope['subject'], poison_pill):
        raise EnvelopeError('refused: control subject')
    if 'sender' not in envelope:
        raise EnvelopeError("missing header 'sender' (who the answer goes to)")
    _require(envelope, 'sender', (str,), 'a name')
    if not _SENDER.fullmatch(envelope['sender']):
        raise EnvelopeError(f"header 'sender' must be a name (a letter, then letters, digits or "
                            f"_), not {_shown(envelope['sender'])}")
    for header in ('messageid', 'threadid'):
        if header in envelope:
            _require(envelope, header, (str,), 'a string')
            if not 0 < len(envelope[header]) <= MAX_ID:
                raise EnvelopeError(f'header {header!r} must be 1..{MAX_ID} characters, not '
                                    f'{len(envelope[header])}')
    if 'threadindex' in envelope:
        _require(envelope, 'threadindex', (int,), f'an integer in 1..{UINT32_MAX}')
        if not 1 <= envelope['threadindex'] <= UINT32_MAX:
            raise EnvelopeError(f"header 'threadindex' must be an integer in 1..{UINT32_MAX}, "
                                f"not {envelope['threadindex']}")
    for header in ('time', 'priority'):
        if header in envelope:
            _require(envelope, header, (int, float), 'a number')
            if not math.isfinite(envelope[header]):
                raise EnvelopeError(f'header {header!r} must be a finite number, not '
                                    f'{envelope[header]}')
    if 'priority' in envelope and not INT32[0] <= envelope['priority'] <= INT32[1]:
        raise EnvelopeError(f"header 'priority' must be within {INT32[0]}..{INT32[1]}, not "
                            f"{envelope['priority']}")
    return _complete(envelope, route)


def _shown(value: str, limit: int = 40) -> str:
    """Return a value for an error message, cut short."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + '...'


def _complete(envelope: dict[str, Any], route: str) -> dict[str, Any]:
    """Fill in the core headers a peer may leave out, and set the route."""
    envelope['recipient'] = envelope['recipient'].lower()
    if 'body' not in envelope:
        envelope['body'] = None
    if 'messageid' not in envelope:
        envelope['messageid'] = new_id()
    if 'threadid' not in envelope:
        envelope['threadid'] = new_id()
    if 'threadindex' not in envelope:
        envelope['threadindex'] = 1
    if 'time' not in envelope:
        envelope['time'] = time.time()
    envelope['route'] = route
    return envelope


def decode(
    data: bytes | bytearray | memoryview | str, *, route: str, poison_pill: str | None = None
) -> dict[str, Any]:
    """Return the envelope in one JSON frame received on route, or raise EnvelopeError."""
    return _checked(parse(data), route, poison_pill)  # parse() made it: no copy


def error_envelope(reason: str, original: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the error frame answering original (possibly malformed, or None) with reason.

    It can always be encoded: headers of original that are out of range are not echoed.
    """
    original = original or {}
    sender, thread, index = (original.get(h) for h in ('sender', 'threadid', 'threadindex'))
    known_index = type(index) is int and 1 <= index <= UINT32_MAX
    return {
        'subject': 'error',
        'body': {'error': reason},
        'sender': ERROR_SENDER,
        'recipient': sender if isinstance(sender, str) and _SENDER.fullmatch(sender) else '',
        'threadid': (thread if isinstance(thread, str) and 0 < len(thread) <= MAX_ID
                     else new_id()),
        'threadindex': min(index + 1, UINT32_MAX) if known_index else 1,
        'messageid': new_id(),
        'time': time.time(),
    }
