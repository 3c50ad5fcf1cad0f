"""When a head that ended starts again: its restart policy, OTP's intensity and a backoff.

Policies follow Erlang/OTP supervisors: ``never`` (temporary), ``on_failure`` (transient) and
``always`` (permanent). At most ``max_restarts`` restarts fit in ``restart_window`` seconds;
one more gives up (the application stops with that reason), as OTP's intensity rule does.
Within that, each restart waits longer than the one before: ``backoff=(first, longest)``
seconds, doubling from ``first`` up to ``longest`` for each restart still inside the window,
so a head that fails at once does not use up its restarts in a few milliseconds.

Threading contract: used by the supervisor's thread only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .errors import ConfigurationError

POLICIES = ('never', 'on_failure', 'always')
#: The default backoff: first and longest wait before a restart, in seconds.
BACKOFF = (0.1, 10.0)


def check_backoff(backoff: object, head: str) -> tuple[float, float]:
    """Return backoff as (first, longest) seconds, or raise ConfigurationError naming head."""
    try:
        first, longest = (float(b) for b in backoff)  # type: ignore[union-attr]
        ok = 0 <= first <= longest
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigurationError(f'restart_backoff of head {head!r} must be (first, longest) '
                                 f'seconds with 0 <= first <= longest, not {backoff!r}')
    return first, longest


@dataclass
class RestartPolicy:
    """One head's restart policy and the restarts it has made in the current window."""

    policy: str = 'never'
    max_restarts: int = 3
    window: float = 10.0
    backoff: tuple[float, float] = BACKOFF
    recent: deque = field(default_factory=deque)  # monotonic times of the restarts in the window

    def wants(self, failed: bool) -> bool:
        """Tell whether a head that ended (failed or not) should start again."""
        return self.policy == 'always' or (self.policy == 'on_failure' and failed)

    def next_delay(self, now: float) -> float | None:
        """Count a restart now; return the wait before it, or None when the intensity is spent."""
        while self.recent and now - self.recent[0] > self.window:
            self.recent.popleft()
        if len(self.recent) >= self.max_restarts:
            return None
        first, longest = self.backoff
        delay = min(longest, first * 2 ** len(self.recent))
        self.recent.append(now)
        return delay
