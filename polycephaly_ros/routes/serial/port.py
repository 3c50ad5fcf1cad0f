"""One open serial device, as pyserial opens it: 8N1 at a baud rate, flow control, a lock.

pyserial does the opening and the termios work (raw mode: no echo, no line editing, no CR/LF
translation, no signals; the baud rate; ``rtscts`` hardware and ``xonxoff`` software flow
control; ``exclusive``: an advisory ``flock``, so that two programs that lock, pyserial's or
picocom, do not share a device by mistake). Its descriptor stays non-blocking and the
transport reads and writes it directly (``os.read``/``os.write``: pyserial's own read() and
write() add a select() per call and nothing a loop needs).

A read with nothing to read raises BlockingIOError (VMIN is set to 1: with pyserial's 0 it
would return ``b''``, which could not be told from a hang-up). Which device it is: the device
number (``st_rdev``) of the open descriptor, so that :meth:`Port.still_there` can tell an
unplugged device (the path is gone) or another device now at the same path (a USB adapter
unplugged and another plugged in) from the one opened.

Threading: a Port is opened, checked and closed by the transport's loop thread; its ``fd``
may be written from any thread under the transport's lock.
"""

from __future__ import annotations

import os
import termios

import serial


class Port:
    """A serial device opened with pyserial, non-blocking, read and written by descriptor."""

    def __init__(self, path: str, *, baudrate: int = 115200, rtscts: bool = False,
                 xonxoff: bool = False, exclusive: bool = True) -> None:
        """Open path (raise OSError, e.g. FileNotFoundError or serial.SerialException)."""
        self.path = path
        self.device = serial.Serial(path, baudrate, rtscts=rtscts, xonxoff=xonxoff,
                                    timeout=0, write_timeout=0, exclusive=exclusive or None)
        self.fd: int = self.device.fd
        os.set_blocking(self.fd, False)
        # pyserial leaves VMIN 0, where a read with nothing to read returns b'' like a hang-up;
        # with VMIN 1 it raises BlockingIOError, and b'' means the device hung up.
        try:
            attributes = termios.tcgetattr(self.fd)
            attributes[6][termios.VMIN], attributes[6][termios.VTIME] = 1, 0
            termios.tcsetattr(self.fd, termios.TCSANOW, attributes)
            self.rdev = os.fstat(self.fd).st_rdev
        except (termios.error, OSError) as exc:  # (gone again already)
            self.close()
            raise OSError(f'cannot set up {path}: {exc}') from None

    def still_there(self) -> bool:
        """Tell whether the path still leads to the device this Port opened."""
        try:
            return os.stat(self.path).st_rdev == self.rdev
        except OSError:
            return False

    def close(self) -> None:
        """Close the device (closing twice is harmless)."""
        try:
            self.device.close()
        except (OSError, serial.SerialException):
            pass  # a device that is gone may fail to flush or unlock: it is closed all the same
