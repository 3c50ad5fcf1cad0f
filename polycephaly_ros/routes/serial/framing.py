"""The serial route's two framings: newline-delimited JSON, and COBS with a CRC-32 for noisy links.

``json`` (the default) is :mod:`polycephaly_ros.routes.framing`'s: one compact UTF-8 JSON
object a line, ended by ``\\n`` (a trailing ``\\r`` is harmless, blank lines are skipped), so
``picocom``, ``screen`` or ``echo '{...}' > /dev/ttyUSB0`` talk to a route by hand.

``cobs`` is binary-safe and checked, for links that drop or flip bits (long TTL wires, radio
modems): the payload is the same compact JSON; its CRC-32 (IEEE 802.3, the one of zlib,
Ethernet and PNG: polynomial 0x04C11DB7 reflected, initial value and final XOR 0xFFFFFFFF) is
appended as 4 bytes, least significant first; the whole is COBS-encoded (Consistent Overhead
Byte Stuffing: no 0x00 left, one code byte per run of at most 254 bytes) and ended by one 0x00.
A frame that is not valid COBS, is shorter than its CRC or fails it is reported, never
delivered; a lost or flipped delimiter merges two frames into one that fails its CRC, so the
reader is back in step at the next 0x00. Empty frames (0x00 0x00) are skipped: a sender may
start with a 0x00 to flush line noise.

Both reject a frame whose payload would be over ``max_frame`` bytes without buffering it whole
(:class:`~polycephaly_ros.routes.framing.LineSplitter`'s rule: reported once, skipped to the
next delimiter). Pure functions and per-stream objects: a framing's ``feed`` belongs to the one
thread reading its stream; ``encode`` is a pure function.
"""

from __future__ import annotations

import zlib
from typing import Any, Iterator, NamedTuple, Protocol

from ... import codec
from ..framing import MAX_FRAME, LineSplitter, encode_frame

#: The names of the framings, as the ``framing`` option of a serial route takes them.
FRAMINGS = ('json', 'cobs')
_CRC = 4  # bytes of CRC-32 after the payload


class Bad(NamedTuple):
    """A frame that cannot be delivered: why, and its payload when one could be read."""

    reason: str
    #: The counter it is counted under: 'too_long', 'cobs' or 'checksum'.
    kind: str
    #: The payload of a frame that failed its checksum (unchecked: headers may be damaged).
    payload: bytes | None = None


Frame = bytes | Bad


class Framing(Protocol):
    """What the serial transport needs of a framing."""

    name: str
    max_frame: int

    def encode(self, envelope: dict[str, Any]) -> bytes:
        """Return one envelope as a frame on the wire."""

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Yield the payload of each complete frame in data, or a Bad one, in order."""

    def reset(self) -> None:
        """Forget a partial frame (the stream was cut)."""


def make_framing(name: str, max_frame: int = MAX_FRAME) -> Framing:
    """Return a new framing for one stream by its name, 'json' or 'cobs'."""
    if name == 'json':
        return JsonLines(max_frame)
    if name == 'cobs':
        return CobsCrc(max_frame)
    raise ValueError(f'framing must be one of {", ".join(FRAMINGS)}, not {name!r}')


class JsonLines:
    """Newline-delimited JSON: one envelope a line."""

    name = 'json'

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._lines = LineSplitter(max_frame)

    def encode(self, envelope: dict[str, Any]) -> bytes:
        """Return compact JSON and a newline."""
        return encode_frame(envelope)

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Yield each complete line, or Bad for one over max_frame."""
        for line in self._lines.feed(data):
            yield line if line is not None else Bad(
                f'frame longer than {self.max_frame} bytes', 'too_long')

    def reset(self) -> None:
        """Forget a partial line."""
        self._lines = LineSplitter(self.max_frame)


def cobs_encode(data: bytes) -> bytes:
    """Return data COBS-encoded: no 0x00 in it, one code byte before each run."""
    out = bytearray()
    runs = data.split(b'\0')
    last = len(runs) - 1
    for n, run in enumerate(runs):
        size, start = len(run), 0
        while size - start >= 254:
            out.append(255)
            out += run[start:start + 254]
            start += 254
        # A last run that ends with a whole block of 254 needs no code byte after it (its 0xFF
        # says "no 0x00 follows"); a 0x00 after such a block still takes one.
        if not (n == last and size and start == size):
            out.append(size - start + 1)
            out += run[start:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Return the bytes COBS-encoded in data (no delimiter); raise ValueError if it is not COBS."""
    out = bytearray()
    i, end = 0, len(data)
    while i < end:
        code = data[i]
        stop = i + code
        if code == 0 or stop > end:
            raise ValueError('not COBS: ' + ('a 0x00 inside the frame' if code == 0 else
                                             f'a run of {code - 1} bytes where {end - i - 1} are'))
        out += data[i + 1:stop]
        i = stop
        if code != 255 and i < end:
            out.append(0)
    return bytes(out)


def cobs_limit(max_frame: int) -> int:
    """Return the longest COBS encoding (no delimiter) of a payload of max_frame bytes and a CRC."""
    size = max_frame + _CRC
    return size + size // 254 + 1


def encode_cobs_frame(envelope: dict[str, Any]) -> bytes:
    """Return an envelope as a COBS frame: JSON, CRC-32 (little-endian), COBS, then 0x00."""
    payload = codec.encode(envelope)
    return cobs_encode(payload + zlib.crc32(payload).to_bytes(_CRC, 'little')) + b'\0'


class CobsCrc:
    """COBS frames ended by 0x00, each a JSON payload and its CRC-32."""

    name = 'cobs'

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.limit = cobs_limit(max_frame)
        self._buf = bytearray()
        self._skipping = False  # inside an over-long frame, dropping bytes up to its 0x00

    def encode(self, envelope: dict[str, Any]) -> bytes:
        """Return the frame of one envelope."""
        return encode_cobs_frame(envelope)

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Yield each complete frame's checked payload, or Bad."""
        buf = self._buf
        start, scan = 0, len(buf)  # (what was buffered before holds no 0x00)
        buf += data
        while True:
            end = buf.find(b'\0', scan)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            elif end - start > self.limit:
                yield self._too_long()
            elif end > start:
                yield self._check(bytes(buf[start:end]), self.max_frame)
            start = scan = end + 1
        del buf[:start]
        if len(buf) > self.limit:
            if not self._skipping:
                self._skipping = True
                yield self._too_long()
            buf.clear()

    def _too_long(self) -> Bad:
        """Return the report of an over-long frame."""
        return Bad(f'frame longer than {self.max_frame} bytes', 'too_long')

    @staticmethod
    def _check(frame: bytes, max_frame: int) -> Frame:
        """Return the payload of one frame (delimiter removed), or Bad saying what is wrong."""
        try:
            data = cobs_decode(frame)
        except ValueError as exc:
            return Bad(f'bad frame: {exc}', 'cobs')
        if len(data) <= _CRC:
            return Bad(f'bad frame: {len(data)} bytes, no room for a payload and its CRC-32',
                       'cobs')
        payload, crc = data[:-_CRC], int.from_bytes(data[-_CRC:], 'little')
        if len(payload) > max_frame:
            return Bad(f'frame longer than {max_frame} bytes', 'too_long')
        if zlib.crc32(payload) != crc:
            return Bad(f'checksum mismatch (CRC-32 {zlib.crc32(payload):08x}, frame says '
                       f'{crc:08x}): the frame was damaged on the line', 'checksum', payload)
        return payload

    def reset(self) -> None:
        """Forget a partial frame."""
        self._buf.clear()
        self._skipping = False
