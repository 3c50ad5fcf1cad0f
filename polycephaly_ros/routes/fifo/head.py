"""The named pipe route as a head: :class:`FifoRouteHead` owns one FifoTransport.

The route head's contract (inbound delivery, replies by ``via``, bounces, ``remote`` names) is
in :mod:`polycephaly_ros.routes.base`; the pipes in :mod:`.fifo_file`, the transport in
:mod:`.transport`. This is the only module of the route that imports the head machinery.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ...errors import ConfigurationError
from ..base import RouteHead
from ..framing import MAX_FRAME
from . import fifo_file
from .transport import FifoTransport


class FifoRouteHead(RouteHead):
    """A head joining this application to one peer through a pair of named pipes.

    kwargs (from add_process): ``directory`` (required: where the pipes ``in`` and ``out``
    are made; made 0700 if missing), ``fifo_mode`` (0o600; 0o620 or 0o660 with ``group``),
    ``group`` (name or gid), ``max_frame`` (:data:`MAX_FRAME` bytes), ``send_timeout``
    (seconds a send waits for the reader of ``out`` to make room before it bounces; the
    bus's send timeout), ``transport_thread`` (False), ``remote``, ``route`` ('fifo').

    Lines written to ``in`` go to the head named in their ``recipient`` with
    ``route='fifo'`` and ``via=<this head>``; every outbound envelope (replies, error frames,
    envelopes to ``remote`` names) is written to ``out``. While nobody reads ``out``, sends
    bounce at once. Threading: by default ``in`` is watched by this head's inbox, so frames
    are read, decoded and delivered in this head's thread between envelopes (do not block in
    a subclass's life() or filters); ``transport_thread=True`` reads in a thread of its own.
    transmit() is safe from any thread.
    """

    route = 'fifo'
    transmit_from_any_thread = True  # FifoTransport.send() is thread-safe
    transport: FifoTransport  # once open_transport() ran

    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check the directory, mode and frame size; return the remote names."""
        directory = kwargs.get('directory')
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
            raise ConfigurationError(f'{cls.__name__} needs directory=<where the pipes go>, not '
                                     f'{directory!r}')
        fifo_file.check_mode(kwargs.get('fifo_mode', 0o600), kwargs.get('group'))
        if kwargs.get('group') is not None:
            fifo_file.group_id(kwargs['group'])
        max_frame = kwargs.get('max_frame', MAX_FRAME)
        if isinstance(max_frame, bool) or not isinstance(max_frame, int) or max_frame < 1:
            raise ConfigurationError(f'{cls.__name__}: max_frame must be a whole number of bytes '
                                     f'>= 1, not {max_frame!r}')
        return super().configure(kwargs)

    def open_transport(self) -> None:
        """Make the pipes and read ``in``, in this head's thread unless transport_thread."""
        kw = self.kwargs
        self.transport = FifoTransport(
            kw['directory'], self._on_envelope, route=self.route,
            mode=kw.get('fifo_mode', 0o600), group=kw.get('group'),
            max_frame=kw.get('max_frame', MAX_FRAME), poison_pill=self.runtime.poison_pill,
            send_timeout=kw.get('send_timeout', self.runtime.send_timeout),
            hold_timeout=self.runtime.send_timeout, on_failure=self.transport_failed)
        self.transport.start(loop=None if kw.get('transport_thread', False)
                             else self.runtime.inbox)

    def _on_envelope(self, envelope: dict[str, Any]) -> None:
        """Deliver an envelope to its recipient head at once, or raise saying why not."""
        # QueueFull at once makes the transport hold the frame and offer it again: this thread
        # never waits for its own queue.
        self.deliver(envelope, timeout=0)

    def transmit(self, envelope: dict[str, Any]) -> None:
        """Write an envelope to ``out``."""
        self.transport.send(envelope)

    def close_transport(self) -> None:
        """Stop reading and remove the pipes."""
        transport = getattr(self, 'transport', None)
        if transport is not None:
            transport.stop()
