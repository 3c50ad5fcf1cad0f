"""The route head: a head that owns one external transport and carries envelopes over it.

A *route* joins an application to the outside (a Unix socket, MQTT, D-Bus, USB ...). Its
transport does the framing, connections and reconnects and speaks JSON through
:mod:`polycephaly_ros.codec`; a :class:`RouteHead` wires that transport to the heads:

Inbound (outside -> heads)
    The transport decodes a frame (``codec.decode`` sets ``route`` to the route's name and
    refuses control subjects and the poison pill) and calls :meth:`RouteHead.deliver` from
    its own thread. The envelope gets ``via=<route head's name>`` and is posted to its
    recipient, which must be a head of this application. Because ``reply()`` echoes extra
    headers, the answer carries the same ``via`` and the bus hands it back to this route
    head. An unknown recipient, a full queue or a head that is not running raises; the
    transport answers the peer with an error frame (``codec.error_envelope``) and logs a
    warning, or, for a full queue, may hold the frame and offer it again (the Unix-socket
    server does, up to the bus's send timeout). Nothing is dropped silently.

Outbound (heads -> outside)
    Every envelope in the route head's inbox whose ``recipient`` is not the route head itself
    is sent out by :meth:`RouteHead.transmit` (a filter on recipient that runs before, and
    instead of, the head's other filters). What the route head sends itself, and, when its
    transport sends from any thread (:attr:`RouteHead.transmit_from_any_thread`), what the
    other heads of its process send, skips its inbox: the bus hands it to the route at once,
    in the sender's thread (one thread hop fewer for a reply). ``via`` and ``route`` are
    per-hop headers and are stripped; message id, thread id and thread index travel unchanged, so
    ``wait_for_reply`` works across the route. If the transport cannot send (peer gone, not
    connected, not reading), the failure is logged as an error and, when the sender is a
    head of this application, it gets a *bounce*: a reply to its envelope from the
    recipient's name with subject ``'error'``, body ``{'error': reason}`` and header
    ``bounced_by=<route head>``, so a ``wait_for_reply`` on it returns at once instead of
    timing out.

Envelopes addressed to the route head itself go through its ordinary filters (remember
that a filter only sees the route it names: ``route='uds'`` or ``route=None`` for any).

Reaching outside names
    A head reaches a name behind a route either explicitly, ``send('status', ..., via='uds')``
    (``via`` names a route head), or by listing the names on the route head:
    ``add_process(UnixSocketClientHead, name='uds', path=..., remote=['status'])`` lets every
    head write ``send('status', ...)``. The list is read by ``Application.run()`` (through
    :meth:`RouteHead.configure`) before any head starts, so thread and process heads alike
    know it; a remote name equal to a head's name, or listed by two route heads, is a
    configuration error. Names neither local nor listed still go to the ROS bridge.

Threading: transport callbacks (and so :meth:`deliver`) run in the transport's thread and use
only the bus, which is thread-safe; every filter runs in the route head's own thread, and
so does :meth:`transmit` unless ``transmit_from_any_thread`` is set. A transport may also run
without a thread of its own, its descriptor watched by the head's event loop
(``self.runtime.inbox.watch(fd, callback)``): then its callbacks run in the head's thread
between envelopes, one thread hop fewer each way (UnixSocketServerHead does this by
default). The transport is opened before ``birth()`` and closed after ``death()`` (by the
head's runtime, with its place in the bus's routing table), so subclasses override
``birth``/``life``/``death`` freely.

A transport whose own thread fails (an exception escaped it) calls
:meth:`RouteHead.transport_failed` from that thread: the route head then fails in its own
thread with that exception, so the failure is logged, shows in ``status()`` and the head's
restart policy applies, instead of a head that says "running" with no transport behind it.

Writing a route: subclass :class:`RouteHead`, set :attr:`route`, and implement
:meth:`open_transport` (start it; its inbound callback calls :meth:`deliver`),
:meth:`transmit` (send one envelope or raise a :class:`PolycephalyError`) and
:meth:`close_transport`; optionally :meth:`configure` to check kwargs early.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .. import envelope as env
from ..errors import ConfigurationError, EnvelopeError, PolycephalyError, UnknownRecipient
from ..filters import FilterSet
from ..head import Process

if TYPE_CHECKING:
    from ..runtime import HeadRuntime

#: The subject of error frames and bounces.
ERROR_SUBJECT = 'error'
#: Header a bounce carries: the route head that could not send the envelope.
BOUNCED_BY = 'bounced_by'
#: Per-hop headers that never leave the application.
_HOP_HEADERS = (env.VIA, 'route')


class _RouteFilters(FilterSet):
    """The route head's filters, behind an outbound filter on recipient that runs first."""

    def __init__(self, head: RouteHead, filters: Iterable = ()) -> None:
        super().__init__()
        self._filters.extend(filters)
        self._head = head

    def dispatch(self, envelope: dict) -> int:
        if envelope.get('recipient') != self._head.name:
            self._head._outbound(envelope)
            return 1
        return super().dispatch(envelope)


class RouteHead(Process):
    """A head that owns one external transport; see the module documentation."""

    #: The route name inbound envelopes carry (``envelope['route']``); a ``route`` kwarg
    #: given to add_process overrides it.
    route: str = 'external'
    #: Whether transmit() may be called from any thread of this process (the transport's
    #: send is thread-safe). Then the heads of this process send out over the route in their
    #: own thread; otherwise their envelopes wait in the route head's inbox for its thread.
    transmit_from_any_thread: bool = False
    _thread_id: int | None = None  # the head's own thread, once it runs
    _failure_fd = -1  # an eventfd the head's loop watches, while it runs
    _failure_lock = threading.Lock()  # (class-wide: taken only when a transport fails or ends)
    _transport_failure: BaseException | None = None

    def __init__(self) -> None:
        super().__init__()
        self._filters = _RouteFilters(self)

    # -- to override -----------------------------------------------------------------
    @classmethod
    def configure(cls, kwargs: Mapping[str, Any]) -> list[str]:
        """Check the head's kwargs (raise ConfigurationError); return the remote names it reaches.

        Called by Application.run() before any head starts. The default reads ``remote``:
        a name or a list of names.
        """
        remote = kwargs.get('remote') or ()
        if isinstance(remote, str):
            remote = [remote]
        try:
            return [env.normalize_name(n) for n in remote]
        except PolycephalyError as exc:
            raise ConfigurationError(f'remote names of {cls.__name__}: {exc}') from None

    def open_transport(self) -> None:
        """Create and start the transport; its inbound callback calls self.deliver()."""
        raise NotImplementedError

    def transmit(self, envelope: dict) -> None:
        """Send one envelope out (in the head's thread); raise a PolycephalyError if it cannot."""
        raise NotImplementedError

    def close_transport(self) -> None:
        """Stop the transport (after death())."""

    # -- inbound, transport thread ---------------------------------------------------
    def deliver(self, envelope: dict, timeout: float | None = None) -> None:
        """Post a decoded inbound envelope to its recipient head, or raise saying why not.

        Safe from any thread. Raises EnvelopeError when the sender names a head of this
        application (nobody outside speaks for one), UnknownRecipient, RecipientUnavailable,
        QueueFull (once the recipient's queue stayed full for timeout seconds, by default the
        bus's send timeout) or another PolycephalyError; the transport turns that into an
        error frame (or, for QueueFull, may hold the frame and offer it again).
        """
        runtime = self.runtime
        recipient, sender = envelope['recipient'], envelope.get('sender')
        if isinstance(sender, str) and runtime.knows(sender.lower()):
            raise EnvelopeError(f'sender {sender!r} is a head of this application; nobody '
                                'outside speaks for it')
        if not runtime.knows(recipient):
            raise UnknownRecipient(f'no head named {recipient!r} behind route {self.route!r} '
                                   f'(heads: {", ".join(runtime.heads)})')
        envelope[env.VIA] = self.name
        runtime.deliver(envelope, timeout)  # nothing else holds it

    # -- outbound --------------------------------------------------------------------
    def _send_out(self, envelope: dict) -> bool:
        """Send envelope out now if the calling thread may call transmit(); tell whether it did."""
        if not self.transmit_from_any_thread and threading.get_ident() != self._thread_id:
            return False
        self._outbound(envelope)
        return True

    def _outbound(self, envelope: dict) -> None:
        out = dict(envelope)
        for header in _HOP_HEADERS:
            out.pop(header, None)
        try:
            self.transmit(out)
        except PolycephalyError as exc:
            self._bounce(envelope, str(exc))
        except Exception as exc:  # a transport bug: say so, never lose the envelope silently
            self._logger.exception('route %r failed to send %r to %r', self.route,
                                   envelope.get('subject'), envelope.get('recipient'))
            self._bounce(envelope, f'internal error: {type(exc).__name__}')

    def _bounce(self, envelope: dict, reason: str) -> None:
        sender = envelope.get('sender')
        tell = (isinstance(sender, str) and self.runtime.knows(sender)
                and envelope.get('subject') != ERROR_SUBJECT)  # no error storms
        # The sending head gets the bounce, so a warning is enough; otherwise nobody else knows.
        (self._logger.warning if tell else self._logger.error)(
            'route %r could not send %r from %r to %r (messageid %s): %s', self.route,
            envelope.get('subject'), sender, envelope.get('recipient'), envelope.get('messageid'),
            reason)
        if not tell:
            return
        try:
            bounce = env.answer(envelope, envelope['recipient'], {'error': reason}, ERROR_SUBJECT,
                                {BOUNCED_BY: self.name})
            self.runtime.deliver(bounce)
        except PolycephalyError as exc:
            self._logger.error('could not tell %r that its envelope was not sent: %s', sender, exc)

    def transport_failed(self, exc: BaseException) -> None:
        """Make this head fail with exc, in its own thread (call from the transport's thread)."""
        with self._failure_lock:  # never write to a closed descriptor's number
            self._transport_failure = exc
            if self._failure_fd >= 0:  # (else not running, or closing: nothing to fail)
                os.eventfd_write(self._failure_fd, 1)

    def _raise_transport_failure(self, _fd: int) -> None:
        exc = self._transport_failure
        raise RuntimeError(f'the transport of route {self.route!r} failed: {exc!r}') from exc

    # -- framework side --------------------------------------------------------------
    def _attach(self, runtime: HeadRuntime) -> None:
        filters = getattr(self, '_filters', None)
        if not isinstance(filters, _RouteFilters):  # a subclass __init__ skipped ours
            if filters is None:
                Process.__init__(self)
            self._filters = _RouteFilters(self, self._filters)
        super()._attach(runtime)
        self.route = str(self.kwargs.get('route', type(self).route))
        self.add_filter(self._peer_error, route=None, subject=ERROR_SUBJECT,
                        sender=lambda s: not runtime.knows(s))

    def _peer_error(self, envelope: dict) -> None:
        self._logger.warning('route %r: the peer reported an error: %s', self.route,
                             envelope.get('body'))

    def _loop(self, after_birth: Callable[[], None] | None = None) -> None:
        runtime = self.runtime
        self._thread_id = threading.get_ident()
        fd = self._failure_fd = os.eventfd(0, os.EFD_CLOEXEC)

        def close_fd() -> None:
            with self._failure_lock:
                self._failure_fd = -1
                os.close(fd)
        runtime.own(close_fd, 'its transport-failure descriptor')
        runtime.inbox.watch(fd, self._raise_transport_failure)
        runtime.own(lambda: runtime.inbox.unwatch(fd), 'the watch on it')
        runtime.own(self.close_transport, f'the transport of route {self.route!r}')
        self.open_transport()  # (closed even if it fails half-way)
        runtime.bus.add_route(self.name, self._send_out)
        runtime.own(lambda: runtime.bus.remove_route(self.name), 'its place in the routing table')
        super()._loop(after_birth)
