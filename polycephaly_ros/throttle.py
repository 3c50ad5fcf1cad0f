"""Log lines about what comes from outside, a few per period: a flood of bad input is not a flood
of log lines.

A :class:`Throttle` lets through at most ``burst`` lines per kind every ``period`` seconds;
the lines it holds back are counted, and the next line it lets through says how many.

Threading contract: any thread (one lock, held only to count).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class Throttle:
    """A logger's lines of one kind or another, at most burst per period for each kind."""

    #: The defaults of every throttle (a test that counts log lines may raise burst).
    period: float = 10.0
    burst: int = 5

    def __init__(self, logger: logging.Logger, period: float | None = None,
                 burst: int | None = None) -> None:
        self.logger = logger
        if period is not None:
            self.period = period
        if burst is not None:
            self.burst = burst
        self._lock = threading.Lock()
        self._windows: dict[str, list[float | int]] = {}  # kind -> [window start, lines, held]

    def log(self, level: int, kind: str, message: str, *args: Any, **kwargs: Any) -> bool:
        """Log message at level unless this kind had its burst this period; tell whether it did."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(kind)
            if window is None or now - window[0] >= self.period:
                held = int(window[2]) if window is not None else 0
                window = self._windows[kind] = [now, 0, 0]
                if len(self._windows) > 1024:  # many kinds: forget the oldest
                    self._windows.pop(next(iter(self._windows)))
            else:
                held = 0
            if window[1] >= self.burst:
                window[2] += 1
                return False
            window[1] += 1
        if held:
            message += f' ({held} more like this in the last {self.period:g} s were not logged)'
        self.logger.log(level, message, *args, **kwargs)
        return True

    def warning(self, kind: str, message: str, *args: Any) -> bool:
        """Log a warning of this kind (see log())."""
        return self.log(logging.WARNING, kind, message, *args)
