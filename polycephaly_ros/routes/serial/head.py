"""The serial route as a head: :class:`SerialRouteHead` owns a :class:`~.transport.SerialTransport`.

The route head's contract (inbound delivery, replies by ``via``, bounces, ``remote`` names) is
in :mod:`polycephaly_ros.routes.base`; the framings are in :mod:`.framing`. This is the only
module of the route that imports the head machinery.

Threading: by default the transport runs no thread of its own: the device's descriptor is
watched by this head's inbox (``runtime.inbox.watch``), so frames are read, checked and
delivered in this head's thread between envelopes (do not block in a subclass's life() or
filters). ``transport_thread=True`` gives it a thread of its own instead (one more thread hop
each way; frames keep flowing while this head is busy). Either way transmit() is safe from
any thread: heads of this process write to the device from their own thread.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ...errors import ConfigurationError
from ..base import RouteHead
from .framing import FRAMINGS
from .transport import MAX_FRAME, MAX_PENDING, SerialTransport


def _path(cls: type, kwargs: Mapping[str, Any]) -> str:
    """Return the device path in kwargs; raise ConfigurationError if there is none."""
    path = kwargs.get('path')
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigurationError(f'{cls.__name__} needs path=<serial device>, not {path!r}')
    return os.fspath(path)


class SerialRouteHead(RouteHead):
    """A head joining this application to the peer on a serial line (USB or TTL UART).

    kwargs (from add_process): ``path`` (required: ``/dev/ttyUSB0``, ``/dev/ttyACM0``, better
    a stable ``/dev/serial/by-id/...`` link), ``baudrate`` (115200), ``rtscts`` (False:
    hardware flow control), ``xonxoff`` (False: software flow control, json framing only),
    ``framing`` ('json': newline-delimited JSON; 'cobs': COBS frames with a CRC-32, for noisy
    links), ``exclusive`` (True: flock the device), ``max_frame`` (64 KiB of payload),
    ``max_pending`` (256 KiB waiting to be written; more sends bounce), ``backoff``
    ((0.05, 2.0): first and longest delay between reopen attempts, doubling), ``check_every``
    (1.0 s: how often the path is checked to still lead to the device; 0: never), ``remote``
    (names on the device that this application's heads may send to without ``via``),
    ``route`` ('serial'), ``transport_thread`` (False, see the module documentation).

    Every envelope whose ``via`` is this head (or whose recipient is in ``remote``) goes out
    on the line; frames from the device go to local heads with ``route='serial'`` and
    ``via=<this head>``. While the device is away, sends bounce at once (an ``'error'``
    reply, see polycephaly_ros.routes.base) and the transport keeps reopening it with backoff.
    """

    route = 'serial'
    transmit_from_any_thread = True  # SerialTransport.send() is thread-safe
    transport: SerialTransport  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check path, framing, flow control and backoff; return the remote names."""
        _path(cls, kwargs)
        framing = kwargs.get('framing', 'json')
        if framing not in FRAMINGS:
            raise ConfigurationError(f'{cls.__name__}: framing must be one of '
                                     f'{", ".join(FRAMINGS)}, not {framing!r}')
        for flag in ('rtscts', 'xonxoff', 'exclusive', 'transport_thread'):
            if not isinstance(kwargs.get(flag, False), bool):
                raise ConfigurationError(f'{cls.__name__}: {flag} is True or False, not '
                                         f'{kwargs[flag]!r}')
        backoff = kwargs.get('backoff', (0.05, 2.0))
        try:
            first, longest = (float(b) for b in backoff)
            ok = 0 < first <= longest
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigurationError(f'{cls.__name__}: backoff must be (first, longest) seconds, '
                                     f'0 < first <= longest, not {backoff!r}')
        cls._transport(kwargs, None)  # the transport checks the rest (numbers, cobs + xonxoff)
        return super().configure(kwargs)

    @classmethod
    def _transport(cls, kw: Mapping[str, Any], head: SerialRouteHead | None) -> SerialTransport:
        """Return a transport made from kwargs (not started), for head or just to check them."""
        return SerialTransport(
            _path(cls, kw), head._on_frame if head else lambda envelope: None,
            baudrate=kw.get('baudrate', 115200), rtscts=kw.get('rtscts', False),
            xonxoff=kw.get('xonxoff', False), exclusive=kw.get('exclusive', True),
            framing=kw.get('framing', 'json'), route=head.route if head else 'serial',
            max_frame=kw.get('max_frame', MAX_FRAME),
            max_pending=kw.get('max_pending', MAX_PENDING),
            poison_pill=head.runtime.poison_pill if head else None,
            backoff=tuple(float(b) for b in kw.get('backoff', (0.05, 2.0))),
            hold_timeout=head.runtime.send_timeout if head else 2.0,
            check_every=float(kw.get('check_every', 1.0)),
            on_failure=head.transport_failed if head else None)

    @property
    def connected(self) -> bool:
        """Tell whether the device is open now."""
        transport = getattr(self, 'transport', None)
        return transport is not None and transport.connected

    def open_transport(self) -> None:
        """Open the device (or wait for it) in this head's thread, or in its own thread."""
        self.transport = self._transport(self.kwargs, self)
        threaded = self.kwargs.get('transport_thread', False)
        self.transport.start(loop=None if threaded else self.runtime.inbox)

    def _on_frame(self, envelope: dict[str, Any]) -> None:
        """Deliver an envelope from the device at once, or raise saying why not."""
        # QueueFull holds the device's frames until there is room (never this thread waiting
        # for its own queue); another PolycephalyError becomes an error frame on the line.
        self.deliver(envelope, timeout=0)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Write an envelope to the device."""
        self.transport.send(envelope)

    def close_transport(self) -> None:
        """Close the device and stop reopening it."""
        transport = getattr(self, 'transport', None)
        if transport is not None:
            transport.stop()
