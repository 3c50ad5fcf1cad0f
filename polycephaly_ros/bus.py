"""Send envelopes from this process to wherever their recipient is: the one routing table.

Where an envelope goes is decided here alone, by its ``recipient`` (and ``via``) header:

========================================  ==============================================
recipient                                 destination
========================================  ==============================================
a head running in this process            its inbox, queued directly (no socket, no copy
                                          for a handed-over envelope)
a head of another process                 its inbox socket (:mod:`polycephaly_ros.wire`)
an outside name, with ``via`` naming a    that route head: out at once, in the sender's
route head, or listed in ``remote=``      thread, when it sends from any thread; else its
                                          inbox
any other name                            the ROS bridge of this process (publishes on the
                                          name's inbox topic), when the application runs ROS
========================================  ==============================================

The table is filled through :meth:`Bus.attach_inbox` (each head runtime, for its head),
:meth:`Bus.add_route` (each route head) and :meth:`Bus.set_ros_bridge` (the first head
with a ROS node in the process); the :class:`~polycephaly_ros.directory.Directory` knows
every head's address, the route heads and their remote names. Anything else raises
:class:`UnknownRecipient`.

Every way into an inbox (a head's send, a route's or the ROS bridge's inbound envelope, a
topic bridge's message) ends in :meth:`Bus.admit`: it takes one of the recipient's queue
slots (a bounded semaphore shared by every process; waiting at most the send timeout, then
:class:`QueueFull`), looks again whether the recipient still runs (a head that stops marks
itself stopped before its last read; see runtime.py), then queues or writes the envelope.
The recipient's inbox gives the slot back when the envelope leaves its queue, so a send
either returns, and the envelope is handled or counted as unhandled, or raises: nothing is
dropped silently. The recipient always gets a copy (pickled, as across processes), so a head
behaves the same as a thread or as a process, unless the caller hands the envelope over.

Threading contract: every method is safe from any thread.
"""

from __future__ import annotations

import pickle
import threading
from typing import TYPE_CHECKING, Any, Callable

from . import wire
from .directory import Address, Directory, give_back
from .errors import (EnvelopeError, NotSerializable, QueueFull, RecipientUnavailable,
                     UnknownRecipient)

if TYPE_CHECKING:
    from .inbox import Inbox

#: The largest envelope (pickled) a head sends by default: Application(max_envelope=...).
MAX_ENVELOPE = 256 << 20
#: A route head's outbound: sends the envelope out now and returns True, or returns False
#: when the calling thread may not (then the envelope goes to the route head's inbox).
SendOut = Callable[[dict], bool]


class _Link:
    """A connection from this process to one inbox, shared by this process's threads."""

    __slots__ = ('lock', 'sock')

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: Any = None


class Bus:
    """Send envelopes from this process to any head, route or ROS inbox; see the module doc."""

    def __init__(self, directory: Directory, send_timeout: float = 2.0,
                 max_envelope: int = MAX_ENVELOPE) -> None:
        self.directory = directory
        self.send_timeout = send_timeout
        self.max_envelope = max_envelope
        self._inboxes: dict[str, Inbox] = {}
        self._routes: dict[str, SendOut] = {}
        self._ros_bridge: Callable[[dict, bool], None] | None = None
        self._links: dict[str, _Link] = {}
        self._links_lock = threading.Lock()

    # -- the routing table -------------------------------------------------------------
    def attach_inbox(self, name: str, inbox: Inbox) -> None:
        """Route envelopes to head name straight into inbox (the head runs in this process)."""
        self._inboxes[name] = inbox

    def detach_inbox(self, name: str) -> None:
        """Route envelopes to head name through its socket again."""
        self._inboxes.pop(name, None)

    def add_route(self, name: str, send_out: SendOut) -> None:
        """Let route head name (of this process) send its outside envelopes out directly."""
        self._routes[name] = send_out

    def remove_route(self, name: str) -> None:
        """Send route head name's outside envelopes through its inbox again."""
        self._routes.pop(name, None)

    def set_ros_bridge(self, send: Callable[[dict, bool], None] | None) -> None:
        """Hand envelopes to names that are neither heads nor behind a route to send(envelope,
        patient)."""
        self._ros_bridge = send

    @property
    def ros_bridge(self) -> Callable[[dict, bool], None] | None:
        """Return what sends to outside names over ROS in this process, or None."""
        return self._ros_bridge

    # -- sending ---------------------------------------------------------------------
    def post(self, envelope: dict, *, control: bool = False, timeout: float | None = None,
             handover: bool = False, patient: bool = True) -> None:
        """Deliver envelope to its recipient (see the module doc), or raise saying why not.

        control=True sends a framework control envelope: to heads only, whether they run or
        not, without a queue slot. timeout overrides the send timeout for a full queue.
        handover=True says nothing else references envelope (one just decoded by a route or
        the ROS bridge): a head of this process then gets the object itself, not a copy.
        patient=False says envelope answers an outside peer: the ROS bridge then never makes
        the caller wait for it (ros/outbox.py).

        Raises UnknownRecipient, RecipientUnavailable, QueueFull or NotSerializable, or what
        the ROS bridge raises (Unreachable, QueueFull, NotSerializable).
        """
        directory = self.directory
        address = directory.addresses.get(envelope['recipient'])
        outside = address is None
        if outside:
            address = self._route_head(envelope, control)
            if address is None:  # (_route_head raised if there is no ROS bridge)
                self._ros_bridge(envelope, patient)
                return
        if not control and not directory.states[address.index]:
            raise RecipientUnavailable(
                f'head {address.name!r} is not running, so it cannot take mail')
        if outside:
            send_out = self._routes.get(address.name)
            if send_out is not None and send_out(envelope):
                return
        self.admit(address, envelope, control, timeout, handover)

    def _route_head(self, envelope: dict, control: bool) -> Address | None:
        """Return the route head reaching an outside name; None for the ROS bridge."""
        directory = self.directory
        if not control:
            via = envelope.get('via')
            if via not in directory.routes:
                via = directory.remote.get(envelope['recipient'])
            if via is not None:
                return directory.addresses[via]
            if self._ros_bridge is not None:
                return None
        raise UnknownRecipient(f'no head named {envelope["recipient"]!r} in this application '
                               f'(heads: {", ".join(directory.names)})')

    def admit(self, address: Address, envelope: dict, control: bool = False,
              timeout: float | None = None, handover: bool = False) -> None:
        """Queue envelope in address's inbox: the one way into an inbox (see the module doc).

        Takes a queue slot unless control, waiting up to timeout (default: the send timeout;
        0: not at all) before QueueFull.
        """
        name = address.name
        inbox = self._inboxes.get(name)
        if handover and inbox is not None:
            payload: Any = envelope
        else:
            try:
                payload = pickle.dumps(envelope, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise NotSerializable(
                    f'envelope to {name!r} (subject {envelope.get("subject")!r}) cannot cross a '
                    f'process boundary: {type(exc).__name__}: {exc}'
                ) from exc
            if len(payload) > self.max_envelope:
                raise EnvelopeError(
                    f'envelope to {name!r} (subject {envelope.get("subject")!r}) is '
                    f'{len(payload)} bytes; the application takes at most max_envelope='
                    f'{self.max_envelope}')
        wait = self.send_timeout if timeout is None else timeout
        slots = address.slots
        if not control:
            if not (slots.acquire(False) or slots.acquire(True, wait)):
                held = f'stayed full for {wait:g} s' if wait > 0 else 'is full'
                raise QueueFull(
                    f'queue of head {name!r} {held} ({address.queue_size} envelopes); envelope '
                    f'{envelope.get("subject")!r} not sent'
                )
            if not self.directory.states[address.index]:  # it began to stop meanwhile
                give_back(slots)
                raise RecipientUnavailable(
                    f'head {name!r} is stopping, so it cannot take mail')
        counted = 0 if control else wire.COUNTED
        if inbox is not None:
            inbox.push(payload, counted)
            return
        try:
            self._write(address, payload, counted, max(wait, 1.0))
        except BaseException:
            if not control:
                give_back(slots)
            raise

    def _write(self, address: Address, payload: bytes, counted: int, timeout: float) -> None:
        link = self._links.get(address.name)
        if link is None:
            with self._links_lock:
                link = self._links.setdefault(address.name, _Link())
        with link.lock:
            for attempt in (1, 2):
                sock = link.sock
                if sock is None:
                    sock = link.sock = wire.connect(address.path, address.name)
                try:
                    wire.send_frame(sock, payload, counted, timeout)
                    return
                except (BrokenPipeError, ConnectionResetError) as exc:
                    # The head that had accepted this connection ended; its inbox lives on.
                    sock.close()
                    link.sock = None
                    if attempt == 2:
                        raise RecipientUnavailable(
                            f'the inbox of head {address.name!r} closed the connection'
                        ) from exc
                except TimeoutError as exc:
                    sock.close()
                    link.sock = None
                    raise QueueFull(
                        f'head {address.name!r} did not read its inbox for {timeout:g} s; '
                        'envelope not delivered'
                    ) from exc
                except OSError as exc:
                    sock.close()
                    link.sock = None
                    raise RecipientUnavailable(
                        f'cannot write to the inbox of head {address.name!r}: {exc}') from exc

    def close(self) -> None:
        """Close this process's connections to other processes' inboxes."""
        with self._links_lock:
            for link in self._links.values():
                with link.lock:
                    if link.sock is not None:
                        link.sock.close()
                        link.sock = None
