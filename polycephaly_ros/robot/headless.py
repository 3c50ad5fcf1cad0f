"""The touchscreen without a display: the headless view, which shows through the events alone.

A view is what the main head (:mod:`.touchscreen`) drives: ``show(name)``, ``refresh()`` (the
model changed), ``pump()`` (called by every ``life()``), ``close()`` and a ``closed`` flag that
stops the application when it turns true. The Tk window (:mod:`.gui`) is the other view; this
one draws nothing, since the main head already reports everything as events (:mod:`.events`).

In its place lines typed on stdin are commands (``help`` lists them, see
:data:`.screen_text.COMMANDS`). Threading: the view's methods run in the main head's thread; a
daemon thread reads stdin and only sends each line to the main head as a ``ui_command``
envelope (``send`` is safe from any thread), so commands run in the head's own thread. It ends
at ``quit``, at the end of stdin, or when the head no longer takes mail.
"""

from __future__ import annotations

import sys
import threading

from ..errors import PolycephalyError
from ..head import Process


class HeadlessView:
    """The views without a display: everything goes to the events; stdin takes commands."""

    closed = False

    def __init__(self, head: Process, read_stdin: bool) -> None:
        self.head = head
        self.current = 'status'
        if read_stdin and sys.stdin is not None:
            threading.Thread(target=self._read_stdin, name='stdin-commands', daemon=True).start()

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            line = line.strip()
            if line:
                try:
                    self.head.send(self.head.name, 'ui_command', line)
                except PolycephalyError:
                    return
            if line == 'quit':
                return

    def show(self, name: str) -> None:
        """Make name the current view (the main head reports it)."""
        self.current = name

    def refresh(self) -> None:
        """Draw nothing: the main head has reported the change as an event."""

    def pump(self) -> None:
        """Do nothing: there is no event loop to run."""

    def close(self) -> None:
        """Do nothing: the stdin thread is a daemon and ends with the process."""
