"""Serial lines for the tests: pseudo-terminal pairs, a socat link to unplug, a raw peer.

* :func:`pty_pair` -- ``os.openpty()``: the application opens the slave's path, the test (or
  bench) holds the master as the device's end.
* :class:`Link` -- two ptys joined by Debian's ``socat`` at fixed link paths (``dev``: the
  application's end, ``mcu``: the device's); :meth:`Link.unplug` kills socat (its links go,
  the ends hang up, like a USB adapter pulled out) and :meth:`Link.plug` starts it again at
  the same paths.
* :class:`Peer` -- a device written by hand on one end, in either framing, using the device
  simulator's own framing code (serial_device.py), not the route's.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
import tty
from pathlib import Path
from typing import Any

from serial_device import decode, encode

DEVICE = Path(__file__).with_name('serial_device.py')


def pty_pair() -> tuple[int, int, str]:
    """Return (master fd, slave fd, slave path) of a new raw pseudo-terminal pair."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


class Link:
    """Two ptys joined by socat at fixed paths: dir/dev (the application's end), dir/mcu."""

    def __init__(self, directory: Path) -> None:
        self.dev, self.mcu = str(directory / 'dev'), str(directory / 'mcu')
        self.proc: subprocess.Popen[bytes] | None = None
        self.plug()

    def plug(self, timeout: float = 10.0) -> None:
        """Start socat and wait for both link paths."""
        assert self.proc is None, 'already plugged'
        self.proc = subprocess.Popen(
            ['socat', f'pty,raw,echo=0,link={self.dev}', f'pty,raw,echo=0,link={self.mcu}'],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not (os.path.exists(self.dev) and os.path.exists(self.mcu)):
            assert time.monotonic() < deadline and self.proc.poll() is None, 'socat did not start'
            time.sleep(0.005)

    def unplug(self) -> None:
        """Stop socat: both ends hang up and the link paths go."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        """Unplug for good."""
        self.unplug()


class Peer:
    """One end of a line, written and read by hand as a device would, in either framing."""

    def __init__(self, fd: int, framing: str = 'json', name: str = 'mcu') -> None:
        self.fd, self.framing, self.name = fd, framing, name
        self.delimiter = b'\n' if framing == 'json' else b'\0'
        self.buf = b''
        os.set_blocking(fd, True)

    @classmethod
    def open(cls, path: str, framing: str = 'json', name: str = 'mcu') -> Peer:
        """Open the device's end at path."""
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        return cls(fd, framing, name)

    def write(self, data: bytes) -> None:
        """Write raw bytes to the line."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def send(self, **headers: Any) -> dict[str, Any]:
        """Send one envelope made of headers (sender: the peer's name unless given)."""
        envelope = {'sender': self.name, **headers}
        self.write(encode(envelope, self.framing))
        return envelope

    def frame(self, timeout: float = 10.0) -> bytes:
        """Return the next raw frame (without its delimiter), skipping empty ones."""
        deadline = time.monotonic() + timeout
        while True:
            frame, found, rest = self.buf.partition(self.delimiter)
            if found:
                self.buf = rest
                if frame:
                    return frame
                continue
            remaining = deadline - time.monotonic()
            assert remaining > 0 and select.select([self.fd], [], [], remaining)[0], \
                f'no frame within {timeout} s (have {self.buf[:200]!r})'
            data = os.read(self.fd, 65536)
            assert data, 'the line hung up'
            self.buf += data

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """Return the next envelope; fail on a frame that is not one (bad CRC included)."""
        frame = self.frame(timeout)
        envelope = decode(frame, self.framing)
        assert envelope is not None, f'a bad frame from the route: {frame!r}'
        return envelope

    def silent(self, timeout: float = 0.2) -> bool:
        """Tell whether nothing arrives within timeout seconds."""
        return not self.buf and not select.select([self.fd], [], [], timeout)[0]

    def close(self) -> None:
        """Close this end."""
        os.close(self.fd)


class Simulator:
    """The device simulator (serial_device.py) as a program on a path, in one framing."""

    def __init__(self, path: str, framing: str, name: str = 'mcu') -> None:
        import sys

        self.proc = subprocess.Popen([sys.executable, str(DEVICE), path, framing, name],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b'ready\n', 'the simulator did not start'

    def close(self) -> None:
        """Stop the program."""
        self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
