"""The touchscreen's words: its views, its commands and plain-language texts about the service.

Constants and pure functions of the service's answers (dicts as the service sends them), used by
the main head (:mod:`.main`: events and ``help``), the view texts (:mod:`.view_text`) and
the Tk window (:mod:`.gui`). They import none of those, so all import them without a cycle. An
answer is never shown as JSON: :func:`result_text` says what happened in words ("Reboot
scheduled: deferred until 02:00 (robot busy)"). Safe from any thread.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

#: The views, in the order of the window's buttons and keys 1-4.
VIEWS = ('status', 'diagnostics', 'admin', 'pair')
#: The commands typed on stdin, with what each does (``help`` prints them, one a line).
COMMANDS = {
    'view NAME': f'show a view: {", ".join(VIEWS)}',
    'status': 'ask for the status now', 'diagnostics': 'ask for diagnostics now',
    'heads': 'list the service\'s heads', 'network': 'the network snapshot',
    'updates': 'maintenance state and decisions',
    'start HEAD': 'start a head', 'stop HEAD': 'stop a head', 'restart HEAD': 'restart a head',
    'schedule ACTION': 'schedule a maintenance action', 'unschedule ACTION': 'cancel it',
    'idle': 'report the robot idle', 'busy': 'report the robot busy',
    'pair': 'ask for a new pairing code', 'devices': 'list the paired devices',
    'revoke ID': 'revoke a paired device',
    'layout': 'report the window\'s widgets and where they lie',
    'help': 'this list', 'quit': 'stop the touchscreen',
}
_PAST = {'start': 'started', 'stop': 'stopped', 'restart': 'restarted'}


def help_text() -> str:
    """The commands, one a line."""
    width = max(map(len, COMMANDS))
    return 'commands:\n' + '\n'.join(f'  {name:<{width}}  {what}'
                                     for name, what in COMMANDS.items())


def _pct(value: Any) -> str:
    """Return a percentage in words, or ? ."""
    return f'{value:.0f} %' if isinstance(value, (int, float)) else '?'


def age_text(seconds: float) -> str:
    """A duration in words: 12 s, 3 min, 5 h, 2 days."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f'{seconds:.0f} s'
    if seconds < 90 * 60:
        return f'{seconds / 60:.0f} min'
    if seconds < 48 * 3600:
        return f'{seconds / 3600:.0f} h'
    return f'{seconds / 86400:.0f} days'


def clock(epoch: float | None) -> str:
    """The local time of day of epoch seconds (HH:MM:SS), or ? ."""
    return dt.datetime.fromtimestamp(epoch).strftime('%H:%M:%S') if epoch else '?'


def head_state(head: dict, stale: bool = False) -> str:
    """A head's state in words; as last known (never as if live) when stale."""
    state = str(head.get('state'))
    if head.get('restart_in') is not None:
        state = f'{state}, restart in {head["restart_in"]:.0f} s'
    elif head.get('last_error') and state != 'running':
        state = f'{state}: {head["last_error"]}'
    return f'was {state}' if stale else state


def link_words(link: dict | None) -> str:
    """The link's state in words."""
    if not link:
        return 'Link unknown'
    words = 'Link up' if link.get('up') else 'Link DOWN'
    return f'{words} ({link["reason"]})' if link.get('reason') else words


def banner_summary(status: dict, link: dict | None) -> str:
    """The service at a glance: link, heads running, health."""
    heads = status.get('heads') or []
    running = sum(1 for h in heads if h.get('state') == 'running')
    level = (status.get('diagnostics') or {}).get('level')
    return (f'{link_words(link or status.get("link"))} \u00b7 {running} of {len(heads)} heads '
            f'running' + (f' \u00b7 health {level}' if level else ''))


def status_text(status: dict) -> str:
    """One line about the service's status."""
    heads = status.get('heads') or []
    running = sum(1 for h in heads if h.get('state') == 'running')
    diag = status.get('diagnostics') or {}
    upd = status.get('updates') or {}
    parts = [f'service pid {status.get("pid")} up {status.get("uptime", 0):.1f} s',
             link_words(status.get('link')).lower(), f'{running}/{len(heads)} heads running']
    if diag:
        parts.append(f'{diag.get("level")} cpu {_pct(diag.get("cpu"))} '
                     f'mem {_pct(diag.get("memory"))}')
    if upd:
        parts.append(f'updates {"dry run" if upd.get("dry_run") else "LIVE"}, '
                     f'{len(upd.get("pending") or [])} pending, window {upd.get("window")}')
    return '; '.join(parts)


def diagnostics_text(diag: dict) -> str:
    """One line about a diagnostics sample."""
    disks = ', '.join(f'disk {p} {_pct(d.get("percent"))}'
                      for p, d in (diag.get('disks') or {}).items())
    return (f'{diag.get("level")}: cpu {_pct((diag.get("cpu") or {}).get("percent"))}, '
            f'memory {_pct((diag.get("memory") or {}).get("percent"))}, {disks}, '
            f'{temperature_text(diag)}')


def temperature_text(diag: dict) -> str:
    """The hottest temperature sensor in words."""
    temps = [t['current'] for ts in (diag.get('temperatures') or {}).values() for t in ts
             if t.get('current') is not None]
    return f'hottest {max(temps):.0f} °C' if temps else 'no temperature sensors'


def decision_words(decision: dict, idle: bool | None = None,
                   now: dt.datetime | None = None) -> str:
    """What the updates head decided about an action, in words."""
    outcome, reason = decision.get('outcome'), str(decision.get('reason', ''))
    if outcome == 'deferred':
        opens = re.search(r'next opens (\d{4}-\d\d-\d\d) (\d\d:\d\d)', reason)
        busy = ' (robot busy)' if idle is False else ''
        if opens:
            when = dt.datetime.fromisoformat(f'{opens[1]} {opens[2]}')
            days = (when.date() - (now or dt.datetime.now()).date()).days
            return f'deferred until {opens[2] if days <= 1 else when.strftime("%a %H:%M")}{busy}'
        if 'never opens' in reason:
            return 'deferred: the downtime window never opens'
        if reason.startswith('in the window but '):
            return f'deferred: in the window, but {reason[len("in the window but "):]}'
        return f'deferred: {reason}'
    if outcome == 'dry-run':
        return 'dry run: it would run now, nothing ran'
    if outcome == 'ran':
        return f'ran (exit code {decision.get("returncode")})'
    if outcome == 'failed':
        return f'failed: {reason}'
    return f'{outcome}: {reason}'


def _what(subject: str, request: Any) -> str:
    """The request in words: "Stop network", "Schedule reboot", "Revoke device 3"."""
    request = request if isinstance(request, dict) else {}
    if subject.endswith('_head'):
        return f'{subject[:-5].title()} {request.get("head")}'
    if subject in ('schedule', 'unschedule'):
        return f'{subject.title()} {request.get("action")}'
    if subject == 'revoke_device':
        return f'Revoke device {request.get("id")}'
    if subject == 'robot_idle':
        return f'Report the robot {"idle" if request.get("idle") else "busy"}'
    return subject.replace('_', ' ').capitalize()


def result_text(result: dict, status: dict | None = None) -> str:
    """A carrier's outcome (see client_head) in words, never as JSON."""
    subject = result.get('subject', '')
    request = result.get('request') if isinstance(result.get('request'), dict) else {}
    if not result.get('ok'):
        if not result.get('reachable', True):
            return f'{_what(subject, request)}: no answer from the service ({result.get("error")})'
        return f'{_what(subject, request)} refused: {result.get("error")}'
    body = result.get('body') if isinstance(result.get('body'), dict) else {}
    idle = ((status or {}).get('updates') or {}).get('idle')
    if subject == 'schedule':
        name = str(body.get('scheduled', request.get('action'))).capitalize()
        return f'{name} scheduled: {decision_words(body.get("decision") or {}, idle)}'
    if subject == 'unschedule':
        name = str(body.get('unscheduled', request.get('action'))).capitalize()
        return f'{name} unscheduled' if body.get('was_pending') else f'{name} was not scheduled'
    if subject == 'robot_idle':
        pending = ', '.join(body.get('pending') or []) or 'nothing'
        return f'The robot is reported {"idle" if body.get("idle") else "busy"}; ' \
               f'pending: {pending}'
    if subject.endswith('_head'):
        verb = subject[:-5]
        state = body.get('state') or {}
        return f'Head {body.get("head", request.get("head"))} {_PAST.get(verb, verb)}: ' \
               f'now {head_state(state) if state else "gone"}'
    return _answer_text(subject, body, request)


def _answer_text(subject: str, body: dict, request: dict) -> str:
    """A successful answer to a query, in words."""
    if subject == 'heads':
        return 'Heads: ' + ', '.join(f'{h["name"]} {head_state(h)}' for h in body.get('heads', []))
    if subject == 'status':
        return f'Status: {status_text(body)}'
    if subject == 'diagnostics':
        return f'Diagnostics: {diagnostics_text(body)}'
    if subject == 'network':
        route = body.get('default_route')
        up = sorted(n for n, i in (body.get('interfaces') or {}).items() if i.get('up'))
        via = f'default route {route["gateway"]} via {route["interface"]}' if route \
            else 'no default route'
        return f'Network: {link_words(body).lower()}; {via}; interfaces up: ' \
               f'{", ".join(up) or "none"}'
    if subject == 'updates':
        last = {d['action']: d for d in body.get('decisions') or []}
        decided = '; '.join(f'{n} {decision_words(d, body.get("idle"))}' for n, d in last.items())
        return (f'Updates: {"dry run" if body.get("dry_run") else "LIVE"}, window '
                f'{body.get("window")}, robot {"idle" if body.get("idle") else "busy"}, '
                f'pending: {", ".join(body.get("pending") or []) or "nothing"}'
                + (f'; last: {decided}' if decided else ''))
    if subject == 'revoke_device':
        return f'Device {body.get("revoked", request.get("id"))} revoked'
    return f'{_what(subject, request)}: done'
