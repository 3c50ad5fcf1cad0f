"""A named pipe peer in a few lines of Python: writes lines to the route's ``in``, reads ``out``."""

from __future__ import annotations

import itertools
import os
import select
import time
from pathlib import Path
from typing import Any

import orjson

_NAMES = itertools.count(1)


class FifoPeer:
    """The other end of a FifoRouteHead's pipes: ``out`` opened first, so replies can come."""

    def __init__(self, directory: str | Path, timeout: float = 10.0, write: bool = True) -> None:
        self.out = os.open(os.path.join(directory, 'out'), os.O_RDONLY | os.O_NONBLOCK)
        self.inp = os.open(os.path.join(directory, 'in'), os.O_WRONLY) if write else -1
        self.timeout = timeout
        self.buf = b''
        self.name = f'fifo{next(_NAMES)}'  # the sender of its envelopes unless one is given

    def send_bytes(self, data: bytes) -> None:
        """Write bytes to ``in``, all of them."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.inp, view):]

    def send_line(self, data: bytes) -> None:
        """Write bytes and a newline."""
        self.send_bytes(data + b'\n')

    def send(self, **headers: Any) -> None:
        """Write one envelope made of the given headers (sender: its own name unless given)."""
        self.send_line(orjson.dumps({'sender': self.name, **headers}))

    def recv_line(self, timeout: float | None = None) -> bytes:
        """Return the next line from ``out`` (fails after the timeout)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b'\n' not in self.buf:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f'nothing on out within the timeout (have {self.buf[:200]!r})'
            ready, _, _ = select.select([self.out], [], [], remaining)
            chunk = os.read(self.out, 1 << 16) if ready else b''
            if ready and not chunk:
                time.sleep(0.01)  # no writer at the moment: wait for one
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """Return the next envelope from ``out``."""
        return orjson.loads(self.recv_line(timeout))

    def close(self) -> None:
        """Close both ends."""
        os.close(self.out)
        if self.inp >= 0:
            os.close(self.inp)
