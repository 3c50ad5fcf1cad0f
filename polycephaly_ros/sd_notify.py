"""Tell systemd how the application is doing: readiness, status, watchdog pings, stopping.

The protocol (sd_notify(3)) is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named
in ``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with ``@``); without that
variable (not run by systemd, or not ``Type=notify``) nothing is sent and nothing fails.

An :class:`Notifier` is what the application uses (``Application.run()`` makes one):

* ``READY=1`` once the start-up is over: every autostart head was born (or ended, or was not
  born within the start timeout), in order, unless a stop was asked meanwhile;
* ``STATUS=<n of m heads running; ...>`` whenever the heads' states change (looked at after
  every birth and exit report, and every STATUS_INTERVAL seconds from the main head's loop);
* ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (when it is set, and ``$WATCHDOG_PID``, if
  set, is this process), sent from a timer of the **main head's own loop**: a main head stuck
  in life(), a filter or anything else that keeps its loop from turning stops the pings, and
  systemd (``WatchdogSec=``) kills and restarts the service. The pings also stop for good once
  the application gives up (a head failed past its restart intensity, an emergency brake, a
  head that cannot run as configured): it is ending with exit code != 0;
* ``STOPPING=1`` when the application starts stopping (any reason).

Threading contract: :func:`notify` may be called from any thread (one socket per call).
:meth:`Notifier.attach`, :meth:`Notifier.ready`, :meth:`Notifier.update` and the timers run in
the main head's thread (the timers are its inbox's ``call_later``); :meth:`Notifier.stopping`
and :meth:`Notifier.failed` may be called from any thread (they set a flag and send).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable, Mapping

_log = logging.getLogger('polycephaly_ros.sd_notify')
#: How often (seconds) the main head's loop looks whether the heads' states changed.
STATUS_INTERVAL = 1.0


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send lines (``'READY=1'``, ...) to systemd in one datagram; return whether it was sent.

    Does nothing (False) without ``$NOTIFY_SOCKET``; a failed send is logged, not raised.
    """
    address = (os.environ if environ is None else environ).get('NOTIFY_SOCKET')
    if not address or not lines:
        return False
    if address[0] == '@':
        address = '\0' + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto('\n'.join(lines).encode(), address)
        return True
    except OSError as exc:
        _log.warning('could not notify systemd at %r: %s', address, exc)
        return False


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Return the seconds between watchdog pings (half of $WATCHDOG_USEC), or None for none."""
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get('WATCHDOG_USEC', ''))
        pid = int(environ.get('WATCHDOG_PID') or os.getpid())
    except ValueError:
        return None
    if usec <= 0 or pid != os.getpid():
        return None
    return usec / 2e6


def summary(heads: list[dict]) -> str:
    """Return the STATUS text for the heads' status() entries."""
    running = sum(h['state'] == 'running' for h in heads)
    text = f'{running} of {len(heads)} heads running'
    others = [f'{h["name"]} {h["state"]}' for h in heads if h['state'] != 'running']
    return f'{text}; {", ".join(others)}' if others else text


class Notifier:
    """The application's messages to systemd (see the module doc); inert without NOTIFY_SOCKET."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = dict(os.environ if environ is None else environ)
        self._environ = environ
        self.enabled = bool(environ.get('NOTIFY_SOCKET'))
        self.interval = watchdog_interval(environ) if self.enabled else None
        self._loop: Any = None
        self._status: Callable[[], list[dict]] | None = None
        self._said: str | None = None
        self._stopping = False
        self._failed = False
        #: How many WATCHDOG=1 pings were sent (for tests and diagnostics).
        self.pings = 0

    def _send(self, *lines: str) -> bool:
        return notify(*lines, environ=self._environ)

    def attach(self, loop: Any, status: Callable[[], list[dict]]) -> None:
        """Start the status and watchdog timers on loop (the main head's inbox)."""
        if not self.enabled:
            return
        self._loop, self._status = loop, status
        loop.call_later(STATUS_INTERVAL, self._status_tick)
        if self.interval is not None:
            self._ping()

    def ready(self) -> None:
        """Say the start-up is over (READY=1, with the heads' status)."""
        if self.enabled and not self._stopping:
            self._said = summary(self._status()) if self._status else 'running'
            self._send('READY=1', f'STATUS={self._said}')

    def update(self) -> None:
        """Send STATUS= if the heads' states changed since the last one sent."""
        if not self.enabled or self._status is None or self._failed:
            return
        text = summary(self._status())
        if self._stopping:
            text = f'stopping: {text}'
        if text != self._said:
            self._said = text
            self._send(f'STATUS={text}')

    def stopping(self, reason: str | None = None) -> None:
        """Say the application is stopping (STOPPING=1); once."""
        if self.enabled and not self._stopping:
            self._stopping = True
            self._said = f'stopping: {reason}' if reason else 'stopping'
            self._send('STOPPING=1', f'STATUS={self._said}')

    def failed(self, reason: str) -> None:
        """The application gives up: no more watchdog pings; say why."""
        if self.enabled and not self._failed:
            self._failed = True
            self._send(f'STATUS=failed: {reason}')

    def _status_tick(self) -> None:
        self.update()
        if not self._loop.closed:
            self._loop.call_later(STATUS_INTERVAL, self._status_tick)

    def _ping(self) -> None:
        if self._failed or self._loop.closed:
            return  # for good: systemd's watchdog (or the exit code) restarts the service
        if self._send('WATCHDOG=1'):
            self.pings += 1
        self._loop.call_later(self.interval, self._ping)
