"""What a head process took with it when it died: counted exactly, and its queue slots given back.

Every envelope on its way to a head, or queued there, holds one of the head's queue slots
(directory.py). A head that ends on its own gives them all back and reports what it did not
handle (runtime.py). A head process that is killed cannot: the envelopes in its memory and in
the sockets it had accepted are lost, and their slots with them. :func:`reclaim` runs in the
supervisor once the process is gone and the head is marked stopped (so no new send takes a
slot for long):

1. it reads the frames still waiting in the head's listening socket (connections nobody had
   accepted yet), with a throw-away :class:`~polycephaly_ros.inbox.Inbox`, and drops them:
   their subjects are known;
2. it waits until the number of slots neither free nor held by those frames has been still
   for :data:`SETTLE` seconds (senders caught mid-send finish: their write fails and they
   give their slot back, or it lands in the listening socket and step 1 reads it);
3. the slots still missing then died with the process: they are counted as lost and given
   back.

The count is exact unless a sender stalled mid-send for longer than the wait at the moment of
the death; then its envelope is counted lost and its sender is also told (over-reported, never
silent), and the slots, a bounded semaphore, never rise above the queue's size.

Threading contract: call it from the supervisor's thread, after the process was joined and
before the head starts again.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

from .directory import Address, give_back
from .inbox import Inbox

#: How long the missing slots must stay unchanged before they are counted lost (seconds).
SETTLE = 0.02
#: The longest reclaim() waits for that (seconds).
LONGEST = 0.2


@dataclass
class Loss:
    """The accepted envelopes a head did not handle: reported by itself, or reclaimed."""

    reported: list[Any] = field(default_factory=list)  # subjects the head reported (and logged)
    recovered: list[Any] = field(default_factory=list)  # subjects of those read from its socket
    vanished: int = 0  # those that were in its memory or its connections: subjects unknown

    @property
    def count(self) -> int:
        """Return how many envelopes were not handled in all."""
        return len(self.reported) + len(self.recovered) + self.vanished


def nothing_held(address: Address) -> bool:
    """Tell whether every queue slot of the head is free (so nothing can be lost)."""
    return address.slots.get_value() == address.queue_size


def reclaim(address: Address, listener: socket.socket, poison_pill: str) -> Loss:
    """Count what the dead head at address took with it and give its slots back."""
    inbox = Inbox(listener, address.slots, poison_pill=poison_pill)  # (controls: dropped)
    try:
        started = changed = time.monotonic()
        seen = -1
        while True:
            inbox.poll(0.002, ignore_queued=True)
            missing = address.queue_size - address.slots.get_value() - inbox.counted
            now = time.monotonic()
            if missing != seen:
                seen, changed = missing, now
            elif now - changed >= SETTLE or now - started >= LONGEST:
                break
        loss = Loss(recovered=[e.get('subject') for e in inbox.drop()])
    finally:
        inbox.close()
    loss.vanished = address.queue_size - address.slots.get_value()
    give_back(address.slots, loss.vanished)
    return loss
