"""The updates head: maintenance actions run only in the downtime window, while the robot is idle.

Actions are configured (``heads.updates.actions``: name -> command); one is *pending* from the
start when its ``pending`` is true, or once scheduled (subject ``schedule``). Every life() decides,
for each pending action, one of:

* ``deferred`` - outside the downtime window (the reason names the window and when it next
  opens), or the robot has not reported idle recently (``require_idle``);
* ``dry-run`` - inside the window and idle, ``dry_run`` on: the command is logged, not run;
* ``ran`` / ``failed`` - inside the window and idle, ``dry_run`` off: the command ran (its exit
  code and the tail of its output are kept).

Every decision that differs from the previous one for that action is logged and kept (the last
``history`` of them); ``updates`` answers with the pending actions, the window, the idle state
and the decisions. ``robot_idle`` (body ``{"idle": true}`` or a boolean) reports the robot's
state; a report is valid for ``idle_max_age`` seconds.

With logind (systemd's ``org.freedesktop.login1.Manager`` on the system bus, see
:mod:`.logind`): while the robot reports busy the head holds an inhibitor lock
(``Inhibit("shutdown:sleep", "polycephaly", "robot busy", "block")``, its file descriptor kept
open) and releases it (closes the descriptor) when the robot reports idle; a reboot action
(``reboot_actions``, by default the action named ``reboot``) is not run as a command but
scheduled with ``ScheduleShutdown("reboot", usec)`` at now + ``reboot_delay`` - in a dry run
only logged, like every other action. Without logind (no bus, nobody owning
``org.freedesktop.login1``) the head says so once and behaves as without it: no lock, reboot
actions run their command. The settings are ``heads.updates.logind`` (a map; the defaults are
:data:`LOGIND_DEFAULTS`); ``updates`` answers with the logind state under ``logind``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections import deque

from ..filters import message_filter
from .common import RobotHead
from .config import DAYS, parse_clock
from .logind import Logind, LogindError

#: heads.updates.logind, when the settings have no such map (or lack a key of it).
LOGIND_DEFAULTS = {
    'enabled': False,           # use logind when it is there (on a robot: true)
    'bus': 'system',            # system, session or a D-Bus address (tests)
    'timeout': 5.0,             # s per call
    'what': 'shutdown:sleep',   # the inhibitor lock held while the robot reports busy
    'who': 'polycephaly',
    'why': 'robot busy',
    'inhibit_mode': 'block',    # block, or delay
    'reboot_actions': ['reboot'],   # actions scheduled with ScheduleShutdown("reboot", ...)
    'reboot_delay': 0.0,        # s from the decision to the scheduled reboot
}


def in_window(window: dict, when: dt.datetime) -> bool:
    """Tell whether when (local time) lies in the window; days name the day a window opens.

    end before start spans midnight; start equal to end is the whole day.
    """
    start = parse_clock(window['start'], 'window.start')
    end = parse_clock(window['end'], 'window.end')
    minute = when.hour * 60 + when.minute
    today = DAYS[when.weekday()]
    yesterday = DAYS[(when.weekday() - 1) % 7]
    days = window['days']
    if start == end:
        return today in days
    if start < end:
        return today in days and start <= minute < end
    return (today in days and minute >= start) or (yesterday in days and minute < end)


def next_opening(window: dict, when: dt.datetime) -> dt.datetime | None:
    """Return when the window next opens after when, or None if it never does."""
    start = parse_clock(window['start'], 'window.start')
    base = when.replace(hour=start // 60, minute=start % 60, second=0, microsecond=0)
    for days_ahead in range(8):
        candidate = base + dt.timedelta(days=days_ahead)
        if candidate > when and DAYS[candidate.weekday()] in window['days']:
            return candidate
    return None


def describe_window(window: dict) -> str:
    days = window['days']
    span = 'every day' if len(days) == 7 else ','.join(days)
    return f'{window["start"]}-{window["end"]} ({span})'


class UpdatesHead(RobotHead):
    """Run maintenance actions opportunistically; kwargs['settings'] is heads.updates."""

    def birth(self) -> None:
        s = self.settings = self.kwargs['settings']
        self.notify = self.kwargs.get('notify', 'service')
        for name in ('start', 'end'):
            parse_clock(s['window'][name], f'heads.updates.window.{name}')
        bad = [d for d in s['window']['days'] if d not in DAYS]
        if bad:
            raise ValueError(f'heads.updates.window.days: unknown day(s) {bad}; use {DAYS}')
        self.actions: dict[str, dict] = s['actions']
        self.pending: dict[str, float] = {n: time.time() for n, a in self.actions.items()
                                          if a['pending']}
        self.decisions: deque[dict] = deque(maxlen=s['history'])
        self.last: dict[str, dict] = {}
        self.idle = bool(s['assume_idle'])
        self.idle_at = time.monotonic() if self.idle else None
        self.assumed = bool(s['assume_idle'])
        self.logger.info('updates: %s, window %s, %s; actions: %s',
                         'dry run' if s['dry_run'] else 'LIVE (commands run)',
                         describe_window(s['window']),
                         'requires idle' if s['require_idle'] else 'idle not required',
                         ', '.join(self.actions) or 'none')
        self.window_open = in_window(s['window'], dt.datetime.now())
        self._start_logind()
        self.tell(self.notify, 'updates_state', self.state(limit=5))

    def death(self) -> None:
        self._release_lock('the head stops')
        if getattr(self, 'logind', None) is not None:
            self.logind.close()
            self.logind = None

    def life(self) -> None:
        for name in list(self.pending):
            self.decide(name)
        opened = in_window(self.settings['window'], dt.datetime.now())
        if opened != self.window_open:  # the main head's summary shows it
            self.window_open = opened
            self.logger.info('the downtime window %s', 'opened' if opened else 'closed')
            self.tell(self.notify, 'updates_state', self.state(limit=5))
        self.mailman()

    # -- logind ----------------------------------------------------------------------
    def _start_logind(self) -> None:
        lg = self.logind_settings = dict(LOGIND_DEFAULTS, **(self.settings.get('logind') or {}))
        self.logind: Logind | None = None
        self.logind_reason = 'not started'
        self.inhibitor_fd: int | None = None
        self.inhibitor_since: float | None = None
        self._fallback_said = False
        if not lg['enabled']:
            self.logind_reason = 'disabled (heads.updates.logind.enabled is false)'
            self.logger.info('logind: %s', self.logind_reason)
            return
        client = Logind(lg['bus'], timeout=lg['timeout'])
        try:
            client.check()
        except LogindError as exc:
            client.close()
            self._fall_back(str(exc))
            return
        self.logind = client
        self.logind_reason = f'org.freedesktop.login1 on {client.where}'
        self.logger.info('logind: %s: an inhibitor lock (%s, %s) while the robot is busy; '
                         'reboot actions %s via ScheduleShutdown', self.logind_reason,
                         lg['what'], lg['inhibit_mode'], lg['reboot_actions'])

    def _fall_back(self, reason: str) -> None:
        """Go on without logind; say so once."""
        if self.logind is not None:
            self.logind.close()
            self.logind = None
        self.logind_reason = f'unavailable: {reason}'
        if not self._fallback_said:
            self._fallback_said = True
            self.logger.warning('logind unavailable (%s): falling back to no inhibitor lock while '
                                'busy and reboot actions running their command', reason)

    def _hold_lock(self, busy: bool) -> None:
        """Hold logind's inhibitor lock while busy, release it when not."""
        if not busy:
            self._release_lock('the robot reports idle')
            return
        if self.inhibitor_fd is not None or self.logind is None:
            return
        lg = self.logind_settings
        try:
            fd = self.logind.inhibit(lg['what'], lg['who'], lg['why'], lg['inhibit_mode'])
        except LogindError as exc:
            if exc.unavailable:
                self._fall_back(f'Inhibit: {exc}')
            else:
                self.logger.error('logind refused the inhibitor lock: %s', exc)
            return
        os.set_inheritable(fd, False)
        self.inhibitor_fd, self.inhibitor_since = fd, time.time()
        self.logger.info('the robot reports busy: holding a logind inhibitor lock (%s, %s, %r)',
                         lg['what'], lg['inhibit_mode'], lg['why'])

    def _release_lock(self, why: str) -> None:
        fd = getattr(self, 'inhibitor_fd', None)
        if fd is None:
            return
        self.inhibitor_fd = self.inhibitor_since = None
        os.close(fd)
        self.logger.info('%s: released the logind inhibitor lock', why)

    def _schedule_reboot(self, planned: float) -> dict | None:
        """ScheduleShutdown("reboot", planned); None when logind is gone (fall back)."""
        usec = int(planned * 1_000_000)
        at = f'{dt.datetime.fromtimestamp(planned):%Y-%m-%d %H:%M:%S}'
        assert self.logind is not None
        try:
            self.logind.schedule_shutdown('reboot', usec)
        except LogindError as exc:
            if exc.unavailable:
                self._fall_back(f'ScheduleShutdown: {exc}')
                return None
            return {'outcome': 'failed', 'planned': planned, 'usec': usec, 'returncode': None,
                    'reason': f'logind did not schedule the reboot at {at}: {exc}'}
        return {'outcome': 'scheduled', 'planned': planned, 'usec': usec, 'returncode': None,
                'reason': f'scheduled through logind: ScheduleShutdown("reboot") at {at}'}

    def _reboot_via_logind(self, name: str) -> bool:
        return self.logind is not None and name in self.logind_settings['reboot_actions']

    def logind_state(self) -> dict:
        lg = getattr(self, 'logind_settings', LOGIND_DEFAULTS)
        return {'enabled': lg['enabled'], 'bus': lg['bus'],
                'available': getattr(self, 'logind', None) is not None,
                'reason': getattr(self, 'logind_reason', 'not started'),
                'inhibitor': {'what': lg['what'], 'who': lg['who'], 'why': lg['why'],
                              'mode': lg['inhibit_mode'],
                              'held': getattr(self, 'inhibitor_fd', None) is not None,
                              'since': getattr(self, 'inhibitor_since', None)},
                'reboot_actions': list(lg['reboot_actions'])}

    # -- deciding ---------------------------------------------------------------------
    def robot_idle(self) -> tuple[bool, str]:
        s = self.settings
        if not s['require_idle']:
            return True, 'idle not required'
        if self.assumed and self.idle:
            return True, 'assumed idle (assume_idle)'
        if self.idle_at is None:
            return False, 'the robot has not reported idle'
        age = time.monotonic() - self.idle_at
        if not self.idle:
            return False, 'the robot reports busy'
        if age > s['idle_max_age']:
            return False, f'the last idle report is {age:.0f} s old (max {s["idle_max_age"]:g} s)'
        return True, 'the robot reports idle'

    def decide(self, name: str, now: dt.datetime | None = None) -> dict:
        """Decide about one pending action now; run it if it may run; return the decision."""
        s = self.settings
        now = now or dt.datetime.now()
        action = self.actions[name]
        window = s['window']
        decision = {'action': name, 'command': action['command'], 'time': time.time(),
                    'dry_run': s['dry_run']}
        idle, idle_reason = self.robot_idle()
        if not in_window(window, now):
            opening = next_opening(window, now)
            decision.update(outcome='deferred', reason=(
                f'outside the downtime window {describe_window(window)}; next opens '
                f'{opening:%Y-%m-%d %H:%M}' if opening else
                f'outside the downtime window {describe_window(window)}, which never opens'))
        elif not idle:
            decision.update(outcome='deferred', reason=f'in the window but {idle_reason}')
        elif s['dry_run']:
            if self._reboot_via_logind(name):
                planned = time.time() + self.logind_settings['reboot_delay']
                would = (f'would schedule a reboot through logind (ScheduleShutdown) at '
                         f'{dt.datetime.fromtimestamp(planned):%Y-%m-%d %H:%M:%S}')
                decision['planned'] = planned
            else:
                would = f'would run {action["command"]}'
            decision.update(outcome='dry-run', reason=f'in the window and {idle_reason}; dry run: '
                            f'{would}')
            self.pending.pop(name, None)
        else:
            done = None
            if self._reboot_via_logind(name):
                done = self._schedule_reboot(time.time() + self.logind_settings['reboot_delay'])
            decision.update(done or self._run(action['command']))
            decision['reason'] = f'in the window and {idle_reason}; ' + decision['reason']
            self.pending.pop(name, None)
        self._record(decision)
        return decision

    def _run(self, command: list[str]) -> dict:
        self.logger.warning('running maintenance command %s', command)
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=self.settings['command_timeout'], check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return {'outcome': 'failed', 'reason': f'could not run {command}: {exc}',
                    'returncode': None}
        tail = (done.stdout + done.stderr)[-2000:]
        outcome = 'ran' if done.returncode == 0 else 'failed'
        return {'outcome': outcome, 'returncode': done.returncode, 'output': tail,
                'reason': f'ran {command}: exit code {done.returncode}'}

    def _record(self, decision: dict) -> None:
        key = (decision['outcome'], decision['reason'])
        previous = self.last.get(decision['action'])
        if previous is not None and (previous['outcome'], previous['reason']) == key:
            return  # the same decision again: logged and kept once
        self.last[decision['action']] = decision
        self.decisions.append(decision)
        log = self.logger.info if decision['outcome'] != 'failed' else self.logger.error
        log('maintenance %r: %s: %s', decision['action'], decision['outcome'], decision['reason'])
        self.tell(self.notify, 'updates_state', self.state(limit=5))

    def state(self, limit: int | None = None) -> dict:
        """Return what the head knows and decided."""
        s = self.settings
        decisions = list(self.decisions)[-limit:] if limit else list(self.decisions)
        idle, idle_reason = self.robot_idle()
        return {
            'dry_run': s['dry_run'], 'window': describe_window(s['window']),
            'in_window': in_window(s['window'], dt.datetime.now()),
            'idle': idle, 'idle_reason': idle_reason,
            'actions': {n: {'command': a['command'], 'description': a['description']}
                        for n, a in self.actions.items()},
            'pending': list(self.pending), 'decisions': decisions,
            'logind': self.logind_state(),
        }

    # -- requests ---------------------------------------------------------------------
    @message_filter(route=None, subject='schedule')
    def schedule(self, message: dict) -> None:
        """Make a configured action pending and decide about it at once."""
        body = message.get('body')
        name = body.get('action') if isinstance(body, dict) else body
        if name not in self.actions:
            known = ', '.join(self.actions) or 'none'
            self.refuse(message, f'no maintenance action named {name!r} (configured: {known})')
            return
        self.pending.setdefault(name, time.time())
        self.last.pop(name, None)  # a new request: its first decision is always kept
        decision = self.decide(name)
        self.respond(message, {'scheduled': name, 'decision': decision,
                             'pending': list(self.pending)})

    @message_filter(route=None, subject='unschedule')
    def unschedule(self, message: dict) -> None:
        body = message.get('body')
        name = body.get('action') if isinstance(body, dict) else body
        was = self.pending.pop(name, None) is not None
        self.tell(self.notify, 'updates_state', self.state(limit=5))  # (before the answer)
        self.respond(message, {'unscheduled': name, 'was_pending': was,
                             'pending': list(self.pending)})

    @message_filter(route=None, subject='updates')
    def answer(self, message: dict) -> None:
        self.respond(message, self.state())

    @message_filter(route=None, subject='robot_idle')
    def on_idle(self, message: dict) -> None:
        body = message.get('body')
        idle = body.get('idle') if isinstance(body, dict) else body
        self.idle = bool(idle)
        self.assumed = False
        self.idle_at = time.monotonic()
        self.logger.info('the robot reports %s (from %r)', 'idle' if self.idle else 'busy',
                         message.get('sender'))
        self._hold_lock(busy=not self.idle)
        for name in list(self.pending):
            self.decide(name)
        self.respond(message, {'idle': self.idle, 'pending': list(self.pending)})
