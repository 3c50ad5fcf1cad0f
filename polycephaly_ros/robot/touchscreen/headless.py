"""The touchscreen without a display: the headless view, which shows through the events alone.

A view is what the main head (:mod:`.main`) drives: ``show(name)``, ``refresh()`` (the
model changed), ``pump()`` (called by every ``life()``), ``close()``, a ``current`` view name and
a ``closed`` flag that stops the application when it turns true. A view calls the head's
``shown(name)`` once view name is on screen; the head then reports it (the ``view`` event, with
the view's content as text). The Tk window (:mod:`.gui`) is the other view; this one draws
nothing, since the main head already reports everything as events (:mod:`.events`), and it says
a view is shown once the answers it shows have come (``view_ready``: the pair view waits for the
pairing code and the devices).

Commands come from stdin, with or without a window (:func:`read_commands`; ``help`` lists them).
Threading: the view's methods run in the main head's thread; a daemon thread reads stdin and
only sends each line to the main head as a ``ui_command`` envelope (``send`` is safe from any
thread), so commands run in the head's own thread. It ends at ``quit``, at the end of stdin, or
when the head no longer takes mail.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from ...errors import PolycephalyError


def read_commands(head: Any) -> threading.Thread | None:
    """Start a daemon thread that sends each line of stdin to head as a ``ui_command``."""
    if sys.stdin is None:
        return None

    def read() -> None:
        for line in sys.stdin:
            line = line.strip()
            if line:
                try:
                    head.send(head.name, 'ui_command', line)
                except PolycephalyError:
                    return
            if line == 'quit':
                return

    thread = threading.Thread(target=read, name='stdin-commands', daemon=True)
    thread.start()
    return thread


class HeadlessView:
    """The views without a display: everything goes to the events."""

    closed = False

    def __init__(self, head: Any) -> None:
        self.head = head
        self.current = 'status'
        self._announce: str | None = None

    def show(self, name: str) -> None:
        """Make name the current view; it is reported once its answers have come."""
        self.current = name
        self._announce = name

    def refresh(self) -> None:
        """Draw nothing: the main head has reported the change as an event."""

    def pump(self) -> None:
        """Report the view asked for once the answers it shows have come."""
        name = self._announce
        if name is not None and self.head.view_ready(name):
            self._announce = None
            self.head.shown(name)

    def close(self) -> None:
        """Do nothing: the stdin thread is a daemon and ends with the process."""
