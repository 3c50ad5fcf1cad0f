"""The serial route: envelopes as JSON frames over a serial line (USB CDC/FTDI/CH340, TTL UART).

The package, one concept a module:

* :mod:`.framing` -- the two framings: newline-delimited JSON (by hand with picocom or echo),
  and COBS frames with a CRC-32 ended by 0x00 (binary-safe, checked, for noisy links).
* :mod:`.port` -- :class:`Port`, one device opened with pyserial (baud rate, flow control,
  an exclusive lock) and told apart from another device at the same path.
* :mod:`.transport` -- :class:`SerialTransport`: reads, checks and answers frames, bounded
  buffers, error frames, the device reopened with backoff when it goes away.
* :mod:`.head` -- :class:`SerialRouteHead`, the route head (:mod:`polycephaly_ros.routes.base`)
  that owns a transport; the only module here that imports the head machinery.

A serial line is point to point: everything the application sends over the route goes to the
one peer on the line, whatever its recipient, and the peer is known by the ``sender`` of its
frames.
"""

from __future__ import annotations

from .framing import FRAMINGS, cobs_decode, cobs_encode, encode_cobs_frame
from .head import SerialRouteHead
from .port import Port
from .transport import HOLD_RETRY, MAX_FRAME, MAX_PENDING, SerialTransport

__all__ = ['FRAMINGS', 'HOLD_RETRY', 'MAX_FRAME', 'MAX_PENDING', 'Port', 'SerialRouteHead',
           'SerialTransport', 'cobs_decode', 'cobs_encode', 'encode_cobs_frame']
