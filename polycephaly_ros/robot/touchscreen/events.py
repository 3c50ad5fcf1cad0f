"""The touchscreen's events: what it reports on stdout, one line each, as text or JSON.

With ``--json`` every event is a JSON object, ``{"event": kind, "time": epoch seconds, "text":
readable text, ...data}``; the kinds are ``started``, ``reachable``, ``unreachable``,
``status``, ``diagnostics``, ``admin``, ``link``, ``view`` (with the view's content), ``qr`` (a
new pairing code: ``url``, ``code``, ``expires``, ``ttl``), ``pairing`` (pairing unavailable:
``error``), ``devices`` (the paired devices changed), ``layout`` (the window's widgets and their
geometry, on the ``layout`` command), ``help``, ``error`` and ``done`` (the tests read them).
Nothing else is written on stdout (logs go to stderr). Otherwise each event is its text after
``touchscreen:`` (``help`` and ``view`` span several lines), and ``status`` and ``diagnostics``
lines are printed at most once per quiet period, so a terminal is not flooded by the polling.

Threading: :meth:`Events.emit` may be called from any thread; one lock keeps lines whole. A
closed stdout (nobody reading any more) is ignored, so reporting never stops the touchscreen.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any


class Events:
    """Print events on stdout: JSON lines, or text (status lines at most every few seconds)."""

    def __init__(self, as_json: bool, stream: Any = None, quiet_period: float = 3.0) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self.quiet_period = quiet_period
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def emit(self, kind: str, text: str, **data: Any) -> None:
        """Print one event of kind: text, and with --json the data too."""
        if self.as_json:
            line = json.dumps({'event': kind, 'time': time.time(), 'text': text, **data},
                              default=str)
        else:
            line = f'touchscreen: {text}'
        with self._lock:
            if not self.as_json and kind in ('status', 'diagnostics'):
                now = time.monotonic()
                if now - self._last.get(kind, -1e9) < self.quiet_period:
                    return
                self._last[kind] = now
            try:
                self.stream.write(line + '\n')
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stdout closed: nobody is reading any more
