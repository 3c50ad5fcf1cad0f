"""Framing for routes over byte streams: newline-delimited JSON, one envelope a line, size-capped.

Each frame is one envelope encoded as a UTF-8 JSON object on a single line, ended by ``\\n``
(orjson never writes a raw newline inside a document). Blank lines are ignored and a trailing
``\\r`` is harmless (it stays in the line, where JSON takes it as white space), so
``socat - UNIX-CONNECT:path``, ``nc -U path`` and a plain :mod:`socket` client can all talk
to a route by hand.

A line longer than its limit is never buffered whole: :class:`LineSplitter` reports it once
(``None``) as soon as it grows past the limit and drops its bytes up to the next newline, so
a peer cannot make the reader hold more than about ``max_frame`` bytes plus one read. What
to answer for such a line is the transport's business (the Unix-socket server writes an
error frame; the client logs and drops it).

Transport-neutral: nothing here knows sockets or heads; any stream route (the Unix socket
today, a serial line tomorrow) reads with :class:`LineSplitter` and writes with
:func:`encode_frame`. Threading: a LineSplitter belongs to the one thread that reads its
stream; encode_frame() is a pure function.
"""

from __future__ import annotations

from typing import Any, Iterator

from .. import codec

#: Largest frame accepted by default (bytes, newline excluded).
MAX_FRAME = 1 << 20
#: Bytes a stream reader asks for at once.
READ_SIZE = 1 << 16


def encode_frame(envelope: dict[str, Any]) -> bytes:
    """Encode an envelope as one frame: compact JSON and a newline."""
    return codec.encode(envelope) + b'\n'


class LineSplitter:
    """Split a byte stream into lines of at most max_frame bytes."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.buf = bytearray()
        self.max_frame = max_frame
        self.skipping = False  # inside an over-long line, dropping bytes up to its newline

    @property
    def partial(self) -> bool:
        """Tell whether part of a line is buffered, or an over-long one is being dropped."""
        return self.skipping or bool(self.buf)

    def feed(self, data: bytes) -> Iterator[bytes | None]:
        """Yield each complete line in order, or None once for each over-long line."""
        self.buf += data
        while True:
            end = self.buf.find(b'\n')
            if end < 0:
                if not self.skipping and len(self.buf) > self.max_frame:
                    self.skipping = True
                    yield None
                if self.skipping:
                    self.buf.clear()
                return
            line = bytes(self.buf[:end])
            del self.buf[:end + 1]
            if self.skipping:
                self.skipping = False
            elif end > self.max_frame:
                yield None
            elif line.strip():
                yield line
