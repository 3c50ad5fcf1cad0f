"""The serial route's transport: one serial device and its framing, reopened when it goes away.

A :class:`SerialTransport` owns one device path (``/dev/ttyUSB0``, ``/dev/ttyACM0``, a
``/dev/serial/by-id/...`` link, a pty): it opens it with :class:`~.port.Port` (pyserial) and
talks to the one peer on the line (a microcontroller, another application's serial route) in
one of :mod:`.framing`'s framings. What it reads goes through :class:`~.inbound.Inbound`
(checked at the edge, handed to ``on_envelope(envelope)``, refused frames answered with error
frames, frames held while their recipient is full: the device is not read meanwhile, so with
flow control the peer is held back); what it writes through :class:`~.output.Output`
(``max_pending`` bytes at most wait for the device). Buffers are bounded: a partial frame by
``max_frame`` (an over-long one is skipped, never held whole), held frames by one read.

The device going away (a USB adapter unplugged: a read fails or hangs up, a write fails, or,
checked every ``check_every`` seconds, the path is gone or leads to another device) closes
it: what was unwritten or held is dropped (logged), :meth:`~SerialTransport.send` raises
RecipientUnavailable at once, and the device is reopened with doubling backoff from
``backoff[0]`` to ``backoff[1]`` seconds; one absent at start is waited for the same way.

Threading: given a loop, ``start(loop=...)``, the transport runs no thread of its own: the
device's descriptor and a wake-up eventfd are watched by that :class:`~polycephaly_ros.loop.Loop`
(a head's inbox: all of it then runs in the head's own thread, between envelopes), and the
loop's owner calls ``stop()``. ``start()`` without one runs a Loop in a thread of its own (an
exception escaping it is logged and given to ``on_failure``). ``on_envelope`` is called from
the loop's thread. ``send()`` may be called from any thread: it raises RecipientUnavailable
while the device is away and QueueFull when ``max_pending`` bytes already wait. ``stats`` and
``peer`` may be read from any thread.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Any, Callable

from ...errors import ConfigurationError, PolycephalyError, StateError
from ...loop import Loop
from ..framing import READ_SIZE
from .framing import make_framing
from .inbound import Inbound
from .output import Output
from .port import Port

#: Largest payload of a frame by default (bytes): a minute at 9600 baud, 5 s at 115200.
MAX_FRAME = 64 << 10
#: Bytes that may wait to be written to the device by default; more sends raise QueueFull.
MAX_PENDING = 256 << 10
#: Seconds between offers of a frame whose recipient's queue was full.
HOLD_RETRY = 0.002
_log = logging.getLogger(__name__)

SerialCallback = Callable[[dict[str, Any]], None]


class SerialTransport:
    """Carry JSON envelopes over one serial device (see the module documentation)."""

    _loop: Loop  # once started

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_envelope: SerialCallback,
        *,
        baudrate: int = 115200,
        rtscts: bool = False,
        xonxoff: bool = False,
        exclusive: bool = True,
        framing: str = 'json',
        route: str = 'serial',
        max_frame: int = MAX_FRAME,
        max_pending: int = MAX_PENDING,
        poison_pill: str | None = None,
        backoff: tuple[float, float] = (0.05, 2.0),
        hold_timeout: float = 2.0,
        check_every: float = 1.0,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        if framing == 'cobs' and xonxoff:
            raise ConfigurationError('framing cobs is binary and cannot share the line with '
                                     'XON/XOFF flow control: use rtscts, or framing json')
        for name, value in (('baudrate', baudrate), ('max_frame', max_frame),
                            ('max_pending', max_pending)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f'{name} must be a whole number >= 1, not {value!r}')
        self.path = os.fspath(path)
        self.route = route
        self.max_pending = max_pending
        self.backoff = backoff
        self.hold_timeout = hold_timeout
        self.check_every = check_every
        self._options = {'baudrate': baudrate, 'rtscts': rtscts, 'xonxoff': xonxoff,
                         'exclusive': exclusive}
        try:
            self._framing = make_framing(framing, max_frame)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self._on_failure = on_failure
        #: Counters: frames_in, frames_out, errors_out, too_long, cobs, checksum, refused,
        #: undelivered, unanswered, lost (the device went away), opened, open_failed.
        self.stats: collections.Counter[str] = collections.Counter()
        self._inbound = Inbound(self.path, self._framing, on_envelope,
                                lambda data: self._write(data, 'errors_out'), self.stats,
                                route=route, poison_pill=poison_pill, hold_timeout=hold_timeout)
        #: Set while the device is open; disconnected_event is its opposite.
        self.connected_event = threading.Event()
        self.disconnected_event = threading.Event()
        self.disconnected_event.set()
        self._output = Output(self.path, max_pending, self.stats)
        self._port: Port | None = None
        self._fd = -1  # the open device's, or -1
        self._reading = False  # the device is watched (not while frames are held)
        self._writing = False  # ... and for writability too
        self._delay = backoff[0]
        self._generation = 0  # counts opens and losses: a timer of an earlier one does nothing
        self._quiet = False  # a failed open was logged as a warning; the next ones at debug
        self._stopping = False
        self._started = False
        self._thread: threading.Thread | None = None
        self._loop_thread: int | None = None
        self._wake_lock = threading.Lock()
        self._wake_fd = -1

    # -- public API --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Tell whether the device is open now."""
        return self.connected_event.is_set()

    @property
    def peer(self) -> str | None:
        """Return the name the peer last sent a delivered frame as (error frames go to it)."""
        return self._inbound.peer

    def start(self, *, loop: Loop | None = None) -> None:
        """Open the device (or wait for it) in loop's thread, else in a thread of its own."""
        if self._started:
            raise StateError(f'the transport on {self.path} is already running')
        self._started = True
        self._loop = Loop() if loop is None else loop
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._loop.watch(self._wake_fd, self._on_wake)
        if loop is not None:
            self._loop_thread = threading.get_ident()
        self._open()  # here, so a device that is there is open when start() returns
        if loop is None:
            self._thread = threading.Thread(target=self._run, name=f'serial:{self.path}',
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Close the device and stop reopening it (and join the thread, if it has one)."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        if self._thread is None:
            self._close_all()
        elif self._thread is not threading.current_thread():
            self._wake()
            self._thread.join()

    def send(self, envelope: dict[str, Any]) -> None:
        """Write one complete envelope to the device; raise RecipientUnavailable or QueueFull."""
        self._write(self._framing.encode(envelope), 'frames_out')

    def __enter__(self) -> SerialTransport:
        """Start the transport in a thread of its own and return it."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the transport."""
        self.stop()

    # -- writing, any thread -----------------------------------------------------------
    def _write(self, data: bytes, counter: str) -> None:
        """Write data (any thread); have the loop write what waits, or close a broken device."""
        try:
            waiting = self._output.write(data, counter)
        except PolycephalyError:
            if self._output.broken is not None:
                self._wake()  # the loop closes the device and starts reopening it
            raise
        if waiting:
            if threading.get_ident() == self._loop_thread:
                self._update_interest()
            else:
                self._wake()

    def _wake(self) -> None:
        """Make the loop run _on_wake (any thread)."""
        with self._wake_lock:  # never write to a closed descriptor's number
            if self._wake_fd >= 0:
                os.eventfd_write(self._wake_fd, 1)

    # -- the loop's thread -------------------------------------------------------------
    def _run(self) -> None:
        """Run the transport's own loop until stop()."""
        self._loop_thread = threading.get_ident()
        try:
            while not self._stopping:
                self._loop.run_once()
        except Exception as exc:
            _log.exception('the transport of %s failed', self.path)
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._close_all()

    def _on_wake(self, fd: int) -> None:
        """Drain the wake-up eventfd; close a device a write found broken, or watch for writing."""
        try:
            os.eventfd_read(fd)
        except BlockingIOError:
            pass
        if self._output.broken is not None:
            self._lost(self._output.broken)
        elif self._output.pending:
            self._update_interest()

    def _open(self) -> None:
        """Open the device and watch it; on failure try again after the next backoff delay."""
        if self._stopping or self._port is not None:
            return
        try:
            port = Port(self.path, **self._options)
        except OSError as exc:  # (serial.SerialException is an OSError)
            self.stats['open_failed'] += 1
            (_log.debug if self._quiet else _log.warning)(
                'cannot open serial device %s (%s); retrying with backoff up to %g s',
                self.path, exc, self.backoff[1])
            self._quiet = True
            self._loop.call_later(self._delay, self._open)
            self._delay = min(self._delay * 2, self.backoff[1])
            return
        self._port, self._fd = port, port.fd
        self._output.attach(port.fd)
        self._generation += 1
        self._delay, self._quiet = self.backoff[0], False
        self._inbound.reset()
        self._start_reading()
        self.stats['opened'] += 1
        self.disconnected_event.clear()
        self.connected_event.set()
        _log.info('opened serial device %s (%s baud, framing %s)', self.path,
                  self._options['baudrate'], self._framing.name)
        if self.check_every > 0:
            self._later(self.check_every, self._check_path)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call callback() after delay unless the device was closed or reopened meanwhile."""
        generation = self._generation

        def call() -> None:
            """Call back unless the device was closed or reopened since."""
            if generation == self._generation and not self._stopping:
                callback()
        self._loop.call_later(delay, call)

    def _check_path(self) -> None:
        """Close the device if its path is gone or leads to another device now."""
        port = self._port
        if port is not None and not port.still_there():
            self._lost(f'{self.path} is gone, or is another device now')
        elif port is not None:
            self._later(self.check_every, self._check_path)

    def _lost(self, reason: str) -> None:
        """Close a device that went away, drop what waited for it, and start reopening it."""
        port = self._port
        if port is None:
            return
        unsent = len(self._output.detach())
        self._port, self._fd = None, -1
        self.connected_event.clear()
        self.disconnected_event.set()
        self._stop_reading(port.fd)
        port.close()
        self._generation += 1
        held = self._inbound.reset()
        self.stats['lost'] += 1
        _log.warning('serial device %s went away (%s); %d bytes unsent and %d frames undelivered '
                     'dropped; reopening', self.path, reason, unsent, held)
        self._delay = self.backoff[0]
        self._loop.call_later(self._delay, self._open)

    def _start_reading(self) -> None:
        """Watch the open device for reading (and for writing while output waits)."""
        self._loop.watch(self._fd, self._on_ready)
        self._reading, self._writing = True, False
        self._update_interest()

    def _stop_reading(self, fd: int) -> None:
        """Stop watching the device (to hold frames, or before closing it)."""
        if self._reading and not self._loop.closed:
            self._loop.unwatch(fd)
        self._reading = self._writing = False

    def _update_interest(self) -> None:
        """Watch the device for writability while output waits (and it is watched at all)."""
        want = bool(self._output.pending)
        if self._reading and self._fd >= 0 and want != self._writing:
            self._loop.set_interest(self._fd, True, want)
            self._writing = want

    def _flush(self) -> None:
        """Write what waits for the device, as far as it takes it (or close it if it is gone)."""
        self._output.flush()
        if self._output.broken is not None:
            self._lost(self._output.broken)
        else:
            self._update_interest()

    def _on_ready(self, fd: int) -> None:
        """Write what waits, then read once and deliver (or hold) the frames it completes."""
        if self._output.pending:
            self._flush()
            if self._fd < 0:
                return
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(f'reading failed: {exc}')
            return
        if not data:
            self._lost('the device hung up')
            return
        if self._inbound.feed(data):  # a recipient is full: read no more until it takes them
            self._stop_reading(fd)
            self._later(HOLD_RETRY, self._offer_held)

    def _offer_held(self) -> None:
        """Offer the held frames again; read the device again once all are taken."""
        still_held = self._inbound.offer_held()
        generation = self._generation
        self._flush()  # (the error frames of refused ones; the device may prove gone)
        if generation != self._generation or self._fd < 0:
            return
        if still_held:
            self._later(HOLD_RETRY, self._offer_held)
        else:
            self._start_reading()

    def _close_all(self) -> None:
        """Close the device (writing what waits, if it takes it at once) and the wake-up fd."""
        port, out = self._port, self._output.detach()
        self._port, self._fd = None, -1
        if port is not None:
            self._stop_reading(port.fd)
            try:
                if out:
                    os.write(port.fd, out)  # best effort: what was already accepted
            except OSError:
                pass
            port.close()
        self.connected_event.clear()
        self.disconnected_event.set()
        self._generation += 1
        loop = self._loop
        with self._wake_lock:
            if not loop.closed:
                loop.unwatch(self._wake_fd)
            os.close(self._wake_fd)
            self._wake_fd = -1
        if self._thread is not None:
            loop.close()
        _log.info('closed serial device %s', self.path)
