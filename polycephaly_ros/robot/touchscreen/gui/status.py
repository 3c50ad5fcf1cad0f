"""The status page: the service's summary beside the table of its heads.

While the service does not answer, both show its last answer as such: greyed, with its age,
and each head's state as "was running", never as if live. Built and refreshed in the window's
thread (:mod:`.window`).
"""

from __future__ import annotations

from tkinter import ttk
from typing import Any

from ..screen_text import head_state
from ..view_text import stale_note, status_lines
from .widgets import FitLabel, TouchList


class StatusPage(ttk.Frame):
    """The service's summary and heads."""

    def __init__(self, parent: ttk.Frame, window: Any) -> None:
        super().__init__(parent)
        theme = window.theme
        self.columnconfigure(0, weight=2, uniform='status')
        self.columnconfigure(1, weight=3, uniform='status')
        self.rowconfigure(1, weight=1)
        ttk.Label(self, text='Service', style='Title.TLabel').grid(row=0, column=0, sticky='w')
        ttk.Label(self, text='Heads', style='Title.TLabel').grid(row=0, column=1, sticky='w',
                                                                 padx=(theme.px(8), 0))
        self.summary = FitLabel(self, theme, 'body', text='No status yet: waiting for the '
                                                          'service.', hint=240)
        self.summary.grid(row=1, column=0, sticky='new')
        self.heads = TouchList(self, theme, [('head', 'Head'), ('state', 'State'), ('pid', 'PID')],
                               select=False)
        self.heads.grid(row=1, column=1, sticky='nsew', padx=(theme.px(8), 0))

    def refresh(self, head: Any, wall: float) -> None:
        """Show the head's status (greyed with its age when stale)."""
        status = head.status
        if not status:
            return
        stale = stale_note(head, head.status_at, wall)
        lines = status_lines(status, head.link, wall)
        self.summary.set('\n'.join(([stale] if stale else []) + lines),
                         style='Stale.TLabel' if stale else 'TLabel')
        tags = ('stale',) if stale else ()
        self.heads.set_rows([(h['name'], (h['name'], head_state(h, bool(stale)),
                                          str(h.get('pid', ''))), tags)
                             for h in status.get('heads') or []],
                            headings={'state': 'Last known state' if stale else 'State'})
