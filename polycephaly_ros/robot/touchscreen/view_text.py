"""The touchscreen's views as text: what ``view NAME`` shows without a display.

:func:`view_text` renders one view (status, diagnostics, admin, pair) of the main head's model as
a few plain lines; the main head puts them in its ``view`` event (:mod:`.main`), and the
Tk window draws the same model (:mod:`.gui`). Data the service gave before it stopped answering
is shown as such ("last known, 12 s old"), never as if live. Pure functions of the model,
called in the main head's thread.
"""

from __future__ import annotations

from typing import Protocol

from .pairing import Pairing
from .screen_text import (age_text, clock, decision_words, head_state, link_words,
                          temperature_text)


class ScreenModel(Protocol):
    """What the views read of the main head (see TouchscreenMain)."""

    reachable: bool | None
    unreachable_reason: str
    status: dict | None
    status_at: float
    diag: dict | None
    diag_at: float
    link: dict | None
    decisions: dict[str, dict]
    pairing: Pairing


def stale_note(model: ScreenModel, at: float, wall: float) -> str:
    """Say that data received at wall-clock at is stale, or '' while the service answers."""
    if model.reachable is not False or not at:
        return ''
    return (f'STALE: the service has not answered for {age_text(wall - at)}; this is its last '
            f'answer, from {clock(at)}')


def status_lines(status: dict, link: dict | None, wall: float) -> list[str]:
    """The service's status in a few lines."""
    lines = [f'Service pid {status.get("pid")} on {status.get("host")}, up '
             f'{age_text(status.get("uptime") or 0)}', link_words(link or status.get('link'))]
    route = (status.get('network') or {}).get('default_route')
    lines.append(f'Default route {route["gateway"]} via {route["interface"]}' if route
                 else 'No default route')
    upd = status.get('updates') or {}
    if upd:
        pending = ', '.join(upd.get('pending') or []) or 'none'
        lines.append(f'Updates: {"dry run" if upd.get("dry_run") else "LIVE"}, window '
                     f'{upd.get("window")}, pending: {pending}')
    diag = status.get('diagnostics') or {}
    if diag:
        lines.append(f'Health {diag.get("level")}: cpu {diag.get("cpu", 0):.0f}\u00a0%, memory '
                     f'{diag.get("memory", 0):.0f}\u00a0%')
    return lines


def view_text(name: str, model: ScreenModel, wall: float) -> str:
    """Render view name of model as plain lines."""
    return {'status': _status, 'diagnostics': _diagnostics, 'admin': _admin,
            'pair': _pair}[name](model, wall)


def _status(model: ScreenModel, wall: float) -> str:
    """Render the status view."""
    if not model.status:
        return 'No status yet: waiting for the service.'
    stale = stale_note(model, model.status_at, wall)
    lines = ([stale] if stale else []) + status_lines(model.status, model.link, wall)
    lines.append('Heads:')
    lines += [f'  {h["name"]}: {head_state(h, bool(stale))} ({h.get("mode")}, pid {h.get("pid")})'
              for h in model.status.get('heads') or []]
    return '\n'.join(lines)


def _diagnostics(model: ScreenModel, wall: float) -> str:
    """Render the diagnostics view."""
    diag = model.diag
    if not diag:
        return 'No diagnostics yet: waiting for the service.'
    stale = stale_note(model, model.diag_at, wall)
    cpu = (diag.get('cpu') or {}).get('percent', 0)
    memory = (diag.get('memory') or {}).get('percent', 0)
    lines = ([stale] if stale else []) + [f'Health: {diag.get("level")}', f'  CPU {cpu:.0f} %',
                                          f'  Memory {memory:.0f} %']
    lines += [f'  Disk {path} {d.get("percent", 0):.0f} %'
              for path, d in (diag.get('disks') or {}).items()]
    lines.append(f'  {temperature_text(diag).capitalize()}')
    return '\n'.join(lines)


def _admin(model: ScreenModel, wall: float) -> str:
    """Render the admin view."""
    if not model.status:
        return 'No status yet: waiting for the service.'
    stale = stale_note(model, model.status_at, wall)
    upd = model.status.get('updates') or {}
    pending = set(upd.get('pending') or [])
    lines = ([stale] if stale else []) + ['Maintenance actions (schedule NAME, unschedule NAME):']
    for action, about in (upd.get('actions') or {}).items():
        state = 'scheduled' if action in pending else 'not scheduled'
        last = model.decisions.get(action)
        if last:
            state += f'; last: {decision_words(last, upd.get("idle"))}'
        lines.append(f'  {action}: {about.get("description") or "(no description)"} - {state}')
    lines.append(f'Robot: {"idle" if upd.get("idle") else "busy"} (idle, busy)')
    lines.append('Heads (start NAME, stop NAME, restart NAME):')
    lines += [f'  {h["name"]}: {head_state(h, bool(stale))}'
              for h in model.status.get('heads') or []]
    return '\n'.join(lines)


def pair_lines(pairing: Pairing, wall: float) -> list[str]:
    """The pairing code (or why there is none) in a few lines."""
    code = pairing.code
    if code and pairing.valid(wall):
        lines = [f'Pair a phone: open {code["url"]}',
                 f'  or enter the code {code["code"]}; it expires in '
                 f'{age_text(pairing.remaining(wall) or 0)} (at {clock(code["expires"])})']
    elif pairing.error:
        lines = [f'pairing unavailable: {pairing.error}']
    else:
        lines = ['Asking the service for a pairing code ...']
    if pairing.error and code and pairing.valid(wall):
        lines.append(f'  ({pairing.error})')
    return lines


def device_text(device: dict, wall: float) -> str:
    """One paired device in words."""
    seen = device.get('last_seen')
    paired = device.get('paired')
    return (f'{device.get("name") or "unnamed device"} (id {device["id"]}): paired '
            f'{age_text(wall - paired) + " ago" if paired else "?"}, last seen '
            f'{age_text(wall - seen) + " ago" if seen else "never"}')


def _pair(model: ScreenModel, wall: float) -> str:
    """Render the pair view."""
    pairing = model.pairing
    lines = pair_lines(pairing, wall) + ['Paired devices (revoke ID):']
    if pairing.devices_error:
        lines.append(f'  unknown: {pairing.devices_error}')
    elif pairing.devices is None:
        lines.append('  (asking the service)')
    else:
        lines += [f'  {device_text(d, wall)}' for d in pairing.devices] or ['  none']
    return '\n'.join(lines)
