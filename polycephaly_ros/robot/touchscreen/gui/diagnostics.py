"""The diagnostics page: the health level, a bar per measure, and the details in words.

Greyed, with its age, while the service does not answer. Built and refreshed in the window's
thread (:mod:`.window`).
"""

from __future__ import annotations

from tkinter import ttk
from typing import Any

from ..screen_text import age_text, temperature_text
from ..view_text import stale_note
from .widgets import FitLabel


class DiagnosticsPage(ttk.Frame):
    """Health, CPU, memory, disks and temperatures."""

    def __init__(self, parent: ttk.Frame, window: Any) -> None:
        super().__init__(parent)
        self.theme = window.theme
        self.level = ttk.Label(self, text='No diagnostics yet', style='Stale.Level.TLabel')
        self.level.pack(side='top', fill='x')
        self.bars_frame = ttk.Frame(self)
        self.bars_frame.pack(side='top', fill='x', pady=self.theme.px(6))
        self.bars_frame.columnconfigure(1, weight=1)
        self.bars: dict[str, tuple[ttk.Label, ttk.Progressbar, ttk.Label]] = {}
        self.details = FitLabel(self, self.theme, 'body', hint=600)
        self.details.pack(side='top', fill='x')

    def _bar(self, key: str, label: str, value: float, level: str = 'Ok') -> None:
        """Show one measure as a bar (made on first use), coloured by its level."""
        if key not in self.bars:
            row = len(self.bars)
            pad = self.theme.px(4)
            name = ttk.Label(self.bars_frame, text=label)
            name.grid(row=row, column=0, sticky='w', pady=pad)
            bar = ttk.Progressbar(self.bars_frame, maximum=100, style='Ok.Horizontal.TProgressbar')
            bar.grid(row=row, column=1, sticky='ew', padx=self.theme.px(10), pady=pad)
            text = ttk.Label(self.bars_frame, text='100 %', width=6, anchor='e')
            text.grid(row=row, column=2, sticky='e', pady=pad)
            self.bars[key] = (name, bar, text)
        _name, bar, text = self.bars[key]
        bar.configure(value=value, style=f'{level}.Horizontal.TProgressbar')
        text['text'] = f'{value:.0f} %'

    def refresh(self, head: Any, wall: float) -> None:
        """Show the head's diagnostics (greyed with its age when stale)."""
        diag = head.diag
        if not diag:
            return
        stale = stale_note(head, head.diag_at, wall)
        level = str(diag.get('level'))
        style = 'Stale' if stale else {'OK': 'Ok', 'WARN': 'Warn'}.get(level, 'Bad')
        self.level.configure(text=f'Health: {level}' + (' (last known)' if stale else ''),
                             style=f'{style}.Level.TLabel')
        levels = {s.get('name', ''): s.get('level') for s in diag.get('statuses') or []}

        def level_of(name: str) -> str:
            return 'Stale' if stale else {'OK': 'Ok', 'WARN': 'Warn'}.get(
                str(levels.get(f'polycephaly: {name}', 'OK')), 'Bad')

        self._bar('cpu', 'CPU', (diag.get('cpu') or {}).get('percent', 0.0), level_of('cpu'))
        self._bar('memory', 'Memory', (diag.get('memory') or {}).get('percent', 0.0),
                  level_of('memory'))
        for path, disk in (diag.get('disks') or {}).items():
            self._bar(f'disk:{path}', f'Disk {path}', disk.get('percent', 0.0),
                      level_of(f'disk {path}'))
        for _key, (name, _bar, text) in self.bars.items():
            for label in (name, text):
                label.configure(style='Stale.TLabel' if stale else 'TLabel')
        load = (diag.get('cpu') or {}).get('load')
        lines = [f'{temperature_text(diag).capitalize()}.']
        if load:
            lines.append(f'Load average: {" ".join(f"{x:.2f}" for x in load)}.')
        lines.append(f'Sample from {age_text(wall - diag.get("time", wall))} ago.' if stale else
                     f'Measured on {diag.get("hardware_id")}.')
        if stale:
            lines.insert(0, stale)
        self.details.set('\n'.join(lines), style='Stale.TLabel' if stale else 'TLabel')
