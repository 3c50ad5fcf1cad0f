"""Convert envelopes to ROS messages and back, and any ROS message to a plain dict and back.

Envelope ⇄ ``polycephaly_ros/msg/Envelope`` (the typed inbox topic)
    The core headers travel in typed fields; the body and every extra header travel as JSON
    text (orjson) in ``body_json`` and ``headers_json``. The mapping is lossless for JSON-able
    values (tuples arrive as lists, as on every JSON route), with these conventions for the
    fields a plain ROS node may leave at their defaults:

    ===============  ==========================================================================
    field            default value means
    ===============  ==========================================================================
    ``sender``       ``""``: no sender (nothing can be answered)
    ``recipient``    ``""``: missing, refused
    ``messageid``    ``""``: a new id is given on arrival
    ``threadid``     ``""``: a new thread is started on arrival
    ``threadindex``  ``0``: 1 (a new thread)
    ``time``         ``0.0``: the time of arrival
    ``priority``     ``0``: no priority header (0 is the default anyway)
    ``route``        overwritten with ``"ros"`` on arrival
    ``body_json``    ``""``: body ``None``
    ``headers_json`` ``""`` or ``"{}"``: no extra headers
    ===============  ==========================================================================

    A ``priority`` that does not fit ``int32`` (e.g. ``0.5``) travels in ``headers_json`` and
    wins over the typed field on arrival; any other core header inside ``headers_json`` is
    refused. A body or header orjson cannot encode raises :class:`NotSerializable` at send.

Envelope ⇄ ``std_msgs/msg/String`` (the ``inbox_json`` topic)
    ``data`` is one envelope as a JSON object, exactly what :mod:`polycephaly_ros.codec`
    encodes and decodes for every JSON route.

Any message ⇄ dict (the generic topic bridges)
    :func:`message_to_dict` and :func:`dict_to_message` walk a message class's ``SLOT_TYPES``
    recursively (what ``rosidl_runtime_py`` does; that package is not available here).
    Numeric arrays and sequences become lists, ``byte``/``octet`` values become integers,
    nested messages become dicts. :func:`import_message_type` loads ``"pkg/msg/Type"``.

Everything arriving is checked by :func:`polycephaly_ros.codec.check`, so the poison pill and
control subjects (``polycephaly.*``) are refused and every core header is type-checked.
"""

from __future__ import annotations

import importlib
import math
import re
from typing import Any, Mapping

import orjson

from .. import codec
from ..envelope import CORE_HEADERS
from ..errors import ConfigurationError, EnvelopeError, NotSerializable

#: The route name of envelopes that arrive from the ROS graph.
ROUTE = 'ros'
#: Headers that have a typed field of their own in the Envelope message.
TYPED_HEADERS = frozenset(('messageid', 'threadid', 'threadindex', 'sender', 'recipient',
                           'subject', 'time', 'priority', 'route', 'body'))
_UINT32_MAX = 2**32 - 1
_INT32 = (-2**31, 2**31 - 1)


_ENVELOPE: type | None = None


def envelope_type() -> type:
    """Return the generated polycephaly_ros.msg.Envelope class (imported on first use)."""
    global _ENVELOPE
    if _ENVELOPE is None:  # imported on first use: the package imports without a build
        from polycephaly_ros.msg import Envelope

        _ENVELOPE = Envelope
    return _ENVELOPE


# -- envelope -> message ------------------------------------------------------------------
def _text(envelope: Mapping[str, Any], header: str) -> str:
    value = envelope.get(header)
    if value is None:
        return ''
    if not isinstance(value, str):
        raise EnvelopeError(f'header {header!r} must be a string to travel on ROS, not '
                            f'{type(value).__name__}: {value!r}')
    return value


def _json(envelope: Mapping[str, Any], header: str, value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        if header == 'headers':
            raise NotSerializable(codec._culprit(dict(value), exc)) from None
        raise NotSerializable(f'header {header!r} cannot be sent as JSON: {exc}') from None


def to_message(envelope: Mapping[str, Any]) -> Any:
    """Return envelope as a polycephaly_ros/msg/Envelope, or raise EnvelopeError/NotSerializable."""
    index = envelope.get('threadindex', 1)
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= _UINT32_MAX:
        raise EnvelopeError(f"header 'threadindex' must be an integer in 1..{_UINT32_MAX}, "
                            f'not {index!r}')
    stamp = envelope.get('time', 0.0)
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        raise EnvelopeError(f"header 'time' must be a number, not {stamp!r}")
    extra = {k: v for k, v in envelope.items() if k not in TYPED_HEADERS}
    priority = envelope.get('priority', 0)
    if not (isinstance(priority, int) and not isinstance(priority, bool)
            and _INT32[0] <= priority <= _INT32[1]):
        extra['priority'] = priority  # e.g. 0.5: keep it exact in the JSON headers
        priority = 0
    # One constructor call: each field set once (a generated setter per field is not free).
    return envelope_type()(
        messageid=_text(envelope, 'messageid'), threadid=_text(envelope, 'threadid'),
        sender=_text(envelope, 'sender'), recipient=_text(envelope, 'recipient'),
        subject=_text(envelope, 'subject'), route=_text(envelope, 'route'),
        threadindex=index, time=float(stamp), priority=priority,
        body_json=_json(envelope, 'body', envelope.get('body')),
        headers_json=_json(envelope, 'headers', extra) if extra else '{}')


# -- message -> envelope ------------------------------------------------------------------
def raw_fields(msg: Any) -> dict[str, Any]:
    """Return what a typed Envelope says about its sender and thread, unchecked (for errors)."""
    return {'sender': msg.sender, 'threadid': msg.threadid,
            'threadindex': msg.threadindex or 1, 'subject': msg.subject}


def from_message(msg: Any, *, route: str = ROUTE, poison_pill: str | None = None) -> dict[str, Any]:
    """Return the checked envelope carried by a polycephaly_ros/msg/Envelope.

    Raises EnvelopeError naming the problem (bad JSON in body_json or headers_json, missing
    recipient, refused subject, ...).
    """
    obj: dict[str, Any] = {}
    if msg.headers_json:
        try:
            extra = orjson.loads(msg.headers_json)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f'headers_json: malformed JSON: {exc}') from None
        if not isinstance(extra, dict):
            raise EnvelopeError(f'headers_json must be a JSON object, not {codec._kind(extra)}')
        clash = sorted((CORE_HEADERS | {'route'}).intersection(extra))
        if clash:
            raise EnvelopeError(f'headers_json must not carry the typed header(s) '
                                f'{", ".join(clash)}')
        obj.update(extra)
    if msg.body_json:
        try:
            obj['body'] = orjson.loads(msg.body_json)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f'body_json: malformed JSON: {exc}') from None
    if msg.recipient:
        obj['recipient'] = msg.recipient
    obj['subject'] = msg.subject
    for header in ('sender', 'messageid', 'threadid'):
        value = getattr(msg, header)
        if value:
            obj[header] = value
    if msg.threadindex:
        obj['threadindex'] = msg.threadindex
    if msg.time:
        obj['time'] = msg.time
    if msg.priority and 'priority' not in obj:
        obj['priority'] = msg.priority
    obj.pop('via', None)  # a reply to the graph goes back over the graph, never a local route
    return codec.check(obj, route=route, poison_pill=poison_pill)


# -- envelope <-> std_msgs/String JSON ---------------------------------------------------------
def to_json_string(envelope: Mapping[str, Any]) -> Any:
    """Return envelope as a std_msgs/msg/String holding one JSON object."""
    from std_msgs.msg import String

    return String(data=codec.encode(dict(envelope)).decode())


def from_json_text(data: str, *, route: str = ROUTE, poison_pill: str | None = None) -> dict:
    """Return the checked envelope in the JSON text of an inbox_json String message."""
    obj = codec.parse(data)
    obj.pop('via', None)
    return codec.check(obj, route=route, poison_pill=poison_pill)


# -- any message <-> dict ---------------------------------------------------------------------
_TYPE_NAME = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)/(msg|srv|action)/([A-Za-z][A-Za-z0-9_]*)')


def import_message_type(name: str) -> type:
    """Return the message class for "pkg/msg/Type"; raise ConfigurationError saying what is missing."""
    match = _TYPE_NAME.fullmatch(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise ConfigurationError(f'message type must look like "pkg/msg/Type", not {name!r}')
    package, kind, type_name = match.groups()
    try:
        module = importlib.import_module(f'{package}.{kind}')
    except ImportError as exc:
        raise ConfigurationError(
            f'message type {name!r}: the Python package {package!r} is not installed or not '
            f'built ({exc}); install its wheel (e.g. ros-{package.replace("_", "-")}) or '
            f'source its workspace') from None
    cls = getattr(module, type_name, None)
    if cls is None or not hasattr(cls, 'get_fields_and_field_types'):
        raise ConfigurationError(f'message type {name!r}: package {package!r} has no message '
                          f'{type_name!r}')
    return cls


def type_name(cls: type) -> str:
    """Return "pkg/msg/Type" for a message class."""
    module = cls.__module__.split('.')
    return f'{module[0]}/{module[1]}/{cls.__name__}'


def message_to_dict(msg: Any) -> dict[str, Any]:
    """Return a message as a dict of plain JSON-able values (nested messages become dicts)."""
    cls = type(msg)
    return {name: _to_plain(getattr(msg, name), slot)
            for name, slot in zip(cls.get_fields_and_field_types(), cls.SLOT_TYPES)}


def _to_plain(value: Any, slot: Any) -> Any:
    from rosidl_parser.definition import AbstractNestedType, NamespacedType

    if isinstance(slot, NamespacedType):
        return message_to_dict(value)
    if isinstance(slot, AbstractNestedType):
        inner = slot.value_type
        if isinstance(inner, NamespacedType):
            return [message_to_dict(v) for v in value]
        if isinstance(value, (bytes, bytearray)):
            return list(value)
        return [_scalar(v) for v in (value.tolist() if hasattr(value, 'tolist') else value)]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):  # a byte/octet field holds one byte
        return value[0] if len(value) == 1 else list(value)
    if hasattr(value, 'item'):  # a numpy scalar
        return value.item()
    return value


_INT_RANGES = {
    'int8': (-2**7, 2**7 - 1), 'uint8': (0, 2**8 - 1), 'int16': (-2**15, 2**15 - 1),
    'uint16': (0, 2**16 - 1), 'int32': (-2**31, 2**31 - 1), 'uint32': (0, 2**32 - 1),
    'int64': (-2**63, 2**63 - 1), 'uint64': (0, 2**64 - 1),
}
_FLOATS = ('float', 'double', 'long double')


def dict_to_message(data: Mapping[str, Any], cls: type, *, where: str = '') -> Any:
    """Return a cls message filled from data; raise EnvelopeError naming any bad or unknown field."""
    label = where or type_name(cls)
    if not isinstance(data, Mapping):
        raise EnvelopeError(f'{label}: expected an object with the fields of {type_name(cls)}, '
                         f'not {type(data).__name__}: {data!r}')
    fields = cls.get_fields_and_field_types()
    slots = dict(zip(fields, cls.SLOT_TYPES))
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise EnvelopeError(f'{label}: unknown field(s) {", ".join(map(repr, unknown))} for '
                         f'{type_name(cls)} (its fields: {", ".join(fields) or "none"})')
    msg = cls()
    for name, value in data.items():
        path = f'{label}.{name}' if where else f'{type_name(cls)}.{name}'
        setattr(msg, name, _from_plain(value, slots[name], path))
    return msg


def _nested_class(slot: Any) -> type:
    module = importlib.import_module('.'.join(slot.namespaces))
    return getattr(module, slot.name)


def _from_plain(value: Any, slot: Any, path: str) -> Any:
    from rosidl_parser.definition import (AbstractGenericString, AbstractNestedType, Array,
                                          BoundedSequence, NamespacedType)

    if isinstance(slot, NamespacedType):
        return dict_to_message(value, _nested_class(slot), where=path)
    if isinstance(slot, AbstractNestedType):
        if isinstance(value, (str, Mapping)) or not hasattr(value, '__iter__'):
            raise EnvelopeError(f'{path}: expected a list, not {type(value).__name__}: {value!r}')
        items = list(value)
        if isinstance(slot, Array) and len(items) != slot.size:
            raise EnvelopeError(f'{path}: expected exactly {slot.size} items, not {len(items)}')
        if isinstance(slot, BoundedSequence) and len(items) > slot.maximum_size:
            raise EnvelopeError(f'{path}: at most {slot.maximum_size} items, not {len(items)}')
        return [_from_plain(v, slot.value_type, f'{path}[{i}]') for i, v in enumerate(items)]
    if isinstance(slot, AbstractGenericString):
        if not isinstance(value, str):
            raise EnvelopeError(f'{path}: expected a string, not {type(value).__name__}: {value!r}')
        limit = getattr(slot, 'maximum_size', None)
        if isinstance(limit, int) and len(value) > limit:
            raise EnvelopeError(f'{path}: at most {limit} characters, not {len(value)}')
        return value
    kind = getattr(slot, 'typename', None)
    if kind == 'boolean':
        if not isinstance(value, bool):
            raise EnvelopeError(f'{path}: expected true or false, not {value!r}')
        return value
    if kind in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EnvelopeError(f'{path}: expected a number, not {type(value).__name__}: {value!r}')
        value = float(value)
        if kind == 'float' and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise EnvelopeError(f'{path}: {value!r} does not fit a float32')
        return value
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise EnvelopeError(f'{path}: expected an integer in {low}..{high} ({kind}), '
                             f'not {value!r}')
        return value
    if kind in ('octet', 'byte'):
        if isinstance(value, (bytes, bytearray)) and len(value) == 1:
            return bytes(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise EnvelopeError(f'{path}: expected a byte (0..255), not {value!r}')
        return bytes([value])
    if kind == 'char':
        if isinstance(value, str) and len(value) == 1:
            return value
        raise EnvelopeError(f'{path}: expected one character, not {value!r}')
    raise EnvelopeError(f'{path}: unsupported field type {slot!r}')
