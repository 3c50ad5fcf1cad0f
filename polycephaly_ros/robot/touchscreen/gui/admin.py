"""The admin page: the service's heads (start, stop, restart) and its maintenance actions.

Left, the heads as a touch list with Start, Stop and Restart for the one picked; right, one card
per maintenance action (its description, whether it is scheduled and what was last decided)
with its own Schedule and Unschedule buttons, and the robot's idle/busy report. Stopping or
restarting a head and scheduling an action are confirmed in the window first; outcomes appear in
the window's message area (:mod:`.window`), in words. Built and refreshed in the window's
thread.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any

from ..screen_text import decision_words, head_state
from .widgets import FitLabel, RowPager, TouchList


class ActionCard:
    """One maintenance action: its words and its two buttons."""

    def __init__(self, parent: tk.Misc, page: 'AdminPage') -> None:
        theme = page.theme
        self.page = page
        self.name = ''
        self.frame = ttk.Frame(parent, style='Card.TFrame', padding=theme.px(6))
        self.frame.columnconfigure(0, weight=1)
        self.title = FitLabel(self.frame, theme, 'title', lines=1, style='Title.Card.TLabel',
                              hint=200)
        self.title.grid(row=0, column=0, sticky='new')
        self.about = FitLabel(self.frame, theme, 'small', lines=2, style='Small.Card.TLabel',
                              hint=200)
        self.about.grid(row=1, column=0, sticky='new')
        self.last = FitLabel(self.frame, theme, 'small', lines=2, style='Small.Card.TLabel',
                             hint=200)
        self.last.grid(row=2, column=0, sticky='new')
        buttons = ttk.Frame(self.frame, style='Inner.Card.TFrame')
        buttons.grid(row=0, column=1, rowspan=3, sticky='ne', padx=(theme.px(6), 0))
        self.schedule = ttk.Button(buttons, text='Schedule',
                                   command=lambda: page.schedule(self.name))
        self.schedule.pack(side='top', fill='x')
        self.unschedule = ttk.Button(buttons, text='Unschedule',
                                     command=lambda: page.unschedule(self.name))
        self.unschedule.pack(side='top', fill='x', pady=(theme.px(4), 0))

    def show(self, item: tuple[str, dict, bool, dict | None, bool | None, bool]) -> None:
        """Show one action: (name, its settings, pending, last decision, robot idle, stale)."""
        name, about, pending, last, idle, stale = item
        self.name = name
        self.title.set(f'{name}: {"scheduled" if pending else "not scheduled"}'
                       + (' (last known)' if stale else ''),
                       style='Stale.Card.TLabel' if stale else 'Title.Card.TLabel')
        self.about.set(about.get('description') or ' '.join(about.get('command') or []))
        self.last.set(f'Last: {decision_words(last, idle)}' if last else '')


class AdminPage(ttk.Frame):
    """Heads and maintenance."""

    def __init__(self, parent: ttk.Frame, window: Any) -> None:
        super().__init__(parent)
        self.window = window
        self.theme = theme = window.theme
        self.updates: dict = {}
        self.columnconfigure(0, weight=5, uniform='admin')
        self.columnconfigure(1, weight=7, uniform='admin')
        self.rowconfigure(1, weight=1)
        gap = theme.px(8)
        ttk.Label(self, text='Heads', style='Title.TLabel').grid(row=0, column=0, sticky='w')
        ttk.Label(self, text='Maintenance', style='Title.TLabel').grid(row=0, column=1,
                                                                       sticky='w', padx=(gap, 0))
        self.heads = TouchList(self, theme, [('head', 'Head'), ('state', 'State')],
                               headings=False)
        self.heads.grid(row=1, column=0, sticky='nsew')
        row = ttk.Frame(self)
        row.grid(row=2, column=0, sticky='ew', pady=(theme.px(4), 0))
        row.columnconfigure((0, 1, 2), weight=1, uniform='verbs')
        self.head_buttons = {}
        for index, verb in enumerate(('start', 'stop', 'restart')):
            button = ttk.Button(row, text=verb.title(), command=lambda v=verb: self.control(v))
            button.grid(row=0, column=index, sticky='ew', padx=(0 if index == 0 else 2, 0))
            self.head_buttons[verb] = button
        self.cards = RowPager(self, theme, self._card_height, lambda p: ActionCard(p, self),
                              empty='No maintenance actions configured.')
        self.cards.grid(row=1, column=1, sticky='nsew', padx=(gap, 0))
        row = ttk.Frame(self)
        row.grid(row=2, column=1, sticky='ew', padx=(gap, 0), pady=(theme.px(4), 0))
        row.columnconfigure((0, 1), weight=1, uniform='idle')
        ttk.Button(row, text='Robot idle', command=lambda: self.idle(True)).grid(
            row=0, column=0, sticky='ew')
        ttk.Button(row, text='Robot busy', command=lambda: self.idle(False)).grid(
            row=0, column=1, sticky='ew', padx=(2, 0))

    def _card_height(self) -> int:
        """Return the height of one action card: four lines of text or two buttons."""
        t = self.theme
        text = t.line('title') + 4 * t.line('small')
        buttons = 2 * t.target + t.px(4)
        return max(text, buttons) + 2 * t.px(6) + 2 + t.px(6)

    # -- taps ------------------------------------------------------------------------------
    def control(self, verb: str) -> None:
        """Start, stop or restart the head picked (stopping and restarting confirmed)."""
        name = self.heads.selected()
        if name is None:
            self.window.say('Pick a head in the list first.', error=True)
            return

        def go() -> None:
            self.window.say(f'{verb.title()} {name}: waiting for the service ...')
            self.window.head.admin(f'{verb}_head', {'head': name})

        if verb == 'start':
            go()
        else:
            self.window.confirm(f'{verb.title()} the head "{name}"? What it does stops until '
                                f'it runs again.', f'{verb.title()} {name}', go)

    def schedule(self, name: str) -> None:
        """Schedule a maintenance action, once confirmed."""
        upd = self.updates
        when = (f'It runs in the downtime window {upd.get("window")}, when the robot is idle'
                + (' (dry run: the command is only logged).' if upd.get('dry_run') else '.'))
        about = (upd.get('actions') or {}).get(name, {}).get('description') or name

        def go() -> None:
            self.window.say(f'Schedule {name}: waiting for the service ...')
            self.window.head.admin('schedule', {'action': name})

        self.window.confirm(f'Schedule "{name}" ({about})? {when}', f'Schedule {name}', go)

    def unschedule(self, name: str) -> None:
        """Cancel a scheduled maintenance action."""
        self.window.say(f'Unschedule {name}: waiting for the service ...')
        self.window.head.admin('unschedule', {'action': name})

    def idle(self, idle: bool) -> None:
        """Report the robot idle or busy."""
        self.window.say(f'Report the robot {"idle" if idle else "busy"}: waiting for the '
                        f'service ...')
        self.window.head.admin('robot_idle', {'idle': idle})

    def refresh(self, head: Any, wall: float) -> None:
        """Show the heads and the actions (greyed when stale)."""
        status = head.status
        if not status:
            return
        stale = self.window.stale()
        tags = ('stale',) if stale else ()
        self.heads.set_rows([(h['name'], (h['name'], head_state(h, stale)), tags)
                             for h in status.get('heads') or []])
        self.updates = upd = status.get('updates') or {}
        pending = set(upd.get('pending') or [])
        self.cards.set_items([(name, about, name in pending, head.decisions.get(name),
                               upd.get('idle'), stale)
                              for name, about in (upd.get('actions') or {}).items()])
