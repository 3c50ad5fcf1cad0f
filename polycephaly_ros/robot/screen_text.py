"""The touchscreen's words: its views, its commands and one-line texts about the service.

Constants and pure functions of the service's answers (dicts as the service sends them), used by
the main head (:mod:`.touchscreen`: events and ``help``) and by the Tk window (:mod:`.gui`).
They import neither, so both import them without a cycle. Safe from any thread.
"""

from __future__ import annotations

from typing import Any

#: The views, in the order of the window's buttons and keys 1-4.
VIEWS = ('status', 'diagnostics', 'admin', 'pair')
#: The commands typed on stdin in headless mode, with what each does (``help`` prints them).
COMMANDS = {
    'status': 'ask for the status now', 'diagnostics': 'ask for diagnostics now',
    'heads': 'list the service\'s heads', 'network': 'the network snapshot',
    'updates': 'maintenance state and decisions', 'start HEAD': 'start a head',
    'stop HEAD': 'stop a head', 'restart HEAD': 'restart a head',
    'schedule ACTION': 'schedule a maintenance action', 'unschedule ACTION': 'cancel it',
    'idle / busy': 'report the robot idle or busy',
    'view NAME': f'show a view ({", ".join(VIEWS)})',
    'quit': 'stop the touchscreen',
}


def _pct(value: Any) -> str:
    return f'{value:.0f} %' if isinstance(value, (int, float)) else '?'


def status_text(status: dict) -> str:
    """One line about the service's status."""
    heads = status.get('heads') or []
    running = sum(1 for h in heads if h.get('state') == 'running')
    link_ = status.get('link') or {}
    link_text = ('link up' if link_.get('up') else 'link DOWN') if link_ else 'link unknown'
    if link_.get('reason'):
        link_text += f' ({link_["reason"]})'
    diag = status.get('diagnostics') or {}
    upd = status.get('updates') or {}
    parts = [f'service pid {status.get("pid")} up {status.get("uptime", 0):.1f} s',
             link_text, f'{running}/{len(heads)} heads running']
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
    temps = [t['current'] for ts in (diag.get('temperatures') or {}).values() for t in ts
             if t.get('current') is not None]
    temp = f'hottest {max(temps):.0f} °C' if temps else 'no temperature sensors'
    return (f'{diag.get("level")}: cpu {_pct((diag.get("cpu") or {}).get("percent"))}, '
            f'memory {_pct((diag.get("memory") or {}).get("percent"))}, {disks}, {temp}')
